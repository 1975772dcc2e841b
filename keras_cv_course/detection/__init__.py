"""Shared parts of object detectors: boxes, IoU, anchors, coders, matching, FPN, losses, NMS.

RetinaNet, FCOS, YOLO and Faster / Mask R-CNN are built from these modules,
each a short page written with ``keras.ops`` (TensorFlow only in the
TensorFlow lowering of NMS). Boxes are ``(..., 4)`` tensors, ``xyxy`` in
pixels unless a function says otherwise.
"""

from keras_cv_course.detection.anchors import (
    FCOS_SIZES,
    RETINANET_BASE_SIZES,
    AnchorGenerator,
    anchor_points,
    cell_anchors,
    feature_sizes,
    octave_sizes,
    retinanet_sizes,
)
from keras_cv_course.detection.boxes import (
    BOX_FORMATS,
    box_area,
    box_centers,
    clip_to_image,
    convert_format,
    from_xyxy,
    to_xyxy,
)
from keras_cv_course.detection.coder import (
    BBOX_XFORM_CLIP,
    FASTER_RCNN_HEAD_WEIGHTS,
    RETINANET_WEIGHTS,
    BoxCoder,
    boxes_to_distances,
    distances_to_boxes,
)
from keras_cv_course.detection.fpn import feature_pyramid
from keras_cv_course.detection.iou import (
    aligned_ciou,
    aligned_diou,
    aligned_giou,
    aligned_iou,
    aspect_ratio_term,
    pairwise_iou,
)
from keras_cv_course.detection.losses import (
    ciou_loss,
    diou_loss,
    distribution_focal_loss,
    giou_loss,
    reduce_loss,
    sigmoid_focal_loss,
)
from keras_cv_course.detection.matching import (
    BELOW_LOW_THRESHOLD,
    BETWEEN_THRESHOLDS,
    Matcher,
    gt_validity,
    match_anchors,
    points_inside_boxes,
    task_aligned_assign,
)
from keras_cv_course.detection.nms import (
    NonMaxSuppression,
    greedy_nms_keras,
    offset_by_class,
    top_class_candidates,
)

__all__ = [
    "AnchorGenerator",
    "BBOX_XFORM_CLIP",
    "BELOW_LOW_THRESHOLD",
    "BETWEEN_THRESHOLDS",
    "BOX_FORMATS",
    "BoxCoder",
    "FASTER_RCNN_HEAD_WEIGHTS",
    "FCOS_SIZES",
    "Matcher",
    "NonMaxSuppression",
    "RETINANET_BASE_SIZES",
    "RETINANET_WEIGHTS",
    "aligned_ciou",
    "aligned_diou",
    "aligned_giou",
    "aligned_iou",
    "anchor_points",
    "aspect_ratio_term",
    "box_area",
    "box_centers",
    "boxes_to_distances",
    "cell_anchors",
    "ciou_loss",
    "clip_to_image",
    "convert_format",
    "diou_loss",
    "distances_to_boxes",
    "distribution_focal_loss",
    "feature_pyramid",
    "feature_sizes",
    "from_xyxy",
    "giou_loss",
    "greedy_nms_keras",
    "gt_validity",
    "match_anchors",
    "octave_sizes",
    "offset_by_class",
    "pairwise_iou",
    "points_inside_boxes",
    "reduce_loss",
    "retinanet_sizes",
    "sigmoid_focal_loss",
    "task_aligned_assign",
    "to_xyxy",
    "top_class_candidates",
]
