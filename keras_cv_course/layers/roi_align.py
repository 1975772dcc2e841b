"""RoIAlign: a fixed-size grid of features for each region of interest.

A two-stage detector (Faster R-CNN, Mask R-CNN) reads, for every proposal box, a small grid of
features (say 7 x 7) from the backbone's feature map and feeds it to its box and mask heads.
He et al., "Mask R-CNN", ICCV 2017, arXiv:1703.06870, section 3, showed that rounding the box to
whole feature cells (RoIPool) shifts the grid away from the object, which hurts masks most.
RoIAlign never rounds:

1. scale the box from image pixels to the feature map (``spatial_scale``, 1/16 for stride 16);
2. split the box into ``out_h x out_w`` bins of equal size;
3. in each bin, take ``sampling_ratio x sampling_ratio`` regularly spaced points and read each
   one by bilinear interpolation of its four neighbouring feature cells;
4. average the points of each bin.

The numbers are those of ``torchvision.ops.roi_align`` (NCHW there, NHWC here), including its
``aligned`` half-pixel shift and its border rules (see ``_bilinear_neighbours``). Only a fixed,
positive ``sampling_ratio`` is supported: torchvision's adaptive choice (``sampling_ratio <= 0``,
``ceil(roi_size / output_size)`` points per bin) makes the number of points depend on the data,
which a static-shape graph cannot express.

Bilinear reads are gathers from the flattened feature map, weighted and added, so a model with
this layer converts to TFLite built-in ops only (GATHER, MUL, ADD, AVERAGE_POOL_2D, ...), with no
Flex or custom op as ``tf.image.crop_and_resize`` would need.

A feature pyramid has one map per level. Lin et al., "Feature Pyramid Networks for Object
Detection", CVPR 2017, arXiv:1612.03144, equation 1, pools each RoI from the level suited to its
size: ``assign_fpn_levels`` and ``multilevel_roi_align``.

Box convention: boxes here are ``xyxy``, ``[x1, y1, x2, y2]`` in input-image pixels, as in
torchvision and ``keras_cv_course.detection``. The detection task's boxes are normalised
``[ymin, xmin, ymax, xmax]``; ``xyxy_from_normalized_yxyx`` converts them.
"""

import math

import keras
from keras import ops

from keras_cv_course.detection.boxes import box_area, to_xyxy
from keras_cv_course.errors import KCCError

LEVEL_EPS = 1e-6
"""Added to the level before flooring, as torchvision's ``LevelMapper`` does."""


# ----------------------------------------------------------------------------- checks


def _output_pair(output_size):
    """``output_size`` as ``(out_h, out_w)``; an int means a square grid."""
    pair = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    if len(pair) != 2 or not all(isinstance(n, int) and n > 0 for n in pair):
        raise KCCError(f"expected output_size to be a positive int or a pair of positive ints, "
                       f"received {output_size!r}")
    return pair


def _check_sampling_ratio(sampling_ratio):
    if not isinstance(sampling_ratio, int) or sampling_ratio <= 0:
        raise KCCError(f"expected sampling_ratio to be a positive int (adaptive sampling, <= 0, "
                       f"needs data-dependent shapes), received {sampling_ratio!r}")


def _check_inputs(features, boxes, box_indices):
    if len(features.shape) != 4:
        raise KCCError(f"expected features of shape (batch, height, width, channels), "
                       f"received shape {tuple(features.shape)}")
    if len(boxes.shape) != 2 or boxes.shape[-1] != 4:
        raise KCCError(f"expected boxes of shape (num_rois, 4) as [x1, y1, x2, y2], "
                       f"received shape {tuple(boxes.shape)}")
    if len(box_indices.shape) != 1:
        raise KCCError(f"expected box_indices of shape (num_rois,), "
                       f"received shape {tuple(box_indices.shape)}")


# ----------------------------------------------------------------------------- RoIAlign


def _box_edges_on_feature_map(boxes, spatial_scale, aligned):
    """Box edges ``(x1, y1, x2, y2)``, each ``(num_rois,)``, in feature-map cell units.

    Cell ``j`` of the feature map has its centre at ``j``. With ``aligned=True`` the box is
    shifted by half a cell so that image pixel ``[j, j + 1)`` maps onto that centre.
    """
    offset = 0.5 if aligned else 0.0
    scaled = boxes * spatial_scale - offset
    return scaled[:, 0], scaled[:, 1], scaled[:, 2], scaled[:, 3]


