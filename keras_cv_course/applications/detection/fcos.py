"""FCOS: a fully convolutional, anchor-free one-stage detector.

Paper: Zhi Tian, Chunhua Shen, Hao Chen, Tong He. "FCOS: Fully Convolutional
One-Stage Object Detection". ICCV 2019. arXiv:1904.01355.

Every cell of every pyramid level is a point. A point inside an object (and
near its centre) regresses its distances ``(left, top, right, bottom)`` to
the object's four sides and classifies it; a third output, centre-ness
``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))``, learns how central
the point is, and down-weights the boxes of off-centre points at test time.
Each level handles one range of object sizes, so that overlapping objects
of different sizes land on different levels.

Variant choices, named (torchvision ``fcos_resnet50_fpn``, which follows the
improvements of the journal version, Tian et al., "FCOS: A Simple and Strong
Anchor-free Object Detector", TPAMI 2020, arXiv:2006.09214):

* backbone and FPN as RetinaNet's: ResNet-50 v1.5 with frozen BatchNorm,
  C3-C5, 256-channel FPN, P6/P7 from **P5** (``resnet_fpn.py``);
* points on cell corners, ``(x, y) = (j, i) * stride``, with one "anchor"
  per point whose size is its level's stride (8-128): torchvision's
  ``AnchorGenerator((8,), (16,), ...)``; distances are divided by it;
* heads: four 3x3 convolutions, each followed by **GroupNorm (32 groups)**
  and ReLU, in each tower; centre-ness on the **regression** tower (the
  journal version; the conference paper put it on the classification
  tower); a ReLU keeps the distances positive; no per-level learned scale;
  N(0, 0.01) weights, classification bias from the prior probability 0.01;
* assignment: a point is positive for an object when it lies inside the
  box, within **1.5 strides** of its centre (centre sampling), and its
  largest distance to a side is in its level's range, ``(4, 8)`` times its
  stride (``(0, 64)``, ``(64, 128)``, ..., ``(512, inf)`` on P3-P7; the
  finest level starts at 0 and the coarsest never ends); a point that fits
  several objects takes the smallest;
* losses: sigmoid focal loss (alpha 0.25, gamma 2) on every point, GIoU loss
  of the decoded boxes and binary cross-entropy of centre-ness on the
  positive points, each summed over the batch and divided by its number of
  positive points (at least 1);
* decoding: score ``sqrt(sigmoid(class) * sigmoid(centre-ness))``, boxes
  clipped to the image (torchvision's postprocessing); the task runs NMS.

The model's only output is the packed head, ``(B, points, C + 5)``: class
logits, the four distances in strides (after the ReLU) and the centre-ness
logit of every point, ordered (level, y, x).
"""

import keras
import numpy as np
from keras import ops

from keras_cv_course.applications.detection import resnet_fpn
from keras_cv_course.applications.detection.retinanet import gather_objects, padded_objects
from keras_cv_course.applications.registry import register_family
from keras_cv_course.detection import (
    AnchorGenerator,
    aligned_giou,
    box_area,
    box_centers,
    boxes_to_distances,
    clip_to_image,
    distances_to_boxes,
    feature_sizes,
    gt_validity,
    points_inside_boxes,
    sigmoid_focal_loss,
)
from keras_cv_course.detection.head import DetectionHead, split_objects

PAPER = (
    "Tian, Shen, Chen, He. FCOS: Fully Convolutional One-Stage Object Detection. "
    "ICCV 2019. arXiv:1904.01355"
)
CENTER_SAMPLING_RADIUS = 1.5
SIZE_RANGE = (4, 8)  # a level takes objects whose largest distance is 4 to 8 strides
GROUP_NORM_GROUPS = 32
FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0


def size_ranges(anchor_sizes, level_counts, factors=SIZE_RANGE):
    """Per point, the ``(lower, upper)`` bound of its objects' largest distance."""
    lower, upper = anchor_sizes * factors[0], anchor_sizes * factors[1]
    lower[:level_counts[0]] = 0.0
    upper[-level_counts[-1]:] = np.inf
    return lower.astype("float32"), upper.astype("float32")


def centerness(distances):
    """``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))`` of ``(..., 4)`` distances."""
    horizontal, vertical = distances[..., 0::2], distances[..., 1::2]
    ratio = (ops.min(horizontal, -1) / ops.max(horizontal, -1)) * (
        ops.min(vertical, -1) / ops.max(vertical, -1))
    return ops.sqrt(ops.maximum(ratio, 0.0))


