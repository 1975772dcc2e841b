"""Which anchor learns which ground-truth box: an IoU matcher and a task-aligned assigner.

Ground truth arrives padded to a fixed number ``G`` of boxes per image, so
that a batch is one tensor: ``gt_boxes (B, G, 4)`` ``xyxy`` and
``gt_classes (B, G)``, where padding rows have class -1 (and boxes -1). A
padding row is never matched. Everything is batched with ``keras.ops``.

* ``Matcher`` keeps torchvision's ``Matcher`` semantics (Faster R-CNN, Ren et
  al., NeurIPS 2015, arXiv:1506.01497; RetinaNet, Lin et al., ICCV 2017,
  arXiv:1708.02002): each anchor takes its best ground truth if their IoU
  reaches ``high_threshold``; below ``low_threshold`` it is background
  (``BELOW_LOW_THRESHOLD = -1``); in between it is ignored
  (``BETWEEN_THRESHOLDS = -2``). ``allow_low_quality_matches`` also matches,
  for every ground truth, the anchors of highest IoU with it (ties included),
  so that no object goes without an anchor.
* ``task_aligned_assign`` is TOOD's assigner (Feng et al., "TOOD:
  Task-aligned One-stage Object Detection", ICCV 2021, arXiv:2108.07755), as
  YOLOv8 uses it: among anchors whose point lies inside a box, the ``topk``
  with the largest alignment ``t = s^alpha * u^beta`` (``s`` the predicted
  score of the box's class, ``u`` the IoU of the predicted box) are positive;
  an anchor claimed by several boxes keeps the one it overlaps most; its
  classification target is ``t`` rescaled so that each box's best anchor gets
  that anchor's IoU.
"""

from keras import ops

from keras_cv_course.detection.iou import aligned_ciou, aligned_iou, pairwise_iou

BELOW_LOW_THRESHOLD = -1
BETWEEN_THRESHOLDS = -2


def gt_validity(gt_classes):
    """``(B, G)`` booleans: True for real boxes, False for padding rows (class < 0)."""
    return ops.greater_equal(ops.convert_to_tensor(gt_classes), 0)


class Matcher:
    """torchvision's IoU matcher, batched, on padded ground truth.

    Args:
        high_threshold: IoU from which an anchor is matched (0.5 in RetinaNet).
        low_threshold: IoU below which an anchor is background (0.4 in RetinaNet).
        allow_low_quality_matches: also match each box's best anchors.

    One difference from torchvision: a box whose best IoU with every anchor
    is 0 adds no low-quality match (torchvision would match every anchor
    that has IoU 0 with it to that anchor's best box). An image without
    boxes gets all anchors -1 (torchvision raises).
    """

    def __init__(self, high_threshold, low_threshold, allow_low_quality_matches=False):
        if low_threshold > high_threshold:
            raise ValueError(f"expected low_threshold <= high_threshold, received "
                             f"{low_threshold} > {high_threshold}")
        self.high_threshold = high_threshold
        self.low_threshold = low_threshold
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, quality, gt_valid):
        """Matches anchors to boxes.

        Args:
            quality: ``(B, G, A)`` match quality (IoU) of box ``g`` and anchor ``a``.
            gt_valid: ``(B, G)`` booleans, False on padding rows.

        Returns:
            ``(B, A)`` int32: the matched box index, or -1 / -2.
        """
        gt_valid = ops.expand_dims(gt_valid, -1)  # (B, G, 1)
        quality = ops.where(gt_valid, quality, -1.0)  # padding never wins
        best_quality = ops.max(quality, axis=1)  # (B, A)
        best_gt = ops.cast(ops.argmax(quality, axis=1), "int32")
        matches = ops.where(best_quality < self.low_threshold, BELOW_LOW_THRESHOLD,
                            ops.where(best_quality < self.high_threshold, BETWEEN_THRESHOLDS,
                                      best_gt))
        if self.allow_low_quality_matches:
            best_per_gt = ops.max(quality, axis=2, keepdims=True)  # (B, G, 1)
            is_best = (quality == best_per_gt) & gt_valid & (best_per_gt > 0)
            matches = ops.where(ops.any(is_best, axis=1), best_gt, matches)
        return ops.cast(matches, "int32")

    def get_config(self):
        return {"high_threshold": self.high_threshold, "low_threshold": self.low_threshold,
                "allow_low_quality_matches": self.allow_low_quality_matches}


def match_anchors(anchors, gt_boxes, gt_classes, matcher):
    """IoU-matches ``(A, 4)`` anchors to padded ``(B, G, 4)`` boxes; returns ``(B, A)``."""
    anchors = ops.convert_to_tensor(anchors)
    gt_boxes = ops.convert_to_tensor(gt_boxes)
    iou = pairwise_iou(gt_boxes, ops.expand_dims(ops.cast(anchors, gt_boxes.dtype), 0))
    return matcher(iou, gt_validity(gt_classes))


def points_inside_boxes(points, boxes, eps=1e-9):
    """``(B, G, A)``: whether point ``a`` lies strictly inside box ``g``.

    Args:
        points: ``(A, 2)`` ``(x, y)`` positions.
        boxes: ``(B, G, 4)`` ``xyxy`` boxes.
    """
    points = ops.cast(ops.convert_to_tensor(points), boxes.dtype)[None, None]  # (1, 1, A, 2)
    boxes = ops.expand_dims(boxes, 2)  # (B, G, 1, 4)
    distances = ops.concatenate([points - boxes[..., :2], boxes[..., 2:] - points], axis=-1)
    return ops.min(distances, axis=-1) > eps


