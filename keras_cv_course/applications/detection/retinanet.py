"""RetinaNet: a one-stage detector trained with the focal loss.

Paper: Tsung-Yi Lin, Priya Goyal, Ross Girshick, Kaiming He, Piotr Dollár.
"Focal Loss for Dense Object Detection". ICCV 2017. arXiv:1708.02002.

A ResNet-FPN gives five levels P3-P7; at every cell of every level sit nine
anchors (three scales per octave times three aspect ratios). Two small
fully convolutional towers, shared by all levels, predict for each anchor
``C`` class logits (independent sigmoids, no background class) and four box
offsets. Training matches anchors to objects by IoU and weighs the
classification with the focal loss, ``-alpha_t (1 - p_t)^gamma log(p_t)``,
so that the easy background anchors do not swamp the few positive ones.

Variant choices, named (torchvision ``retinanet_resnet50_fpn``, v1):

* backbone: ResNet-50 v1.5 with frozen BatchNorm, C3-C5; inputs normalised
  with ImageNet's mean and standard deviation inside the model
  (``resnet_fpn.py``);
* FPN with 256 channels; P6 is a 3x3/2 convolution of **P5** and P7 one of
  ReLU(P6) (torchvision's ``LastLevelP6P7(256, 256)``; the paper computes P6
  from C5);
* anchors: base sizes 32-512 on P3-P7, scales ``2^(k/3)`` truncated to
  integers, aspect ratios 0.5, 1, 2, centred on cell corners
  (``detection.AnchorGenerator``);
* heads: four 3x3 convolutions with ReLU and no normalisation in each tower
  (v1; v2 adds GroupNorm), N(0, 0.01) weights, classification bias from the
  prior probability 0.01;
* matching: IoU >= 0.5 positive, < 0.4 background, in between ignored, and
  every object also gets its best anchors (``allow_low_quality_matches``);
* losses: sigmoid focal loss (alpha 0.25, gamma 2) over the anchors that are
  not ignored, L1 loss on the offsets of positive anchors (``BoxCoder``
  weights 1, 1, 1, 1), each divided by the image's number of positive
  anchors (at least 1), averaged over the batch, as torchvision does;
* decoding: sigmoid scores, boxes from the anchors, clipped to the image.
  The task runs NMS (torchvision: per-class NMS at IoU 0.5).

The model's only output is the packed head, ``(B, anchors, C + 4)``: class
logits then box offsets of every anchor, ordered (level, y, x, anchor).
"""

import keras
from keras import ops

from keras_cv_course.applications.detection import resnet_fpn
from keras_cv_course.applications.registry import register_family
from keras_cv_course.detection import (
    BETWEEN_THRESHOLDS,
    RETINANET_BASE_SIZES,
    AnchorGenerator,
    BoxCoder,
    Matcher,
    clip_to_image,
    feature_sizes,
    match_anchors,
    retinanet_sizes,
    sigmoid_focal_loss,
)
from keras_cv_course.detection.head import DetectionHead, split_objects
from keras_cv_course.errors import KCCError

PAPER = (
    "Lin, Goyal, Girshick, He, Dollar. Focal Loss for Dense Object Detection. "
    "ICCV 2017. arXiv:1708.02002"
)
ASPECT_RATIOS = (0.5, 1.0, 2.0)
FOREGROUND_IOU = 0.5
BACKGROUND_IOU = 0.4
FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0


def padded_objects(objects):
    """Targets with one more padding row, so that images (and batches) without
    objects still have a box axis to gather from."""
    objects = ops.cast(ops.convert_to_tensor(objects), "float32")
    padding = ops.full((ops.shape(objects)[0], 1, 5), -1.0, dtype="float32")
    return ops.concatenate([objects, padding], axis=1)


def gather_objects(values, index):
    """``values (B, G, ...)`` taken at ``index (B, A)``: ``(B, A, ...)``."""
    if len(values.shape) == 2:
        return ops.take_along_axis(values, index, axis=1)
    index = ops.repeat(ops.expand_dims(index, -1), values.shape[-1], axis=-1)
    return ops.take_along_axis(values, index, axis=1)


