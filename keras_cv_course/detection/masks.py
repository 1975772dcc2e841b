"""The parts of Mask R-CNN's mask branch: head, targets, loss, pasting, mask AP.

He, Gkioxari, Dollár, Girshick, "Mask R-CNN", ICCV 2017, arXiv:1703.06870, section 3 and
figure 4 (right), with torchvision's ``maskrcnn_resnet50_fpn`` settings:

* the head reads a 14 x 14 RoIAlign grid (from the FPN level of the box), applies four 3x3
  convolutions of 256 with ReLU, a 2x2 stride-2 transposed convolution with ReLU, and a 1x1
  convolution to one 28 x 28 mask logit map per class (background included, as in
  torchvision's ``MaskRCNNPredictor``);
* a foreground RoI's target is its object's mask cut out by the RoI and resampled to 28 x 28
  (RoIAlign of the full-image mask, ``aligned=False``): soft values in [0, 1];
* the loss is the binary cross-entropy of the map of the RoI's *true* class only, averaged
  over the pixels of every foreground RoI: classes do not compete for a pixel;
* at test time the map of the detected class is pasted back into the image: each pixel
  reads the mask by bilinear interpolation at its centre, the mask padded by one zero cell
  as torchvision's ``expand_masks`` pads it, then thresholded at 0.5. torchvision's
  ``paste_masks_in_image`` also rounds the box to whole pixels and widens it by one pixel
  (its legacy ``TO_REMOVE``); this continuous form does neither.

Differences, named: torchvision's target RoIAlign picks its sampling points per RoI
(``sampling_ratio=-1``), which a static graph cannot; here it is 2 points per bin.
``mask_coco_metrics`` hands RLE-encoded masks to pycocotools' ``COCOeval`` with
``iouType="segm"``.
"""

import keras
import numpy as np
from keras import ops

from keras_cv_course.layers.roi_align import roi_align

MASK_ROI_SIZE = 14
MASK_SIZE = 28
MASK_THRESHOLD = 0.5
MASK_METRIC_NAMES = ("mask_ap", "mask_ap50", "mask_ap75")
"""``COCOeval(iouType="segm").stats[0:3]``, in order."""


def mask_head_layers(classes, width=256, convs=4):
    """MaskRCNNHeads (``convs`` 3x3 convolutions) and MaskRCNNPredictor (deconv, logits)."""
    layers = [keras.layers.Conv2D(width, 3, padding="same", activation="relu",
                                  kernel_initializer="he_normal", name=f"mask_fcn{k + 1}")
              for k in range(convs)]
    layers.append(keras.layers.Conv2DTranspose(width, 2, strides=2, activation="relu",
                                               kernel_initializer="he_normal",
                                               name="mask_conv5"))
    layers.append(keras.layers.Conv2D(classes + 1, 1, name="mask_fcn_logits"))
    return tuple(layers)


def mask_head(layers, pooled):
    """``(N, 14, 14, C)`` RoI features -> ``(N, 28, 28, classes + 1)`` mask logits."""
    for layer in layers:
        pooled = layer(pooled)
    return pooled


def gather_class_maps(maps, labels):
    """``(N, M, M, K)`` maps, ``(N,)`` class indices -> each RoI's own map ``(N, M, M)``."""
    # The index map is built from the maps themselves, not from a shape: a functional graph
    # (Mask R-CNN's call) does not know its batch size when it is built.
    index = ops.cast(ops.zeros_like(maps[..., :1]), "int32")
    index = index + ops.reshape(ops.cast(labels, "int32"), (-1, 1, 1, 1))
    return ops.take_along_axis(maps, index, axis=3)[..., 0]


def project_masks(gt_masks, matched, rois, size=MASK_SIZE, sampling_ratio=2):
    """Each RoI's training target: its object's mask, cut out by the RoI, ``size`` square.

    Args:
        gt_masks: ``(B, G, H, W)`` instance masks in {0, 1}.
        matched: ``(B, S)`` int32, the object of each RoI (any valid index for background).
        rois: ``(B, S, 4)`` ``xyxy`` boxes in pixels.

    Returns:
        ``(B * S, size, size)`` soft targets in [0, 1], image major.
    """
    gt_masks = ops.cast(ops.convert_to_tensor(gt_masks), "float32")
    height, width = gt_masks.shape[2], gt_masks.shape[3]
    index = ops.reshape(ops.cast(matched, "int32"), (-1, matched.shape[1], 1, 1))
    chosen = ops.take_along_axis(gt_masks, ops.broadcast_to(
        index, (ops.shape(gt_masks)[0], matched.shape[1], height, width)), axis=1)
    chosen = ops.reshape(chosen, (-1, height, width, 1))
    flat_rois = ops.reshape(ops.cast(rois, "float32"), (-1, 4))
    rows = ops.arange(ops.shape(flat_rois)[0], dtype="int32")
    pooled = roi_align(chosen, flat_rois, rows, size, spatial_scale=1.0,
                       sampling_ratio=sampling_ratio, aligned=False)
    return pooled[..., 0]


