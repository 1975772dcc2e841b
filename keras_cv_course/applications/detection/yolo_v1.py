"""YOLO v1: detection as one regression from the image to a grid of boxes.

Paper: Joseph Redmon, Santosh Divvala, Ross Girshick, Ali Farhadi. "You Only
Look Once: Unified, Real-Time Object Detection". CVPR 2016. arXiv:1506.02640.

The image is divided into an ``S x S`` grid. Each cell predicts ``B`` boxes,
each as ``(x, y, sqrt(w), sqrt(h), confidence)``, and one set of ``C`` class
probabilities ``P(class | object)`` shared by its boxes: an ``S x S x (5B + C)``
tensor (7 x 7 x 30 for PASCAL VOC). ``x, y`` are the box centre's offsets
within its cell (in cell units, 0 to 1); ``w, h`` are the box size relative to
the whole image. At test time each box's class-specific confidence is
``P(class | object) * confidence``, and the boxes go to NMS.

The network is the paper's Figure 3 layer table: 24 convolutions (1x1
reductions followed by 3x3 convolutions, after GoogLeNet) and 2 fully
connected layers, leaky ReLU with slope 0.1 everywhere but the last layer,
which is linear, and dropout 0.5 after the first fully connected layer.

The loss is the paper's sum-squared error (Section 2.2), summed over the
cells of an image and averaged over the batch::

    5   * sum_obj (x - x^)^2 + (y - y^)^2 + (sqrt w - sqrt w^)^2 + (sqrt h - sqrt h^)^2
    + sum_obj (C - C^)^2  +  0.5 * sum_noobj C^2  +  sum_cells-with-object sum_c (p(c) - p^(c))^2

where ``obj`` marks the one predictor "responsible" for an object: among the
``B`` predictors of the cell holding the object's centre, the one whose
current box has the highest IoU with it. Its confidence target ``C`` is that
IoU (as a constant), so that confidence means ``P(object) * IoU``; every other
predictor's target is 0.

Variant choices, named:

* no batch normalisation (it came with YOLO v2); every convolution and both
  fully connected layers have biases, as Darknet's layers without batch
  norm do;
* the first fully connected layer has 4096 units, as in the paper (Darknet's
  released ``yolov1.cfg`` later used a locally connected layer instead);
* "same" padding everywhere, so 448 -> 7 after the stride-2 7x7 convolution,
  four 2x2 max pools and the stride-2 3x3 convolution (stride 64);
* every output is linear, as in the paper and Darknet (``sqrt=1``,
  ``softmax=0``); ``decode`` squares the predicted square roots and clips the
  class-specific confidences to [0, 1];
* the responsible predictor is the one of highest IoU; when no predictor
  overlaps the box (early in training) it is the one of smallest squared
  error from the box, as Darknet decides;
* when several object centres fall in one cell, the cell learns the last of
  them (the paper's grid holds one object per cell; Darknet keeps the last);
* the raw output is one row per cell: ``B`` boxes of
  ``(x, y, sqrt w, sqrt h, confidence)``, then the ``C`` class probabilities.

Parameters of the full model (448 x 448, S = 7, B = 2, C = 20), from the
Figure 3 table, ``k*k*c_in*c_out + c_out`` per convolution:

=======  =======================================================  ===========
group    layers                                                   parameters
=======  =======================================================  ===========
1        7x7x64 /2                                                      9,472
2        3x3x192                                                      110,784
3        1x1x128, 3x3x256, 1x1x256, 3x3x512                         1,565,824
4        4 x (1x1x256, 3x3x512), 1x1x512, 3x3x1024                 10,228,224
5        2 x (1x1x512, 3x3x1024), 3x3x1024, 3x3x1024 /2            29,365,248
6        3x3x1024, 3x3x1024                                        18,876,416
fc1      7*7*1024 -> 4096                                         205,524,992
fc2      4096 -> 7*7*30                                             6,022,590
total                                                             271,703,550
=======  =======================================================  ===========
"""

import keras
import numpy as np
from keras import ops