def _sampling_points(start, length, num_bins, sampling_ratio):
    """Positions of the sampling points along one axis, ``(num_rois, num_bins * sampling_ratio)``.

    Bin ``i`` covers ``[start + i * bin_size, start + (i + 1) * bin_size)`` and holds points at
    ``(s + 0.5) / sampling_ratio`` of its length, ``s = 0 .. sampling_ratio - 1``. Numbering the
    points of the whole axis ``k = i * sampling_ratio + s``, point ``k`` sits at
    ``start + (k + 0.5) * bin_size / sampling_ratio``.
    """
    bin_size = length / num_bins
    steps = (ops.arange(num_bins * sampling_ratio, dtype="float32") + 0.5) / sampling_ratio
    return ops.expand_dims(start, 1) + ops.expand_dims(bin_size, 1) * steps


def _bilinear_neighbours(points, size):
    """The two neighbouring cells of each point along one axis, and their weights.

    torchvision's ``bilinear_interpolate`` rules, one axis at a time:
    a point outside ``[-1, size]`` reads 0 (both weights 0); a point in ``[-1, 0)`` reads as if it
    were at 0; a point at or beyond ``size - 1`` reads the last cell alone.

    Returns:
        ``(low_index, high_index, low_weight, high_weight)``, each shaped like ``points``.
    """
    size = ops.cast(size, points.dtype)
    inside = ops.cast(ops.logical_and(points >= -1.0, points <= size), points.dtype)
    clamped = ops.clip(points, 0.0, size - 1.0)
    low = ops.floor(clamped)
    high = ops.minimum(low + 1.0, size - 1.0)
    fraction = clamped - low
    return (ops.cast(low, "int32"), ops.cast(high, "int32"),
            (1.0 - fraction) * inside, fraction * inside)


def _gather_cells(flat_features, image_rows, row_index, column_index, width):
    """Cells ``(num_rois, rows, columns, channels)`` of the flattened feature map.

    Cell ``(image, y, x)`` of a ``(batch, height, width, channels)`` map is row
    ``(image * height + y) * width + x`` of its ``(batch * height * width, channels)`` reshape.

    Args:
        flat_features: ``(batch * height * width, channels)``.
        image_rows: ``(num_rois,)``, each RoI's ``image * height``.
        row_index: ``(num_rois, rows)`` y of each sampling row.
        column_index: ``(num_rois, columns)`` x of each sampling column.
        width: the feature map's width.
    """
    rows = ops.expand_dims(image_rows, 1) + row_index  # (num_rois, rows)
    index = ops.expand_dims(rows * width, 2) + ops.expand_dims(column_index, 1)
    return ops.take(flat_features, index, axis=0)