def mask_loss(logits, labels, targets, weights):
    """Binary cross-entropy of each foreground RoI's true-class map, per pixel.

    Args:
        logits: ``(N, M, M, classes + 1)``; labels: ``(N,)`` int, 0 = background.
        targets: ``(N, M, M)`` in [0, 1]; weights: ``(N,)``, 0 for unsampled slots.

    Returns:
        The mean over the pixels of the foreground RoIs (0 when there are none).
    """
    own = gather_class_maps(logits, labels)
    foreground = ops.cast(labels > 0, "float32") * ops.cast(weights, "float32")
    per_pixel = ops.binary_crossentropy(targets, own, from_logits=True)  # (N, M, M)
    pixels = float(own.shape[1] * own.shape[2])
    per_roi = ops.sum(per_pixel, axis=(1, 2))
    return ops.sum(per_roi * foreground) / ops.maximum(ops.sum(foreground) * pixels, 1.0)


def _axis_samples(starts, ends, size, cells):
    """Mask coordinates (in the one-cell zero-padded mask) of pixel centres along one axis.

    Returns the lower cell index ``(..., size)``, the upper one and the upper's weight.
    """
    centres = ops.arange(size, dtype="float32") + 0.5
    extent = ops.maximum(ends - starts, 1e-6)[..., None]
    position = (centres - starts[..., None]) * cells / extent - 0.5 + 1.0
    lower = ops.floor(position)
    weight = position - lower
    last = cells + 1
    lower_index = ops.cast(ops.clip(lower, 0, last), "int32")
    upper_index = ops.cast(ops.clip(lower + 1, 0, last), "int32")
    return lower_index, upper_index, weight


def paste_masks(masks, boxes, image_size):
    """Pastes ``(B, D, M, M)`` mask probabilities into ``(B, D, H, W)`` images.

    Args:
        masks: each detection's map of its class, in [0, 1].
        boxes: ``(B, D, 4)`` ``xyxy`` boxes in pixels.
        image_size: ``(H, W)``.

    Every pixel reads the mask, padded with one cell of zeros, by bilinear interpolation at
    its centre; beyond the padding it reads 0. Bilinear reads are separable: rows first,
    then columns, each a gather.
    """
    height, width = int(image_size[0]), int(image_size[1])
    cells = masks.shape[-1]
    padded = ops.pad(ops.cast(masks, "float32"), [[0, 0], [0, 0], [1, 1], [1, 1]])
    boxes = ops.cast(boxes, "float32")
    top, bottom, row_weight = _axis_samples(boxes[..., 1], boxes[..., 3], height, cells)
    left, right, column_weight = _axis_samples(boxes[..., 0], boxes[..., 2], width, cells)
    row_shape = (*ops.shape(padded)[:2], height, cells + 2)

    def rows_at(index):
        return ops.take_along_axis(padded, ops.broadcast_to(index[..., None], row_shape), axis=2)

    rows = rows_at(top) * (1 - row_weight[..., None]) + rows_at(bottom) * row_weight[..., None]
    pixel_shape = (*ops.shape(padded)[:2], height, width)

    def columns_at(index):
        return ops.take_along_axis(rows, ops.broadcast_to(index[:, :, None, :], pixel_shape),
                                   axis=3)

    return (columns_at(left) * (1 - column_weight[:, :, None, :])
            + columns_at(right) * column_weight[:, :, None, :])


def mask_coco_metrics(detections, objects, num_classes):
    """COCO mask AP, AP50 and AP75 from pycocotools' ``COCOeval(iouType="segm")``.

    Args:
        detections: per image ``(masks (n, H, W) in {0, 1}, scores (n,), classes (n,))``.
        objects: per image ``(masks (m, H, W) in {0, 1}, classes (m,))``.
        num_classes: classes are ``0 .. num_classes - 1``.

    Returns:
        ``{"mask_ap", "mask_ap50", "mask_ap75"}``; no detections give 0, no ground truth -1.
    """
    from pycocotools import mask as mask_utils

    from keras_cv_course.detection.metrics import coco_eval_stats

    def encoded(mask):
        return mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))

    images, truth, found = [], [], []
    for image_id, ((true_masks, classes), (masks, scores, labels)) in enumerate(
            zip(objects, detections)):
        height, width = np.asarray(true_masks).shape[-2:] if len(true_masks) else (
            np.asarray(masks).shape[-2:])
        images.append({"id": image_id, "height": int(height), "width": int(width)})
        for mask, label in zip(true_masks, classes):
            rle = encoded(mask)
            truth.append({"id": len(truth) + 1, "image_id": image_id, "iscrowd": 0,
                          "category_id": int(label) + 1, "segmentation": rle,
                          "area": float(mask_utils.area(rle)),
                          "bbox": [float(v) for v in mask_utils.toBbox(rle)]})
        for mask, score, label in zip(masks, scores, labels):
            found.append({"image_id": image_id, "category_id": int(label) + 1,
                          "segmentation": encoded(mask), "score": float(score)})
    if not found or not truth:
        return {name: 0.0 if truth else -1.0 for name in MASK_METRIC_NAMES}
    categories = [{"id": index + 1, "name": str(index)} for index in range(num_classes)]
    stats = coco_eval_stats({"images": images, "annotations": truth, "categories": categories},
                            found, "segm")
    return {name: float(value) for name, value in zip(MASK_METRIC_NAMES, stats[:3])}