@keras.saving.register_keras_serializable(package="keras_cv_course")
class FCOSHead(DetectionHead):
    """FCOS's points, assignment (centre sampling, size ranges), losses and decoding.

    Args:
        image_size: ``(height, width)`` of the network input.
        num_classes: object classes.
        strides: each level's stride, finest first; a level's points have
            "anchors" of this size (torchvision's FCOS sizes 8-128).
        center_sampling_radius: positives lie within this many strides of the
            object's centre.
        focal_alpha, focal_gamma: the focal loss's.
        **kwargs: base layer arguments (``name`` defaults to ``raw_detections``).

    Called on each level's ``(B, H, W, C + 5)`` map: class logits, distances,
    centre-ness logit.
    """

    def __init__(self, image_size, num_classes, strides,
                 center_sampling_radius=CENTER_SAMPLING_RADIUS, focal_alpha=FOCAL_ALPHA,
                 focal_gamma=FOCAL_GAMMA, **kwargs):
        super().__init__(image_size, num_classes, **kwargs)
        self.strides = tuple(int(s) for s in strides)
        self.center_sampling_radius = float(center_sampling_radius)
        self.focal_alpha, self.focal_gamma = float(focal_alpha), float(focal_gamma)
        generator = AnchorGenerator(tuple((s,) for s in self.strides), (1.0,))
        grids = feature_sizes(self.image_size, self.strides)
        self.anchor_boxes = generator(self.image_size, grids)  # (A, 4): point -+ size / 2
        self.points = ((self.anchor_boxes[:, :2] + self.anchor_boxes[:, 2:]) / 2).astype("float32")
        self.anchor_sizes = (self.anchor_boxes[:, 2] - self.anchor_boxes[:, 0]).astype("float32")
        self.lower, self.upper = size_ranges(self.anchor_sizes, generator.level_counts(grids))

    def split(self, raw):
        """``(logits (B, A, C), distances (B, A, 4) in strides, centre-ness logits (B, A))``."""
        raw = ops.cast(raw, "float32")
        c = self.num_classes
        return raw[..., :c], raw[..., c:c + 4], raw[..., c + 4]

    def decode(self, raw):
        logits, distances, centre = self.split(raw)
        boxes = distances_to_boxes(self.points, distances, self.anchor_sizes)
        scores = ops.sqrt(ops.sigmoid(logits) * ops.sigmoid(centre)[..., None])
        return clip_to_image(boxes, self.image_size), scores

    def match(self, objects):
        """``(B, A)`` int32 assigned object of every point, -1 for background.

        Also returns the ground truth, ``(gt_boxes, gt_classes)``, with one padding row.
        """
        gt_boxes, gt_classes = split_objects(padded_objects(objects), self.image_size)
        sizes = self.anchor_sizes[None, None, :]
        offsets = ops.abs(self.points[None, None] - ops.expand_dims(box_centers(gt_boxes), 2))
        near_centre = ops.max(offsets, axis=-1) < self.center_sampling_radius * sizes
        reach = ops.max(boxes_to_distances(self.points[None, None],
                                           ops.expand_dims(gt_boxes, 2)), axis=-1)
        in_range = (reach > self.lower[None, None]) & (reach < self.upper[None, None])
        candidates = (near_centre & in_range & points_inside_boxes(self.points, gt_boxes)
                      & ops.expand_dims(gt_validity(gt_classes), -1))  # (B, G, A)
        areas = ops.where(candidates, ops.expand_dims(box_area(gt_boxes), -1), np.inf)
        index = ops.cast(ops.argmin(areas, axis=1), "int32")  # the smallest object wins
        return ops.where(ops.any(candidates, axis=1), index, -1), gt_boxes, gt_classes

    def loss(self, objects, raw):
        logits, distances, centre = self.split(raw)
        matches, gt_boxes, gt_classes = self.match(objects)
        foreground = matches >= 0
        index = ops.maximum(matches, 0)
        classes = ops.maximum(gather_objects(gt_classes, index), 0)
        labels = ops.one_hot(classes, self.num_classes) * ops.cast(foreground, "float32")[..., None]
        classification = ops.sum(sigmoid_focal_loss(labels, logits, self.focal_alpha,
                                                     self.focal_gamma, reduction="none"))
        # Background points get their own anchor box as target: finite everywhere.
        boxes = ops.where(foreground[..., None], gather_objects(gt_boxes, index),
                          self.anchor_boxes)
        predicted = distances_to_boxes(self.points, distances, self.anchor_sizes)
        giou = ops.sum(ops.where(foreground, 1.0 - aligned_giou(predicted, boxes), 0.0))
        target = centerness(boxes_to_distances(self.points, boxes))
        centre_loss = ops.binary_crossentropy(target, centre, from_logits=True)
        centre_loss = ops.sum(ops.where(foreground, centre_loss, 0.0))
        positives = ops.maximum(ops.sum(ops.cast(foreground, "float32")), 1.0)
        return (classification + giou + centre_loss) / positives

    def get_config(self):
        return {**super().get_config(), "strides": list(self.strides),
                "center_sampling_radius": self.center_sampling_radius,
                "focal_alpha": self.focal_alpha, "focal_gamma": self.focal_gamma}