@keras.saving.register_keras_serializable(package="keras_cv_course")
class RetinaNetHead(DetectionHead):
    """RetinaNet's anchors, matching, focal + L1 loss and decoding.

    Args:
        image_size: ``(height, width)`` of the network input.
        num_classes: object classes.
        strides: each level's stride, finest first.
        anchor_sizes: each level's anchor sizes (``detection.retinanet_sizes``).
        aspect_ratios: height / width ratios of the anchors of every cell.
        foreground_iou, background_iou: the matcher's thresholds.
        focal_alpha, focal_gamma: the focal loss's.
        **kwargs: base layer arguments (``name`` defaults to ``raw_detections``).

    Called on ``[class logits, box offsets]`` maps of every level, finest first
    (``(B, H, W, A * C)`` and ``(B, H, W, A * 4)``).
    """

    def __init__(self, image_size, num_classes, strides, anchor_sizes,
                 aspect_ratios=ASPECT_RATIOS, foreground_iou=FOREGROUND_IOU,
                 background_iou=BACKGROUND_IOU, focal_alpha=FOCAL_ALPHA,
                 focal_gamma=FOCAL_GAMMA, **kwargs):
        super().__init__(image_size, num_classes, **kwargs)
        self.strides = tuple(int(s) for s in strides)
        self.anchor_sizes = tuple(tuple(int(s) for s in level) for level in anchor_sizes)
        self.aspect_ratios = tuple(float(r) for r in aspect_ratios)
        self.foreground_iou, self.background_iou = float(foreground_iou), float(background_iou)
        self.focal_alpha, self.focal_gamma = float(focal_alpha), float(focal_gamma)
        generator = AnchorGenerator(self.anchor_sizes, self.aspect_ratios)
        self.anchors_per_location = generator.num_anchors_per_location()[0]
        self.anchors = generator(self.image_size, feature_sizes(self.image_size, self.strides))
        self.coder = BoxCoder()
        self.matcher = Matcher(self.foreground_iou, self.background_iou,
                               allow_low_quality_matches=True)

    def pack(self, levels):
        """``[cls_P3, box_P3, cls_P4, ...]`` -> ``(B, anchors, C + 4)``."""
        packed = []
        for logits, offsets in zip(levels[0::2], levels[1::2], strict=True):
            cells = logits.shape[1] * logits.shape[2] * self.anchors_per_location
            packed.append(ops.concatenate([ops.reshape(logits, (-1, cells, self.num_classes)),
                                           ops.reshape(offsets, (-1, cells, 4))], axis=-1))
        return packed[0] if len(packed) == 1 else ops.concatenate(packed, axis=1)

    def decode(self, raw):
        raw = ops.cast(raw, "float32")
        boxes = self.coder.decode(raw[..., self.num_classes:], self.anchors)
        return clip_to_image(boxes, self.image_size), ops.sigmoid(raw[..., :self.num_classes])

    def match(self, objects):
        """``(B, A)`` int32 matched object of every anchor; -1 background, -2 ignored.

        Also returns the ground truth, ``(gt_boxes, gt_classes)``, with one padding row.
        """
        gt_boxes, gt_classes = split_objects(padded_objects(objects), self.image_size)
        return match_anchors(self.anchors, gt_boxes, gt_classes, self.matcher), gt_boxes, gt_classes

    def loss(self, objects, raw):
        raw = ops.cast(raw, "float32")
        logits, offsets = raw[..., :self.num_classes], raw[..., self.num_classes:]
        matches, gt_boxes, gt_classes = self.match(objects)
        foreground = matches >= 0
        index = ops.maximum(matches, 0)
        classes = ops.maximum(gather_objects(gt_classes, index), 0)
        labels = ops.one_hot(classes, self.num_classes) * ops.cast(foreground, "float32")[..., None]
        focal = sigmoid_focal_loss(labels, logits, self.focal_alpha, self.focal_gamma,
                                   reduction="none")
        counted = ops.expand_dims(matches != BETWEEN_THRESHOLDS, -1)
        classification = ops.sum(ops.where(counted, focal, 0.0), axis=(1, 2))
        # Background anchors get their own box as target (offsets 0), so no log(0) anywhere.
        boxes = ops.where(foreground[..., None], gather_objects(gt_boxes, index), self.anchors)
        l1 = ops.sum(ops.abs(offsets - self.coder.encode(boxes, self.anchors)), axis=-1)
        regression = ops.sum(ops.where(foreground, l1, 0.0), axis=1)
        positives = ops.maximum(ops.sum(ops.cast(foreground, "float32"), axis=1), 1.0)
        return ops.mean((classification + regression) / positives)

    def get_config(self):
        return {**super().get_config(), "strides": list(self.strides),
                "anchor_sizes": [list(level) for level in self.anchor_sizes],
                "aspect_ratios": list(self.aspect_ratios),
                "foreground_iou": self.foreground_iou, "background_iou": self.background_iou,
                "focal_alpha": self.focal_alpha, "focal_gamma": self.focal_gamma}