def roi_align(features, boxes, box_indices, output_size, spatial_scale=1.0, sampling_ratio=2,
              aligned=True):
    """Pools an ``output_size`` grid of features from each box by RoIAlign.

    Equals ``torchvision.ops.roi_align`` with NHWC features instead of NCHW.

    Args:
        features: ``(batch, height, width, channels)`` feature maps.
        boxes: ``(num_rois, 4)`` boxes ``[x1, y1, x2, y2]`` in input-image pixels (``xyxy``; for
            the detection task's normalised ``yxyx`` use ``xyxy_from_normalized_yxyx`` first).
        box_indices: ``(num_rois,)`` ints, the image of ``features`` each box belongs to.
        output_size: ``(out_h, out_w)``, or one int for a square grid.
        spatial_scale: feature-map cells per image pixel, ``1 / stride``.
        sampling_ratio: sampling points per bin along each axis; a positive int.
        aligned: shift boxes by half a cell (He et al.'s pixel model). ``False`` reproduces the
            original Detectron rule, which also stretches boxes smaller than one cell to one cell.

    Returns:
        ``(num_rois, out_h, out_w, channels)`` pooled features.
    """
    out_h, out_w = _output_pair(output_size)
    _check_sampling_ratio(sampling_ratio)
    features = ops.convert_to_tensor(features)
    boxes = ops.cast(ops.convert_to_tensor(boxes), "float32")
    box_indices = ops.cast(ops.convert_to_tensor(box_indices), "int32")
    _check_inputs(features, boxes, box_indices)
    _, height, width, channels = ops.shape(features)

    x1, y1, x2, y2 = _box_edges_on_feature_map(boxes, spatial_scale, aligned)
    roi_width, roi_height = x2 - x1, y2 - y1
    if not aligned:
        roi_width, roi_height = ops.maximum(roi_width, 1.0), ops.maximum(roi_height, 1.0)

    y_points = _sampling_points(y1, roi_height, out_h, sampling_ratio)
    x_points = _sampling_points(x1, roi_width, out_w, sampling_ratio)
    y_low, y_high, y_low_weight, y_high_weight = _bilinear_neighbours(y_points, height)
    x_low, x_high, x_low_weight, x_high_weight = _bilinear_neighbours(x_points, width)

    flat_features = ops.reshape(features, (-1, channels))
    image_rows = box_indices * height
    samples = 0.0
    for row_index, row_weight in ((y_low, y_low_weight), (y_high, y_high_weight)):
        for column_index, column_weight in ((x_low, x_low_weight), (x_high, x_high_weight)):
            cells = _gather_cells(flat_features, image_rows, row_index, column_index, width)
            weight = ops.expand_dims(row_weight, 2) * ops.expand_dims(column_weight, 1)
            samples = samples + cells * ops.cast(ops.expand_dims(weight, 3), features.dtype)

    # samples: (num_rois, out_h * ratio, out_w * ratio, channels). The points of one bin form a
    # ratio x ratio block, so averaging them is average pooling with window and stride = ratio.
    return ops.average_pool(samples, pool_size=sampling_ratio, strides=sampling_ratio,
                            padding="valid", data_format="channels_last")


def xyxy_from_normalized_yxyx(boxes, image_size):
    """Converts the detection task's boxes to the ``xyxy`` pixels ``roi_align`` expects.

    Args:
        boxes: ``(..., 4)`` boxes ``[ymin, xmin, ymax, xmax]`` normalised to ``[0, 1]``.
        image_size: ``(height, width)`` of the input image in pixels.

    Returns:
        ``(..., 4)`` boxes ``[x1, y1, x2, y2]`` in pixels.
    """
    height, width = image_size
    xyxy = ops.cast(to_xyxy(boxes, "yxyx"), "float32")
    return xyxy * ops.convert_to_tensor([width, height, width, height], dtype="float32")


@keras.saving.register_keras_serializable(package="keras_cv_course")
class RoIAlign(keras.layers.Layer):
    """RoIAlign as a layer; called on ``[features, boxes, box_indices]``.

    See ``roi_align`` for the inputs: ``features (batch, H, W, C)``, ``boxes (num_rois, 4)`` as
    ``[x1, y1, x2, y2]`` in input-image pixels, ``box_indices (num_rois,)`` ints. The output is
    ``(num_rois, out_h, out_w, C)``.

    Args:
        output_size: ``(out_h, out_w)``, or one int for a square grid.
        spatial_scale: feature-map cells per image pixel, ``1 / stride``.
        sampling_ratio: sampling points per bin along each axis; a positive int.
        aligned: shift boxes by half a cell (see ``roi_align``).
    """

    def __init__(self, output_size, spatial_scale=1.0, sampling_ratio=2, aligned=True, **kwargs):
        super().__init__(**kwargs)
        self.output_size = _output_pair(output_size)
        _check_sampling_ratio(sampling_ratio)
        self.spatial_scale = float(spatial_scale)
        self.sampling_ratio = sampling_ratio
        self.aligned = bool(aligned)

    def call(self, inputs):
        features, boxes, box_indices = inputs
        return roi_align(features, boxes, box_indices, self.output_size,
                         spatial_scale=self.spatial_scale, sampling_ratio=self.sampling_ratio,
                         aligned=self.aligned)

    def compute_output_shape(self, input_shape):
        features_shape, boxes_shape, _ = input_shape
        return (boxes_shape[0], *self.output_size, features_shape[-1])

    def get_config(self):
        return {**super().get_config(), "output_size": list(self.output_size),
                "spatial_scale": self.spatial_scale, "sampling_ratio": self.sampling_ratio,
                "aligned": self.aligned}


# ----------------------------------------------------------------------------- pyramid levels