def fcos_heads(pyramid, classes, depth, norm_groups):
    """The classification and regression towers, shared by every level; one
    ``(B, H, W, classes + 5)`` map per level."""
    width = int(next(iter(pyramid.values())).shape[-1])
    cls_tower = resnet_fpn.tower(width, depth, "cls_tower", norm_groups)
    cls_logits = resnet_fpn.head_conv(classes, "cls_logits", bias=resnet_fpn.prior_bias())
    box_tower = resnet_fpn.tower(width, depth, "box_tower", norm_groups)
    box_distances = resnet_fpn.head_conv(4, "bbox_regression")
    distances_relu = keras.layers.ReLU(name="bbox_regression_relu")
    centre_logits = resnet_fpn.head_conv(1, "bbox_ctrness")
    outputs = []
    for key, level in pyramid.items():
        features = resnet_fpn.apply(box_tower, level)
        outputs.append(keras.layers.Concatenate(name=f"{key.lower()}_outputs")([
            cls_logits(resnet_fpn.apply(cls_tower, level)),
            distances_relu(box_distances(features)), centre_logits(features)]))
    return outputs


def FCOS(
    input_shape=(800, 800, 3),
    classes=91,
    name=None,
    head_depth=4,
    norm_groups=GROUP_NORM_GROUPS,
    center_sampling_radius=CENTER_SAMPLING_RADIUS,
    **backbone,
):
    """Builds FCOS with a ResNet-50-FPN (torchvision ``fcos_resnet50_fpn``).

    Args:
        input_shape: static ``(height, width, 3)``; pixels in [0, 1].
        classes: object classes (91 for torchvision's COCO ids).
        name: model name.
        head_depth: 3x3 convolutions in each tower.
        norm_groups: GroupNorm groups in the towers; must divide ``fpn_channels``.
        center_sampling_radius: in strides.
        **backbone: the ResNet-FPN's arguments (``resnet_fpn.image_and_pyramid``:
            ``backbone_levels``, ``stage_widths``, ``blocks_per_stage``,
            ``stem_type``, ``backbone_norm``, ``fpn_channels``, ``extra_levels``).

    Returns:
        A model ``images (B, H, W, 3) -> raw_detections (B, points, classes + 5)``;
        its last layer, an ``FCOSHead``, decodes and computes the loss.
    """
    image, image_size, pyramid, strides = resnet_fpn.image_and_pyramid(input_shape, **backbone)
    outputs = fcos_heads(pyramid, classes, head_depth, norm_groups)
    raw = FCOSHead(image_size, classes, strides, center_sampling_radius)(*outputs)
    return keras.Model(image, raw, name=name or "fcos_resnet50_fpn")


# 32x32 shapes: RetinaNet's tiny trunk (P2-P5 at strides 4-32), 16-channel towers with
# four GroupNorm groups. Objects (11-21 pixels) all fall in P2's range (0, 32).
TINY = dict(input_shape=(32, 32, 3), classes=3, backbone_levels=("C2", "C3"),
            stage_widths=(4, 8, 8, 16), blocks_per_stage=(1, 1, 1, 1), stem_type="small",
            backbone_norm="batch", fpn_channels=16, head_depth=2, norm_groups=4)

VARIANTS = (
    dict(name="fcos_resnet50_fpn", builder=FCOS, reference_params=32_269_600,
         params_source="torchvision fcos_resnet50_fpn, 91 classes",
         description="FCOS, ResNet-50-FPN, anchor-free with centre-ness (torchvision)"),
)

register_family("fcos", VARIANTS, task="detection", paper=PAPER,
                full_config=dict(input_shape=(800, 800, 3), classes=91), tiny_config=TINY)
