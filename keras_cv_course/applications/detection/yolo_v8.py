"""An anchor-free YOLO in the style of YOLOv8: CSPDarknet with C2f, PAN, a decoupled DFL head.

Software: Glenn Jocher, Ayush Chaurasia, Jing Qiu. "Ultralytics YOLOv8".
2023. https://github.com/ultralytics/ultralytics (no paper). It combines:

* a decoupled head (separate box and class branches), as in YOLOX (Ge et
  al., 2021, arXiv:2107.08430);
* the distribution focal loss of Li et al., "Generalized Focal Loss: Learning
  Qualified and Distributed Bounding Boxes for Dense Object Detection",
  NeurIPS 2020, arXiv:2006.04388: each side's distance is a softmax over
  ``reg_max = 16`` bins (in stride units) and the box is its expectation;
* the CIoU loss of Zheng et al., "Distance-IoU Loss: Faster and Better
  Learning for Bounding Box Regression", AAAI 2020, arXiv:1911.08287;
* the task-aligned assigner of Feng et al., "TOOD: Task-aligned One-stage
  Object Detection", ICCV 2021, arXiv:2108.07755 (``topk = 10``,
  ``alpha = 0.5``, ``beta = 6``, CIoU overlaps, as ultralytics runs it).

Network (ultralytics' ``yolov8.yaml``; channels times ``width_multiple``,
capped at ``max_channels`` and rounded up to a multiple of 8; block repeats
times ``depth_multiple``, rounded, at least 1):

* backbone: Conv 64/2, Conv 128/2, C2f 128 x3, Conv 256/2, C2f 256 x6 (C3),
  Conv 512/2, C2f 512 x6 (C4), Conv 1024/2, C2f 1024 x3, SPPF (C5). "Conv"
  is convolution, batch norm, SiLU; C2f splits a 1x1 convolution's output in
  two halves, runs bottlenecks (two 3x3 convolutions, residual in the
  backbone) on the second half, concatenates every intermediate map and
  mixes them with a 1x1 convolution; SPPF is three chained 5x5 max pools.
* neck (PAN): top-down, upsample C5 and concatenate with C4 -> C2f 512,
  upsample and concatenate with C3 -> C2f 256 (P3 out); bottom-up, Conv 256/2
  and concatenate -> C2f 512 (P4 out), Conv 512/2 and concatenate with C5 ->
  C2f 1024 (P5 out). The neck's C2f blocks have no residuals.
* head, per level: a box branch (two 3x3 Conv of ``max(16, P3 / 4, 4 * reg_max)``
  channels, then a 1x1 convolution to ``4 * reg_max`` logits) and a class
  branch (two 3x3 Conv of ``max(P3, min(classes, 100))`` channels, then a 1x1
  convolution to ``classes`` logits); strides 8, 16, 32; one anchor point per
  cell, at its centre.

Variant choices, named:

* ``fused``: ``False`` builds the training form, every Conv a bias-free
  convolution followed by batch norm (momentum 0.03 in PyTorch's sense,
  epsilon 1e-3, as ultralytics); ``True`` builds the deployment form, each
  pair folded into one convolution with a bias, which is what ultralytics
  reports after ``model.fuse()``. ``fold_batch_norms`` copies a trained
  training-form model into a deployment-form one. The registry counts the
  deployment form: yolov8n 3,151,904 and yolov8s 11,156,544 parameters with
  80 classes, ultralytics' fused counts exactly (its training form has
  3,157,200 and 11,166,560, one more parameter per batch-norm channel; this
  builder's ``fused=False`` gives the same).
* The DFL's expectation ``sum_i i * softmax_i`` is a fixed 1x1 convolution
  with 16 weights ``0..15`` in ultralytics (no gradient), and its counts
  include those 16 weights. Here it is the head's non-trainable weight
  ``dfl_projection`` (``reg_max`` weights, set to ``0..reg_max-1``), so the
  counts are equal.
* Stride-2 convolutions pad one pixel on each side (PyTorch's), not Keras'
  "same" (which pads only the bottom and right), so weights transfer.
* Bias initialisation as ultralytics: box logits 1.0, class logits
  ``log(5 / classes / (H * W / stride^2))`` ("5 objects per image"), with the
  actual input size where ultralytics always uses 640.
* ``decode`` clips boxes to the image (ultralytics clips after NMS).
* ``strides=(4, 8, 16)`` (the first convolution at stride 1) suits tiny
  inputs; ultralytics' is ``(8, 16, 32)``.

The loss is ultralytics' ``v8DetectionLoss``: binary cross-entropy of the
class logits against the assigner's soft targets (summed over anchors and
classes), CIoU and DFL on the foreground anchors weighted by their target
score; all three divided by the sum of the target scores (at least 1), and
weighted 7.5 (box), 0.5 (class) and 1.5 (DFL). Ultralytics then multiplies
by the batch size; this returns the batch's normalised value (a mean scale).
The DFL of an anchor is the mean over its four sides, as in ultralytics.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_cv_course.applications.classification import common
from keras_cv_course.applications.registry import register_family
from keras_cv_course.detection.anchors import anchor_points, feature_sizes
from keras_cv_course.detection.boxes import clip_to_image
from keras_cv_course.detection.coder import boxes_to_distances, distances_to_boxes
from keras_cv_course.detection.head import DetectionHead, split_objects
from keras_cv_course.detection.iou import aligned_ciou
from keras_cv_course.detection.losses import distribution_focal_loss
from keras_cv_course.detection.matching import task_aligned_assign
from keras_cv_course.errors import KCCError

PAPER = (
    "Jocher, Chaurasia, Qiu. Ultralytics YOLOv8. Software, 2023, "
    "github.com/ultralytics/ultralytics; with Li et al., Generalized Focal Loss, NeurIPS 2020, "
    "arXiv:2006.04388; Zheng et al., Distance-IoU Loss (CIoU), AAAI 2020, arXiv:1911.08287; "
    "Feng et al., TOOD, ICCV 2021, arXiv:2108.07755"
)
# depth_multiple, width_multiple, max_channels (ultralytics' "scales").
SCALES = {"n": (0.33, 0.25, 1024), "s": (0.33, 0.50, 1024)}
# Backbone stages after the stem: (channels, C2f repeats) before scaling.
BACKBONE = ((128, 3), (256, 6), (512, 6), (1024, 3))
NECK_REPEATS = 3
BN_EPSILON, BN_MOMENTUM = 1e-3, 0.97  # PyTorch momentum 0.03
REG_MAX = 16


@keras.saving.register_keras_serializable(package="keras_cv_course")
class ChannelSplit(keras.layers.Layer):
    """Splits the channel axis into ``parts`` equal tensors (C2f's ``chunk(2)``)."""

    def __init__(self, parts=2, **kwargs):
        super().__init__(**kwargs)
        self.parts = int(parts)

    def call(self, x):
        return ops.split(x, self.parts, axis=-1)

    def compute_output_shape(self, input_shape):
        return [(*input_shape[:-1], input_shape[-1] // self.parts)] * self.parts

    def get_config(self):
        return {**super().get_config(), "parts": self.parts}


@keras.saving.register_keras_serializable(package="keras_cv_course")
class YoloV8Head(DetectionHead):
    """Anchor points, DFL decoding and ultralytics' loss over the packed head maps.

    Each anchor's raw row is ``4 * reg_max`` box-distribution logits (left,
    top, right, bottom) then ``num_classes`` class logits.

    Args:
        image_size: ``(height, width)`` of the network input.
        num_classes: object classes.
        strides: the levels' strides, finest first.
        reg_max: bins of each side's distance distribution.
        topk, alpha, beta: the task-aligned assigner's settings.
        box_gain, cls_gain, dfl_gain: the loss weights.
    """

    def __init__(self, image_size, num_classes, strides=(8, 16, 32), reg_max=REG_MAX, topk=10,
                 alpha=0.5, beta=6.0, box_gain=7.5, cls_gain=0.5, dfl_gain=1.5, **kwargs):
        super().__init__(image_size, num_classes, **kwargs)
        self.strides = tuple(int(s) for s in strides)
        self.reg_max = int(reg_max)
        self.topk, self.alpha, self.beta = int(topk), float(alpha), float(beta)
        self.gains = (float(box_gain), float(cls_gain), float(dfl_gain))
        self.points, self.point_strides = anchor_points(
            feature_sizes(self.image_size, self.strides), self.strides, offset=0.5)
        # ultralytics' DFL: a fixed 1x1 convolution whose weights are the bin values. Made
        # here, not in build, so that a head rebuilt from its config (DetectionLoss) has it.
        self.dfl_projection = self.add_weight(shape=(self.reg_max,), initializer="zeros",
                                              trainable=False, name="dfl_projection")
        self.dfl_projection.assign(np.arange(self.reg_max, dtype="float32"))

    def _split(self, raw):
        """``(B, A, 4, reg_max)`` distance logits and ``(B, A, C)`` class logits."""
        bins = 4 * self.reg_max
        return ops.reshape(raw[..., :bins], (-1, raw.shape[1], 4, self.reg_max)), raw[..., bins:]

    def _boxes(self, distance_logits):
        """``xyxy`` pixel boxes from the expected distances (stride units)."""
        distances = ops.sum(ops.softmax(distance_logits, axis=-1) * self.dfl_projection, axis=-1)
        return distances_to_boxes(self.points, distances, self.point_strides)

    def decode(self, raw):
        distance_logits, class_logits = self._split(ops.cast(raw, "float32"))
        boxes = clip_to_image(self._boxes(distance_logits), self.image_size)
        return boxes, ops.sigmoid(class_logits)

    def assign(self, objects, raw):
        """The task-aligned assignment of a batch (``matching.task_aligned_assign``'s dict)."""
        distance_logits, class_logits = self._split(ops.cast(raw, "float32"))
        gt_boxes, gt_classes = split_objects(objects, self.image_size)
        return task_aligned_assign(
            ops.stop_gradient(ops.sigmoid(class_logits)),
            ops.stop_gradient(self._boxes(distance_logits)), self.points, gt_classes, gt_boxes,
            topk=self.topk, alpha=self.alpha, beta=self.beta, overlap="ciou")

    def loss(self, objects, raw):
        raw = ops.cast(raw, "float32")
        distance_logits, class_logits = self._split(raw)
        target = self.assign(objects, raw)
        scores = target["scores"]
        normalizer = ops.maximum(ops.sum(scores), 1.0)
        classification = ops.sum(ops.binary_crossentropy(scores, class_logits, from_logits=True))
        weight = ops.sum(scores, axis=-1) * ops.cast(target["foreground"], "float32")  # (B, A)
        box = 1.0 - aligned_ciou(self._boxes(distance_logits), target["boxes"])
        distances = boxes_to_distances(self.points, target["boxes"], self.point_strides)
        dfl = ops.mean(distribution_focal_loss(distances, distance_logits, reduction="none"), -1)
        box_gain, cls_gain, dfl_gain = self.gains
        return (box_gain * ops.sum(box * weight) + cls_gain * classification
                + dfl_gain * ops.sum(dfl * weight)) / normalizer

    def get_config(self):
        box_gain, cls_gain, dfl_gain = self.gains
        return {**super().get_config(), "strides": list(self.strides), "reg_max": self.reg_max,
                "topk": self.topk, "alpha": self.alpha, "beta": self.beta,
                "box_gain": box_gain, "cls_gain": cls_gain, "dfl_gain": dfl_gain}


def conv(x, filters, kernel, name, stride=1, fused=False, activation="silu",
         bias_initializer="zeros"):
    """ultralytics' Conv: convolution, batch norm (or the folded bias), SiLU."""
    padding = "same"
    if stride > 1:  # PyTorch's symmetric padding, not Keras' bottom-right "same"
        x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        padding = "valid"
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=fused,
                            bias_initializer=bias_initializer, name=f"{name}_conv")(x)
    if not fused:
        x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                            name=f"{name}_bn")(x)
    return keras.layers.Activation(activation, name=f"{name}_{activation}")(x)


def bottleneck(x, channels, shortcut, name, fused):
    """Two 3x3 Convs, with a residual when ``shortcut``."""
    y = conv(x, channels, 3, f"{name}_cv1", fused=fused)
    y = conv(y, channels, 3, f"{name}_cv2", fused=fused)
    return keras.layers.Add(name=f"{name}_add")([x, y]) if shortcut else y


def c2f(x, filters, repeats, shortcut, name, fused):
    """C2f: split a 1x1 Conv in halves, chain bottlenecks on one, concatenate all, 1x1 Conv."""
    hidden = filters // 2
    x = conv(x, 2 * hidden, 1, f"{name}_cv1", fused=fused)
    parts = list(ChannelSplit(2, name=f"{name}_split")(x))
    for index in range(1, repeats + 1):
        parts.append(bottleneck(parts[-1], hidden, shortcut, f"{name}_m{index}", fused))
    x = keras.layers.Concatenate(name=f"{name}_concat")(parts)
    return conv(x, filters, 1, f"{name}_cv2", fused=fused)


def sppf(x, filters, name, fused, pool_size=5):
    """SPPF: a 1x1 Conv, three chained max pools, all four concatenated, a 1x1 Conv."""
    maps = [conv(x, x.shape[-1] // 2, 1, f"{name}_cv1", fused=fused)]
    for index in range(1, 4):
        maps.append(keras.layers.MaxPooling2D(pool_size, strides=1, padding="same",
                                              name=f"{name}_pool{index}")(maps[-1]))
    x = keras.layers.Concatenate(name=f"{name}_concat")(maps)
    return conv(x, filters, 1, f"{name}_cv2", fused=fused)


def backbone(image, width, depth, first_stride, fused):
    """CSPDarknet with C2f and SPPF: ``{3: C3, 4: C4, 5: C5}``."""
    x = conv(image, width(64), 3, "stem", stride=first_stride, fused=fused)
    levels = {}
    for stage, (channels, repeats) in enumerate(BACKBONE, start=1):
        x = conv(x, width(channels), 3, f"stage{stage}_down", stride=2, fused=fused)
        x = c2f(x, width(channels), depth(repeats), True, f"stage{stage}_c2f", fused)
        levels[stage + 1] = x
    levels[5] = sppf(x, width(1024), "sppf", fused)
    return {level: levels[level] for level in (3, 4, 5)}


def pan_neck(levels, width, depth, fused):
    """The PAN: a top-down then a bottom-up path of C2f blocks; ``[P3, P4, P5]``."""
    repeats = depth(NECK_REPEATS)
    up = keras.layers.UpSampling2D(2, name="neck_up4")(levels[5])
    x = keras.layers.Concatenate(name="neck_concat4")([up, levels[4]])
    top_down4 = c2f(x, width(512), repeats, False, "neck_c2f4", fused)
    up = keras.layers.UpSampling2D(2, name="neck_up3")(top_down4)
    x = keras.layers.Concatenate(name="neck_concat3")([up, levels[3]])
    p3 = c2f(x, width(256), repeats, False, "neck_c2f3", fused)
    x = conv(p3, width(256), 3, "neck_down4", stride=2, fused=fused)
    x = keras.layers.Concatenate(name="neck_pan_concat4")([x, top_down4])
    p4 = c2f(x, width(512), repeats, False, "neck_pan_c2f4", fused)
    x = conv(p4, width(512), 3, "neck_down5", stride=2, fused=fused)
    x = keras.layers.Concatenate(name="neck_pan_concat5")([x, levels[5]])
    p5 = c2f(x, width(1024), repeats, False, "neck_pan_c2f5", fused)
    return [p3, p4, p5]


def decoupled_head(x, box_channels, class_channels, classes, reg_max, class_bias, name, fused):
    """One level's box branch (DFL logits) and class branch, concatenated."""
    box = conv(x, box_channels, 3, f"{name}_box1", fused=fused)
    box = conv(box, box_channels, 3, f"{name}_box2", fused=fused)
    box = keras.layers.Conv2D(4 * reg_max, 1, bias_initializer=keras.initializers.Constant(1.0),
                              name=f"{name}_box_pred")(box)
    cls = conv(x, class_channels, 3, f"{name}_cls1", fused=fused)
    cls = conv(cls, class_channels, 3, f"{name}_cls2", fused=fused)
    cls = keras.layers.Conv2D(classes, 1, bias_initializer=keras.initializers.Constant(class_bias),
                              name=f"{name}_cls_pred")(cls)
    return keras.layers.Concatenate(name=f"{name}_outputs")([box, cls])


def _check_strides(strides):
    strides = tuple(int(s) for s in strides)
    if strides not in ((8, 16, 32), (4, 8, 16)):
        raise KCCError(f"YOLOv8 strides must be (8, 16, 32) or (4, 8, 16), got {strides}")
    return strides


def YOLOv8(
    input_shape=(640, 640, 3),
    classes=80,
    depth_multiple=0.33,
    width_multiple=0.25,
    max_channels=1024,
    reg_max=REG_MAX,
    strides=(8, 16, 32),
    fused=False,
    input_tensor=None,
    name=None,
):
    """Builds an anchor-free YOLO in the YOLOv8 style.

    Args:
        input_shape: ``(height, width, channels)``; static, multiples of the
            largest stride.
        classes: object classes (80 for COCO).
        depth_multiple, width_multiple, max_channels: ultralytics' scale
            (``SCALES``; yolov8n is 0.33, 0.25, 1024).
        reg_max: bins of each side's distance distribution (16).
        strides: ``(8, 16, 32)`` or, for tiny inputs, ``(4, 8, 16)``.
        fused: build the deployment form (batch norm folded into biases).
        input_tensor: optional Keras tensor to build on.
        name: model name.

    Returns:
        A model from images in [0, 1] to ``(batch, anchors, 4 * reg_max +
        classes)``, whose last layer is a ``YoloV8Head`` named ``raw_detections``.
    """
    strides = _check_strides(strides)
    image = common.image_input(input_tensor, input_shape, default_shape=(640, 640, 3))
    size = tuple(image.shape[1:3])
    if None in size or size[0] % strides[-1] or size[1] % strides[-1]:
        raise KCCError(f"YOLOv8 needs a static input size, multiple of {strides[-1]}, "
                       f"got {tuple(image.shape[1:])}")

    def width(channels):
        return int(math.ceil(min(channels, max_channels) * width_multiple / 8) * 8)

    def depth(repeats):
        return max(round(repeats * depth_multiple), 1)

    levels = pan_neck(backbone(image, width, depth, strides[0] // 4, fused), width, depth, fused)
    first = levels[0].shape[-1]
    box_channels = max(16, first // 4, 4 * reg_max)
    class_channels = max(first, min(classes, 100))
    maps = []
    for level, (x, stride) in enumerate(zip(levels, strides), start=3):
        class_bias = math.log(5 / classes / (size[0] * size[1] / stride**2))
        maps.append(decoupled_head(x, box_channels, class_channels, classes, reg_max,
                                   class_bias, f"head_p{level}", fused))
    head = YoloV8Head(size, classes, strides, reg_max)
    return keras.Model(common.model_inputs(image, input_tensor), head(*maps),
                       name=name or "yolov8")


def fold_batch_norms(source, target):
    """Copies a training-form model (``fused=False``) into a deployment-form one.

    Each ``{name}_conv`` + ``{name}_bn`` pair of ``source`` becomes the kernel
    ``W * gamma / sqrt(v + eps)`` and bias ``beta - m * gamma / sqrt(v + eps)`` of
    ``target``'s ``{name}_conv``; every other weight is copied. Both models
    must come from ``YOLOv8`` with the same arguments but ``fused``.
    """
    norms = {layer.name: layer for layer in source.layers
             if isinstance(layer, keras.layers.BatchNormalization)}
    for layer in target.layers:
        if not layer.weights:
            continue
        origin = source.get_layer(layer.name)
        norm = norms.get(layer.name.removesuffix("_conv") + "_bn")
        if layer.name.endswith("_conv") and norm is not None:
            gamma, beta, mean, variance = (ops.convert_to_numpy(w) for w in norm.weights)
            scale = gamma / np.sqrt(variance + norm.epsilon)
            kernel = ops.convert_to_numpy(origin.kernel)
            layer.set_weights([kernel * scale, beta - mean * scale])
        else:
            layer.set_weights(origin.get_weights())
    return target


def _variant(scale):
    depth_multiple, width_multiple, max_channels = SCALES[scale]

    def builder(**kwargs):
        kwargs.setdefault("name", f"yolov8{scale}")
        return YOLOv8(**{"depth_multiple": depth_multiple, "width_multiple": width_multiple,
                         "max_channels": max_channels, **kwargs})
    builder.__name__ = f"YOLOv8{scale}"
    builder.__doc__ = (f"YOLOv8{scale} (depth {depth_multiple}, width {width_multiple}); "
                       "see ``YOLOv8``.")
    return builder


# Tiny: 32 x 32 shapes images, strides 4/8/16 (8x8, 4x4, 2x2 grids), 8-32 channels, 8 bins.
TINY = dict(input_shape=(32, 32, 3), classes=3, width_multiple=0.0625, max_channels=512,
            reg_max=8, strides=(4, 8, 16))

VARIANTS = (
    dict(name="yolov8n", builder=_variant("n"), reference_params=3_151_904,
         description="YOLOv8n-style anchor-free detector (C2f, PAN, DFL head)"),
    dict(name="yolov8s", builder=_variant("s"), reference_params=11_156_544,
         description="YOLOv8s-style anchor-free detector (C2f, PAN, DFL head)"),
)

register_family("yolov8", VARIANTS, task="detection", paper=PAPER,
                params_source="ultralytics, fused model (model.fuse(); 80 classes, "
                              "the DFL's 16 fixed weights included)",
                full_config=dict(input_shape=(640, 640, 3), classes=80, fused=True),
                tiny_config=TINY)
