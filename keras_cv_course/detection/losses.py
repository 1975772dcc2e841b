"""Detection losses: focal, distribution focal, and the IoU family.

* Sigmoid focal loss (Lin et al., "Focal Loss for Dense Object Detection",
  ICCV 2017, arXiv:1708.02002): binary cross-entropy scaled by
  ``alpha_t * (1 - p_t)^gamma``, with the paper's ``alpha = 0.25`` and
  ``gamma = 2``. It equals Keras' ``BinaryFocalCrossentropy`` only with
  ``apply_class_balancing=True``, whose default is False; and Keras averages
  over the class axis where detectors sum and divide by the number of
  positive anchors.
* Distribution focal loss (Li et al., "Generalized Focal Loss: Learning
  Qualified and Distributed Bounding Boxes for Dense Object Detection",
  NeurIPS 2020, arXiv:2006.04388): a side's distance ``y`` is predicted as a
  softmax over bins ``0, 1, ..., n - 1``; with ``y_i <= y < y_i + 1`` the loss
  is ``-((y_i + 1 - y) log S_i + (y - y_i) log S_(i+1))``, cross-entropy
  towards the two nearest bins.
* IoU losses ``1 - GIoU`` (Rezatofighi et al., CVPR 2019, arXiv:1902.09630),
  ``1 - DIoU`` and ``1 - CIoU`` (Zheng et al., AAAI 2020, arXiv:1911.08287).

Every loss takes ``reduction`` (``"none"``, ``"sum"`` or ``"mean"``) and an
optional ``normalizer`` — the number of positive anchors, say — that the
reduced loss is divided by (at least 1, so that an image without objects
gives a finite loss).
"""

from keras import ops

from keras_cv_course.detection.iou import aligned_ciou, aligned_diou, aligned_giou

REDUCTIONS = ("none", "sum", "mean")


def reduce_loss(loss, reduction="sum", normalizer=None):
    """Reduces an elementwise loss; divides by ``max(normalizer, 1)`` when given."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"expected reduction in {REDUCTIONS}, received {reduction!r}")
    if reduction == "sum":
        loss = ops.sum(loss)
    elif reduction == "mean":
        loss = ops.mean(loss)
    if normalizer is not None:
        loss = loss / ops.maximum(ops.cast(normalizer, loss.dtype), 1.0)
    return loss


def sigmoid_focal_loss(labels, logits, alpha=0.25, gamma=2.0, reduction="sum", normalizer=None):
    """Focal loss on independent sigmoid outputs (RetinaNet, FCOS).

    Args:
        labels: ``(..., C)`` targets in ``[0, 1]`` (one-hot, or soft).
        logits: ``(..., C)`` raw scores.
        alpha: weight of positives (``1 - alpha`` for negatives); None for none.
        gamma: focusing exponent.
        reduction: ``"none"``, ``"sum"`` or ``"mean"``.
        normalizer: divide the reduced loss by this (e.g. number of positives).

    Returns:
        The loss, of ``logits``' shape with ``reduction="none"``.
    """
    logits = ops.convert_to_tensor(logits)
    labels = ops.cast(ops.convert_to_tensor(labels), logits.dtype)
    probabilities = ops.sigmoid(logits)
    cross_entropy = ops.binary_crossentropy(labels, logits, from_logits=True)
    p_t = labels * probabilities + (1 - labels) * (1 - probabilities)
    loss = cross_entropy * ops.power(1 - p_t, gamma)
    if alpha is not None:
        loss = loss * (alpha * labels + (1 - alpha) * (1 - labels))
    return reduce_loss(loss, reduction, normalizer)


def distribution_focal_loss(targets, logits, reduction="sum", normalizer=None):
    """Distribution focal loss of GFL, as in YOLOv8's box branch.

    Args:
        targets: ``(...)`` distances in bin units; clipped to ``[0, n - 1.01]``
            so that the upper bin exists (YOLOv8 clips the same way).
        logits: ``(..., n)`` scores of the ``n`` bins.
        reduction: ``"none"``, ``"sum"`` or ``"mean"``.
        normalizer: divide the reduced loss by this.

    Returns:
        The loss, of ``targets``' shape with ``reduction="none"``.
    """
    logits = ops.convert_to_tensor(logits)
    num_bins = logits.shape[-1]
    targets = ops.clip(ops.cast(ops.convert_to_tensor(targets), logits.dtype), 0.0, num_bins - 1.01)
    lower = ops.floor(targets)
    lower_weight = lower + 1 - targets  # the closer the target to a bin, the more it weighs
    log_probabilities = ops.log_softmax(logits, axis=-1)
    lower_index = ops.expand_dims(ops.cast(lower, "int32"), -1)
    log_lower = ops.take_along_axis(log_probabilities, lower_index, axis=-1)[..., 0]
    log_upper = ops.take_along_axis(log_probabilities, lower_index + 1, axis=-1)[..., 0]
    loss = -(lower_weight * log_lower + (1 - lower_weight) * log_upper)
    return reduce_loss(loss, reduction, normalizer)


def giou_loss(pred_boxes, target_boxes, reduction="sum", normalizer=None):
    """``1 - GIoU`` of aligned ``(..., 4)`` ``xyxy`` boxes (FCOS's box loss)."""
    return reduce_loss(1.0 - aligned_giou(pred_boxes, target_boxes), reduction, normalizer)


def diou_loss(pred_boxes, target_boxes, reduction="sum", normalizer=None):
    """``1 - DIoU`` of aligned ``(..., 4)`` ``xyxy`` boxes."""
    return reduce_loss(1.0 - aligned_diou(pred_boxes, target_boxes), reduction, normalizer)


def ciou_loss(pred_boxes, target_boxes, reduction="sum", normalizer=None):
    """``1 - CIoU`` of aligned ``(..., 4)`` ``xyxy`` boxes (YOLOv8's box loss)."""
    return reduce_loss(1.0 - aligned_ciou(pred_boxes, target_boxes), reduction, normalizer)