from keras_cv_course.applications.classification import common
from keras_cv_course.applications.registry import register_family
from keras_cv_course.detection.head import DetectionHead, split_objects
from keras_cv_course.detection.iou import aligned_iou
from keras_cv_course.errors import KCCError

PAPER = (
    "Redmon, Divvala, Girshick, Farhadi. You Only Look Once: Unified, Real-Time "
    "Object Detection. CVPR 2016. arXiv:1506.02640"
)
POOL = "pool"
# Figure 3, one tuple per group: (kernel, filters, stride) convolutions; POOL, a 2x2/2 max pool.
PAPER_LAYERS = (
    ((7, 64, 2), POOL),
    ((3, 192, 1), POOL),
    ((1, 128, 1), (3, 256, 1), (1, 256, 1), (3, 512, 1), POOL),
    (((1, 256, 1), (3, 512, 1)) * 4 + ((1, 512, 1), (3, 1024, 1), POOL)),
    (((1, 512, 1), (3, 1024, 1)) * 2 + ((3, 1024, 1), (3, 1024, 2))),
    ((3, 1024, 1), (3, 1024, 1)),
)
LEAKY_SLOPE = 0.1
FIELDS_PER_BOX = 5  # x, y, sqrt(w), sqrt(h), confidence


@keras.saving.register_keras_serializable(package="keras_cv_course")
class YoloV1Head(DetectionHead):
    """YOLO v1's grid: reshapes the last layer, decodes boxes, computes the paper's loss.

    Args:
        image_size: ``(height, width)`` of the network input.
        num_classes: ``C``.
        grid_size: ``S``.
        boxes_per_cell: ``B``.
        lambda_coord: weight of the box coordinates (5 in the paper).
        lambda_noobj: weight of the confidence of predictors without an object (0.5).
    """

    def __init__(self, image_size, num_classes, grid_size=7, boxes_per_cell=2,
                 lambda_coord=5.0, lambda_noobj=0.5, **kwargs):
        super().__init__(image_size, num_classes, **kwargs)
        self.grid_size = int(grid_size)
        self.boxes_per_cell = int(boxes_per_cell)
        self.lambda_coord = float(lambda_coord)
        self.lambda_noobj = float(lambda_noobj)
        rows, columns = np.meshgrid(np.arange(self.grid_size), np.arange(self.grid_size),
                                    indexing="ij")
        # (S*S, 1, 2): each cell's (column, row), row-major, broadcast over its B boxes.
        self._cells = np.stack([columns.reshape(-1), rows.reshape(-1)], -1)[:, None].astype(
            "float32")

    @property
    def fields(self):
        """Numbers per cell: ``5B + C``."""
        return FIELDS_PER_BOX * self.boxes_per_cell + self.num_classes

    def pack(self, levels):
        """The last fully connected layer ``(N, S*S*(5B + C))`` -> ``(N, S*S, 5B + C)``."""
        return ops.reshape(levels[0], (-1, self.grid_size**2, self.fields))

    def _split(self, raw):
        """``(x, y) (N, S*S, B, 2)``, ``sqrt sizes (N, S*S, B, 2)``, confidences
        ``(N, S*S, B)`` and class probabilities ``(N, S*S, C)``."""
        count = FIELDS_PER_BOX * self.boxes_per_cell
        boxes = ops.reshape(raw[..., :count], (-1, self.grid_size**2, self.boxes_per_cell,
                                               FIELDS_PER_BOX))
        return boxes[..., :2], boxes[..., 2:4], boxes[..., 4], raw[..., count:]

    def _boxes(self, offsets, sqrt_sizes):
        """``xyxy`` boxes in image fractions (0 to 1) from the cell offsets and sqrt sizes."""
        centres = (offsets + self._cells) / self.grid_size
        half = ops.square(sqrt_sizes) / 2
        return ops.concatenate([centres - half, centres + half], axis=-1)

    def decode(self, raw):
        offsets, sqrt_sizes, confidence, probabilities = self._split(raw)
        height, width = self.image_size
        scale = ops.convert_to_tensor([width, height, width, height], "float32")
        boxes = ops.clip(self._boxes(offsets, sqrt_sizes), 0.0, 1.0) * scale
        scores = ops.expand_dims(probabilities, 2) * ops.expand_dims(confidence, -1)
        count = self.grid_size**2 * self.boxes_per_cell
        return (ops.reshape(boxes, (-1, count, 4)),
                ops.reshape(ops.clip(scores, 0.0, 1.0), (-1, count, self.num_classes)))

    def _cell_targets(self, objects):
        """Per cell: whether it holds an object's centre ``(N, S*S)``, and that object's box
        ``(N, S*S, 4)`` ``xyxy`` in image fractions and one-hot class ``(N, S*S, C)``."""
        gt_boxes, gt_classes = split_objects(objects, (1, 1))  # fractions of the image
        centres = (gt_boxes[..., :2] + gt_boxes[..., 2:]) / 2
        cell = ops.cast(ops.clip(ops.floor(centres * self.grid_size), 0, self.grid_size - 1),
                        "int32")
        index = cell[..., 1] * self.grid_size + cell[..., 0]  # (N, M)
        valid = ops.cast(gt_classes >= 0, "float32")
        in_cell = ops.one_hot(index, self.grid_size**2) * ops.expand_dims(valid, -1)  # (N, M, SS)
        # The last object whose centre is in a cell owns it.
        rank = in_cell * ops.expand_dims(ops.cumsum(ops.ones_like(valid), axis=1), -1)
        owner = ops.expand_dims(ops.argmax(rank, axis=1), -1)  # (N, SS, 1)
        has_object = ops.max(in_cell, axis=1)  # (N, SS)
        boxes = ops.take_along_axis(gt_boxes, ops.repeat(owner, 4, -1), axis=1)
        classes = ops.take_along_axis(ops.maximum(gt_classes, 0), owner[..., 0], axis=1)
        return has_object, boxes, ops.one_hot(classes, self.num_classes)

    def _responsible(self, predicted, target, has_object):
        """``(N, S*S, B)`` one-hot of each object cell's responsible predictor, and the
        predictors' IoUs with the cell's object."""
        iou = aligned_iou(predicted, ops.expand_dims(target, 2))  # (N, SS, B)
        error = ops.sum(ops.square(predicted - ops.expand_dims(target, 2)), axis=-1)
        overlaps = ops.any(iou > 0, axis=-1, keepdims=True)
        rank = ops.where(overlaps, iou, -error)  # Darknet: smallest error if none overlaps
        best = ops.one_hot(ops.argmax(rank, axis=-1), self.boxes_per_cell)
        return best * ops.expand_dims(has_object, -1), iou

    def loss(self, objects, raw):
        raw = ops.cast(raw, "float32")
        objects = ops.convert_to_tensor(objects, "float32")
        offsets, sqrt_sizes, confidence, probabilities = self._split(raw)
        has_object, target, target_classes = self._cell_targets(objects)
        predicted = self._boxes(offsets, sqrt_sizes)
        responsible, iou = self._responsible(ops.stop_gradient(predicted), target, has_object)
        size = target[..., 2:] - target[..., :2]
        target_offsets = (target[..., :2] + size / 2) * self.grid_size - self._cells[:, 0]
        target_sqrt = ops.sqrt(ops.maximum(size, 0.0))
        coordinates = (ops.sum(ops.square(offsets - ops.expand_dims(target_offsets, 2)), -1)
                       + ops.sum(ops.square(sqrt_sizes - ops.expand_dims(target_sqrt, 2)), -1))
        object_term = ops.square(confidence - ops.stop_gradient(iou))
        classes = ops.sum(ops.square(probabilities - target_classes), -1) * has_object
        total = (self.lambda_coord * ops.sum(responsible * coordinates)
                 + ops.sum(responsible * object_term)
                 + self.lambda_noobj * ops.sum((1 - responsible) * ops.square(confidence))
                 + ops.sum(classes))
        return total / ops.cast(ops.shape(raw)[0], "float32")

    def get_config(self):
        return {**super().get_config(), "grid_size": self.grid_size,
                "boxes_per_cell": self.boxes_per_cell, "lambda_coord": self.lambda_coord,
                "lambda_noobj": self.lambda_noobj}