def assign_fpn_levels(boxes, min_level=2, max_level=5, canonical_size=224, canonical_level=4):
    """The pyramid level of each box, Lin et al. equation 1.

    ``k = floor(k0 + log2(sqrt(w * h) / 224))`` clamped to ``[min_level, max_level]``: a box of
    224 x 224 pixels (an ImageNet image) pools from level ``k0 = 4``, one half that size from
    level 3, and so on. As in torchvision's ``LevelMapper``, ``1e-6`` is added to the level just
    before the floor (outside the log), so that a box a rounding error short of a level boundary
    is not pushed one level down.

    Args:
        boxes: ``(num_rois, 4)`` boxes ``[x1, y1, x2, y2]`` in input-image pixels.
        min_level, max_level: the pyramid's finest and coarsest levels.
        canonical_size: the box side, in pixels, that maps to ``canonical_level``.
        canonical_level: ``k0``.

    Returns:
        ``(num_rois,)`` int32 levels ``k`` (not offsets from ``min_level``).
    """
    boxes = ops.cast(ops.convert_to_tensor(boxes), "float32")
    if len(boxes.shape) != 2 or boxes.shape[-1] != 4:
        raise KCCError(f"expected boxes of shape (num_rois, 4) as [x1, y1, x2, y2], "
                       f"received shape {tuple(boxes.shape)}")
    box_side = ops.sqrt(box_area(boxes))
    level = ops.floor(canonical_level + ops.log2(box_side / canonical_size) + LEVEL_EPS)
    return ops.cast(ops.clip(level, min_level, max_level), "int32")


def _levels_of_strides(strides):
    """Pyramid levels ``log2(stride)``, checked to be consecutive integers."""
    levels = [round(math.log2(stride)) if stride > 0 else None for stride in strides]
    powers_of_two = all(level is not None and 2**level == stride
                        for level, stride in zip(levels, strides))
    if not powers_of_two or levels != list(range(levels[0], levels[0] + len(levels))):
        raise KCCError(f"expected strides to be consecutive powers of two such as (4, 8, 16, 32), "
                       f"received {tuple(strides)!r}")
    return levels


def multilevel_roi_align(feature_maps, boxes, box_indices, output_size, strides, sampling_ratio=2,
                         aligned=True, canonical_size=224, canonical_level=4):
    """RoIAlign on a feature pyramid: each box pools from its level (``assign_fpn_levels``).

    For a static-shape graph (TFLite, XLA) every box is pooled on every level and a one-hot mask
    of its level keeps one result. Pooling each level's boxes only would mean gathering groups of
    boxes whose sizes depend on the data, which static shapes cannot express; the price is
    ``len(feature_maps)`` times the pooling work.

    Args:
        feature_maps: list of ``(batch, H_l, W_l, C)`` maps, finest level first.
        boxes: ``(num_rois, 4)`` boxes ``[x1, y1, x2, y2]`` in input-image pixels.
        box_indices: ``(num_rois,)`` ints, the image each box belongs to.
        output_size: ``(out_h, out_w)``, or one int.
        strides: the stride of each map, e.g. ``(4, 8, 16, 32)`` for levels 2 to 5.
        sampling_ratio, aligned: as in ``roi_align``.
        canonical_size, canonical_level: as in ``assign_fpn_levels``.

    Returns:
        ``(num_rois, out_h, out_w, C)`` pooled features.
    """
    if len(feature_maps) != len(strides) or not feature_maps:
        raise KCCError(f"expected one stride per feature map, received {len(feature_maps)} maps "
                       f"and {len(strides)} strides")
    levels = _levels_of_strides(strides)
    box_levels = assign_fpn_levels(boxes, levels[0], levels[-1], canonical_size, canonical_level)
    level_masks = ops.one_hot(box_levels - levels[0], len(levels))  # (num_rois, num_levels)
    pooled = 0.0
    for position, (feature_map, stride) in enumerate(zip(feature_maps, strides)):
        on_level = roi_align(feature_map, boxes, box_indices, output_size,
                             spatial_scale=1.0 / stride, sampling_ratio=sampling_ratio,
                             aligned=aligned)
        mask = ops.cast(ops.reshape(level_masks[:, position], (-1, 1, 1, 1)), on_level.dtype)
        pooled = pooled + on_level * mask
    return pooled