def retinanet_heads(pyramid, classes, anchors_per_location, depth):
    """The classification and box towers, shared by every level; their outputs per level."""
    width = int(next(iter(pyramid.values())).shape[-1])
    cls_tower = resnet_fpn.tower(width, depth, "cls_tower")
    cls_logits = resnet_fpn.head_conv(anchors_per_location * classes, "cls_logits",
                                      bias=resnet_fpn.prior_bias())
    box_tower = resnet_fpn.tower(width, depth, "box_tower")
    box_offsets = resnet_fpn.head_conv(anchors_per_location * 4, "bbox_regression")
    outputs = []
    for level in pyramid.values():
        outputs.append(cls_logits(resnet_fpn.apply(cls_tower, level)))
        outputs.append(box_offsets(resnet_fpn.apply(box_tower, level)))
    return outputs


def RetinaNet(
    input_shape=(800, 800, 3),
    classes=91,
    name=None,
    head_depth=4,
    anchor_base_sizes=RETINANET_BASE_SIZES,
    scales_per_octave=3,
    aspect_ratios=ASPECT_RATIOS,
    **backbone,
):
    """Builds RetinaNet with a ResNet-50-FPN (torchvision ``retinanet_resnet50_fpn``).

    Args:
        input_shape: static ``(height, width, 3)``; pixels in [0, 1].
        classes: object classes (91 for torchvision's COCO ids).
        name: model name.
        head_depth: 3x3 convolutions in each tower.
        anchor_base_sizes: the base anchor size of each pyramid level.
        scales_per_octave: anchor scales ``2^(k / n)`` per base size.
        aspect_ratios: anchor height / width ratios.
        **backbone: the ResNet-FPN's arguments (``resnet_fpn.image_and_pyramid``:
            ``backbone_levels``, ``stage_widths``, ``blocks_per_stage``,
            ``stem_type``, ``backbone_norm``, ``fpn_channels``, ``extra_levels``).

    Returns:
        A model ``images (B, H, W, 3) -> raw_detections (B, anchors, classes + 4)``;
        its last layer, a ``RetinaNetHead``, decodes and computes the loss.
    """
    image, image_size, pyramid, strides = resnet_fpn.image_and_pyramid(input_shape, **backbone)
    if len(anchor_base_sizes) != len(pyramid):
        raise KCCError(f"expected one anchor base size per pyramid level {list(pyramid)}, "
                       f"got {tuple(anchor_base_sizes)}")
    sizes = retinanet_sizes(tuple(anchor_base_sizes), scales_per_octave)
    outputs = retinanet_heads(pyramid, classes, scales_per_octave * len(aspect_ratios),
                              head_depth)
    raw = RetinaNetHead(image_size, classes, strides, sizes, aspect_ratios)(*outputs)
    return keras.Model(image, raw, name=name or "retinanet_resnet50_fpn")


# 32x32 shapes: a two-level bottleneck ResNet with the small stem (C2 at stride 4, C3 at
# stride 8), P4/P5 from P3, anchors 8-64 (objects are 11-21 pixels wide).
TINY = dict(input_shape=(32, 32, 3), classes=3, backbone_levels=("C2", "C3"),
            stage_widths=(4, 8, 8, 16), blocks_per_stage=(1, 1, 1, 1), stem_type="small",
            backbone_norm="batch", fpn_channels=16, head_depth=2, anchor_base_sizes=(8, 16, 32, 64))

VARIANTS = (
    dict(name="retinanet_resnet50_fpn", builder=RetinaNet, reference_params=34_014_999,
         params_source="torchvision retinanet_resnet50_fpn (v1), 91 classes",
         description="RetinaNet, ResNet-50-FPN, focal loss (torchvision v1)"),
)

register_family("retinanet", VARIANTS, task="detection", paper=PAPER,
                full_config=dict(input_shape=(800, 800, 3), classes=91), tiny_config=TINY)