def conv_group(x, layers, group):
    """One group of Figure 3: convolutions with leaky ReLU 0.1, and its max pool."""
    index = 0
    for layer in layers:
        if layer == POOL:
            x = keras.layers.MaxPooling2D(2, strides=2, name=f"group{group}_pool")(x)
            continue
        index += 1
        kernel, filters, stride = layer
        x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same",
                                name=f"group{group}_conv{index}")(x)
        x = keras.layers.LeakyReLU(LEAKY_SLOPE, name=f"group{group}_conv{index}_leaky")(x)
    return x


def fully_connected(x, units, outputs, dropout_rate):
    """fc1 (leaky ReLU, dropout) and the linear fc2 that predicts the whole grid."""
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(units, name="fc1")(x)
    x = keras.layers.LeakyReLU(LEAKY_SLOPE, name="fc1_leaky")(x)
    x = keras.layers.Dropout(dropout_rate, name="fc1_dropout")(x)
    return keras.layers.Dense(outputs, name="fc2")(x)


def YOLOv1(
    input_shape=(448, 448, 3),
    classes=20,
    grid_size=7,
    boxes_per_cell=2,
    layers=PAPER_LAYERS,
    fc_units=4096,
    dropout_rate=0.5,
    lambda_coord=5.0,
    lambda_noobj=0.5,
    input_tensor=None,
    name=None,
):
    """Builds YOLO v1.

    Args:
        input_shape: ``(height, width, channels)``; static.
        classes: ``C`` (20 for PASCAL VOC).
        grid_size: ``S``.
        boxes_per_cell: ``B``.
        layers: the convolution groups, as ``PAPER_LAYERS``: per group, a
            tuple of ``(kernel, filters, stride)`` convolutions and ``"pool"``
            (a 2x2 stride-2 max pool).
        fc_units: width of the first fully connected layer.
        dropout_rate: dropout after the first fully connected layer.
        lambda_coord, lambda_noobj: the loss weights.
        input_tensor: optional Keras tensor to build on.
        name: model name.

    Returns:
        A model from images in [0, 1] to the raw grid ``(batch, S*S, 5B + C)``,
        whose last layer is a ``YoloV1Head`` named ``raw_detections``.
    """
    image = common.image_input(input_tensor, input_shape, default_shape=(448, 448, 3))
    if None in image.shape[1:3]:
        raise KCCError(f"YOLO v1 needs a static input size, got {tuple(image.shape[1:])}")
    x = image
    for group, group_layers in enumerate(layers, start=1):
        x = conv_group(x, group_layers, group)
    head = YoloV1Head(image.shape[1:3], classes, grid_size, boxes_per_cell,
                      lambda_coord, lambda_noobj)
    x = fully_connected(x, fc_units, grid_size**2 * head.fields, dropout_rate)
    return keras.Model(common.model_inputs(image, input_tensor), head(x), name=name or "yolo_v1")


# Tiny: a 4 x 4 grid on 32 x 32 shapes images, three narrow groups (32 -> 4 after 3 pools).
TINY = dict(input_shape=(32, 32, 3), classes=3, grid_size=4, fc_units=64, dropout_rate=0.0,
            layers=(((3, 8, 1), POOL), ((3, 16, 1), POOL), ((1, 8, 1), (3, 16, 1), POOL)))

VARIANTS = (
    dict(name="yolo_v1", builder=YOLOv1,
         description="YOLO v1: 24 convolutions, 2 fully connected layers, a 7x7 grid"),
)

register_family("yolo_v1", VARIANTS, task="detection", paper=PAPER,
                reference_params=271_703_550,
                params_source="computed from the paper's Figure 3 layer table",
                full_config=dict(input_shape=(448, 448, 3), classes=20), tiny_config=TINY)
