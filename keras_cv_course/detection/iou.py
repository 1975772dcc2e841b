"""Intersection over union and its generalisations, for ``xyxy`` boxes.

* IoU, the Jaccard index of two boxes: ``|A ∩ B| / |A ∪ B|``.
* GIoU (Rezatofighi et al., "Generalized Intersection over Union: A Metric
  and a Loss for Bounding Box Regression", CVPR 2019, arXiv:1902.09630):
  ``IoU - |C \\ (A ∪ B)| / |C|`` with ``C`` the smallest box enclosing both;
  it stays informative when the boxes do not overlap.
* DIoU and CIoU (Zheng et al., "Distance-IoU Loss: Faster and Better
  Learning for Bounding Box Regression", AAAI 2020, arXiv:1911.08287):
  ``DIoU = IoU - rho^2 / c^2``, with ``rho`` the distance between the two
  centres and ``c`` the diagonal of ``C``; ``CIoU = DIoU - alpha * v`` with
  the aspect-ratio term ``v = 4 / pi^2 * (atan(w_gt / h_gt) - atan(w / h))^2``
  and its weight ``alpha = v / ((1 - IoU) + v)``.

``pairwise_iou`` compares every box of one set with every box of another
(anchors against ground truth); the ``*_aligned`` functions compare box ``i``
with box ``i`` (a prediction with its target), which is what the losses need.
"""

import math

from keras import ops

from keras_cv_course.detection.boxes import box_area

EPSILON = 1e-7  # keeps empty unions and zero-size enclosing boxes finite


def pairwise_iou(boxes1, boxes2):
    """IoU of every box in ``boxes1`` with every box in ``boxes2``.

    Args:
        boxes1: ``(..., N, 4)`` ``xyxy`` boxes.
        boxes2: ``(..., M, 4)`` ``xyxy`` boxes, with the same leading axes.

    Returns:
        A ``(..., N, M)`` tensor of IoUs in ``[0, 1]``.
    """
    boxes1 = ops.expand_dims(ops.convert_to_tensor(boxes1), -2)  # (..., N, 1, 4)
    boxes2 = ops.expand_dims(ops.convert_to_tensor(boxes2), -3)  # (..., 1, M, 4)
    return aligned_iou(boxes1, boxes2)


def _intersection_and_union(boxes1, boxes2):
    top_left = ops.maximum(boxes1[..., :2], boxes2[..., :2])
    bottom_right = ops.minimum(boxes1[..., 2:], boxes2[..., 2:])
    overlap = ops.maximum(bottom_right - top_left, 0.0)
    intersection = overlap[..., 0] * overlap[..., 1]
    union = box_area(boxes1) + box_area(boxes2) - intersection
    return intersection, union


def _enclosing_size(boxes1, boxes2):
    """Width and height ``(..., 2)`` of the smallest box enclosing both boxes."""
    top_left = ops.minimum(boxes1[..., :2], boxes2[..., :2])
    bottom_right = ops.maximum(boxes1[..., 2:], boxes2[..., 2:])
    return ops.maximum(bottom_right - top_left, 0.0)


def aligned_iou(boxes1, boxes2):
    """IoU of box ``i`` of ``boxes1`` with box ``i`` of ``boxes2``.

    Args:
        boxes1: ``(..., 4)`` ``xyxy`` boxes.
        boxes2: ``(..., 4)`` ``xyxy`` boxes (broadcastable to ``boxes1``).

    Returns:
        A ``(...)`` tensor.
    """
    intersection, union = _intersection_and_union(ops.convert_to_tensor(boxes1),
                                                  ops.convert_to_tensor(boxes2))
    return intersection / (union + EPSILON)


def aligned_giou(boxes1, boxes2):
    """Generalized IoU (Rezatofighi et al. 2019), in ``[-1, 1]``.

    Args:
        boxes1: ``(..., 4)`` ``xyxy`` boxes.
        boxes2: ``(..., 4)`` ``xyxy`` boxes.

    Returns:
        A ``(...)`` tensor: ``IoU - (area(C) - union) / area(C)``.
    """
    boxes1, boxes2 = ops.convert_to_tensor(boxes1), ops.convert_to_tensor(boxes2)
    intersection, union = _intersection_and_union(boxes1, boxes2)
    enclosing = _enclosing_size(boxes1, boxes2)
    enclosing_area = enclosing[..., 0] * enclosing[..., 1] + EPSILON
    return intersection / (union + EPSILON) - (enclosing_area - union) / enclosing_area


def _centre_distance_penalty(boxes1, boxes2):
    """``rho^2 / c^2`` of Zheng et al.: squared centre distance over squared diagonal."""
    centre_offset = (boxes1[..., :2] + boxes1[..., 2:] - boxes2[..., :2] - boxes2[..., 2:]) / 2
    rho_squared = ops.sum(ops.square(centre_offset), axis=-1)
    diagonal_squared = ops.sum(ops.square(_enclosing_size(boxes1, boxes2)), axis=-1) + EPSILON
    return rho_squared / diagonal_squared


def aligned_diou(boxes1, boxes2):
    """Distance IoU (Zheng et al. 2020): ``IoU - rho^2 / c^2``, in ``[-1, 1]``.

    Args:
        boxes1: ``(..., 4)`` ``xyxy`` boxes.
        boxes2: ``(..., 4)`` ``xyxy`` boxes.

    Returns:
        A ``(...)`` tensor.
    """
    boxes1, boxes2 = ops.convert_to_tensor(boxes1), ops.convert_to_tensor(boxes2)
    return aligned_iou(boxes1, boxes2) - _centre_distance_penalty(boxes1, boxes2)


def aspect_ratio_term(boxes1, boxes2):
    """CIoU's ``v = 4 / pi^2 * (atan(w2 / h2) - atan(w1 / h1))^2``, in ``[0, 1)``."""
    size1 = boxes1[..., 2:] - boxes1[..., :2]
    size2 = boxes2[..., 2:] - boxes2[..., :2]
    angle1 = ops.arctan(size1[..., 0] / (size1[..., 1] + EPSILON))
    angle2 = ops.arctan(size2[..., 0] / (size2[..., 1] + EPSILON))
    return 4.0 / math.pi**2 * ops.square(angle2 - angle1)


def aligned_ciou(boxes1, boxes2):
    """Complete IoU (Zheng et al. 2020): ``DIoU - alpha * v``.

    ``alpha = v / ((1 - IoU) + v)`` is a weight, not a quantity to optimise:
    as in the authors' code its gradient is stopped, so CIoU's gradient
    with respect to the box comes from IoU, the centre distance and ``v``.

    Args:
        boxes1: ``(..., 4)`` ``xyxy`` boxes, the predictions.
        boxes2: ``(..., 4)`` ``xyxy`` boxes, the targets.

    Returns:
        A ``(...)`` tensor.
    """
    boxes1, boxes2 = ops.convert_to_tensor(boxes1), ops.convert_to_tensor(boxes2)
    iou = aligned_iou(boxes1, boxes2)
    v = aspect_ratio_term(boxes1, boxes2)
    alpha = ops.stop_gradient(v / (1.0 - iou + v + EPSILON))
    return iou - _centre_distance_penalty(boxes1, boxes2) - alpha * v