def _topk_mask(metric, k):
    """``(B, G, A)`` booleans marking the ``k`` largest entries along the last axis."""
    batch, boxes, anchors = ops.shape(metric)
    _, top = ops.top_k(metric, k)  # (B, G, k)
    index_b = ops.broadcast_to(ops.reshape(ops.arange(batch), (-1, 1, 1)), ops.shape(top))
    index_g = ops.broadcast_to(ops.reshape(ops.arange(boxes), (1, -1, 1)), ops.shape(top))
    indices = ops.stack([index_b, index_g, ops.cast(top, index_b.dtype)], axis=-1)
    ones = ops.ones(ops.shape(top), dtype="float32")
    return ops.scatter(ops.reshape(indices, (-1, 3)), ops.reshape(ones, (-1,)),
                       (batch, boxes, anchors)) > 0


def _alignment(pred_scores, pred_boxes, gt_classes, gt_boxes, candidates, alpha, beta, overlap):
    """Alignment metric ``s^alpha * u^beta`` and overlaps ``u``, both ``(B, G, A)``."""
    num_classes = pred_scores.shape[-1]
    class_one_hot = ops.one_hot(ops.maximum(gt_classes, 0), num_classes, dtype=pred_scores.dtype)
    class_scores = ops.einsum("bgc,bac->bga", class_one_hot, pred_scores)
    measure = aligned_ciou if overlap == "ciou" else aligned_iou
    overlaps = measure(ops.expand_dims(gt_boxes, 2), ops.expand_dims(pred_boxes, 1))
    overlaps = ops.where(candidates, ops.maximum(overlaps, 0.0), 0.0)
    metric = ops.power(class_scores, alpha) * ops.power(overlaps, beta)
    return ops.where(candidates, metric, 0.0), overlaps


def task_aligned_assign(pred_scores, pred_boxes, points, gt_classes, gt_boxes, topk=10,
                        alpha=1.0, beta=6.0, overlap="iou", eps=1e-9):
    """TOOD's task-aligned assignment for a batch.

    Args:
        pred_scores: ``(B, A, C)`` predicted class probabilities (after sigmoid).
        pred_boxes: ``(B, A, 4)`` predicted ``xyxy`` boxes, in pixels.
        points: ``(A, 2)`` anchor points ``(x, y)``, in pixels.
        gt_classes: ``(B, G)`` int classes; -1 on padding rows.
        gt_boxes: ``(B, G, 4)`` ``xyxy`` boxes, in pixels.
        topk: positives per box before resolving conflicts (13 in TOOD, 10 in YOLOv8).
        alpha: exponent of the score (1 in TOOD; YOLOv8's loss passes 0.5).
        beta: exponent of the IoU (6 in both).
        overlap: ``"iou"`` as in TOOD, or ``"ciou"`` as in YOLOv8 (clipped at 0).
        eps: keeps the normalisation finite.

    Returns:
        A dict: ``foreground (B, A)`` bool, ``gt_index (B, A)`` int32 (0 on
        background), ``classes (B, A)`` int32 (-1 on background),
        ``boxes (B, A, 4)`` (0 on background), and ``scores (B, A, C)``, the
        normalised soft one-hot classification targets.
    """
    pred_scores, pred_boxes = ops.convert_to_tensor(pred_scores), ops.convert_to_tensor(pred_boxes)
    gt_boxes = ops.cast(ops.convert_to_tensor(gt_boxes), pred_boxes.dtype)
    gt_classes = ops.cast(ops.convert_to_tensor(gt_classes), "int32")
    gt_valid = ops.expand_dims(gt_validity(gt_classes), -1)  # (B, G, 1)
    candidates = points_inside_boxes(points, gt_boxes) & gt_valid
    metric, overlaps = _alignment(pred_scores, pred_boxes, gt_classes, gt_boxes, candidates,
                                  alpha, beta, overlap)
    positive = _topk_mask(metric, min(topk, metric.shape[-1])) & candidates  # (B, G, A)
    # An anchor claimed by several boxes keeps the box it overlaps most.
    claimed_by_many = ops.sum(ops.cast(positive, "int32"), axis=1, keepdims=True) > 1
    best_box = ops.one_hot(ops.argmax(overlaps, axis=1), ops.shape(gt_boxes)[1], axis=1) > 0
    positive = ops.where(claimed_by_many, best_box, positive)
    foreground = ops.any(positive, axis=1)  # (B, A)
    # argmax picks a box on background anchors too (ties have no fixed winner): zero those.
    gt_index = ops.where(foreground, ops.argmax(ops.cast(positive, "int32"), axis=1), 0)
    gt_index = ops.cast(gt_index, "int32")
    classes = ops.where(foreground, ops.take_along_axis(gt_classes, gt_index, axis=1), -1)
    boxes = ops.take_along_axis(gt_boxes, ops.repeat(ops.expand_dims(gt_index, -1), 4, -1), axis=1)
    boxes = ops.where(ops.expand_dims(foreground, -1), boxes, 0.0)
    # Normalise: each box's best positive anchor gets that anchor's IoU as its target.
    metric = ops.where(positive, metric, 0.0)
    best_metric = ops.max(metric, axis=2, keepdims=True)
    best_overlap = ops.max(ops.where(positive, overlaps, 0.0), axis=2, keepdims=True)
    normalised = ops.max(metric * best_overlap / (best_metric + eps), axis=1)  # (B, A)
    num_classes = pred_scores.shape[-1]
    scores = ops.one_hot(ops.maximum(classes, 0), num_classes, dtype=pred_scores.dtype)
    scores = scores * ops.expand_dims(ops.where(foreground, normalised, 0.0), -1)
    return {"foreground": foreground, "gt_index": gt_index, "classes": ops.cast(classes, "int32"),
            "boxes": boxes, "scores": scores}
