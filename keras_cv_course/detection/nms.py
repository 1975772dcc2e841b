"""Non-maximum suppression as one serializable Keras layer.

Greedy NMS (as in Girshick et al., "Rich feature hierarchies...", CVPR 2014,
arXiv:1311.2524, and every detector since): take boxes in decreasing score
order, keep a box unless it overlaps an already kept box of the same class by
IoU greater than ``iou_threshold``.

Per-class NMS in one pass: the ``pre_nms_topk`` best (box, class) pairs of an
image are taken first, then every box is shifted by
``class_id * (largest coordinate + 1)``, so that boxes of different classes
can never overlap, and one class-agnostic NMS runs on the shifted boxes
(torchvision's ``batched_nms`` trick).

Two implementations, which give the same detections:

* ``"keras"``: ``keras.ops`` only, for every backend: the IoU matrix of the
  candidates, then a ``fori_loop`` that visits them in score order.
* ``"tensorflow"``: one ``NonMaxSuppressionV5`` per image on rank-2 boxes,
  with a Python loop over a static batch. TFLite's converter turns it into
  its built-in ``NON_MAX_SUPPRESSION_V5`` and tf2onnx into ONNX
  ``NonMaxSuppression``; a batched (rank-3) call, ``combined_non_max_suppression``
  and ``map_fn`` do not lower to either (DESIGN §10). Export with a static
  batch (1) to get it. ``"auto"`` picks it on the TensorFlow backend when
  the batch size is static, and ``"keras"`` otherwise.
"""

import keras
from keras import ops

from keras_cv_course.detection.iou import pairwise_iou

IMPLEMENTATIONS = ("auto", "keras", "tensorflow")


def top_class_candidates(boxes, scores, k):
    """The ``k`` best (box, class) pairs of each image, by decreasing score.

    Args:
        boxes: ``(B, N, 4)`` boxes shared by every class, or ``(B, N, C, 4)``
            one box per class (Faster R-CNN's class-specific regression).
        scores: ``(B, N, C)`` per-class scores; N and C static.
        k: how many pairs to keep (at most ``N * C``).

    Returns:
        ``(boxes (B, k, 4), scores (B, k), classes (B, k) int32)``.
    """
    num_boxes, num_classes = scores.shape[1], scores.shape[2]
    flat_scores, flat_index = ops.top_k(ops.reshape(scores, (-1, num_boxes * num_classes)), k)
    flat_index = ops.cast(flat_index, "int32")
    if len(boxes.shape) == 4:  # the pair's own box: rows of (B, N * C, 4)
        box_index, boxes = flat_index, ops.reshape(boxes, (-1, num_boxes * num_classes, 4))
    else:
        box_index = flat_index // num_classes
    candidate_boxes = ops.take_along_axis(boxes, ops.repeat(box_index[..., None], 4, -1), axis=1)
    return candidate_boxes, flat_scores, flat_index % num_classes


def offset_by_class(boxes, classes):
    """Shifts each image's boxes by ``class * (its largest coordinate + 1)``."""
    largest = ops.max(boxes, axis=(1, 2), keepdims=True)  # (B, 1, 1)
    return boxes + ops.cast(classes, boxes.dtype)[..., None] * (largest + 1.0)


def greedy_nms_keras(boxes, scores, iou_threshold, score_threshold):
    """Greedy NMS over score-sorted candidates with ``keras.ops`` only.

    Args:
        boxes: ``(B, K, 4)`` ``xyxy`` boxes, sorted by decreasing score.
        scores: ``(B, K)`` their scores.

    Returns:
        ``(B, K)`` booleans: the kept candidates.
    """
    iou = pairwise_iou(boxes, boxes)  # (B, K, K)
    eligible = scores > score_threshold
    positions = ops.arange(scores.shape[1])

    def visit(i, keep):
        overlaps = ops.take(iou, i, axis=1) > iou_threshold  # (B, K): overlaps of box i
        suppressed = ops.any(keep & overlaps & (positions < i), axis=1, keepdims=True)
        keep_i = ops.take(eligible, i, axis=1)[:, None] & ~suppressed
        return ops.where(positions == i, keep_i, keep)

    return ops.fori_loop(0, scores.shape[1], visit, ops.zeros_like(eligible))


def _first_kept(keep, count):
    """Positions of the first ``count`` kept candidates, and how many there are."""
    positions = ops.arange(keep.shape[1])
    # Kept candidates rank by position (earlier = higher score); others sink to the bottom.
    _, selected = ops.top_k(ops.where(keep, keep.shape[1] - positions, 0), count)
    num = ops.minimum(ops.sum(ops.cast(keep, "int32"), axis=1), count)
    return ops.cast(selected, "int32"), num


def nms_tensorflow(boxes, scores, iou_threshold, score_threshold, count):
    """TensorFlow's NMS per image on rank-2 boxes, looping over a static batch.

    Returns:
        ``(selected (B, count) int32, num (B,) int32)``.
    """
    import tensorflow as tf

    selected, valid = [], []
    for b in range(boxes.shape[0]):
        # IoU is the same for (x, y) and (y, x) corner order, so xyxy can go in as it is.
        index, _, num = tf.raw_ops.NonMaxSuppressionV5(
            boxes=boxes[b], scores=scores[b], max_output_size=count,
            iou_threshold=iou_threshold, score_threshold=score_threshold, soft_nms_sigma=0.0,
            pad_to_max_output_size=True)
        selected.append(index)
        valid.append(num)
    return tf.stack(selected), tf.stack(valid)


@keras.saving.register_keras_serializable(package="keras_cv_course")
class NonMaxSuppression(keras.layers.Layer):
    """Per-class NMS of decoded boxes, padded to ``max_detections`` per image.

    Args:
        iou_threshold: boxes overlapping a kept box by more than this are dropped.
        score_threshold: candidates scoring at most this are dropped.
        max_detections: detections returned per image (padded).
        pre_nms_topk: (box, class) candidates kept per image before NMS.
        min_size: boxes narrower or lower than this (pixels) are dropped first,
            as torchvision's ``remove_small_boxes`` does; an empty box has IoU 0
            with everything, and TFLite's NMS returns it more than once.
        implementation: ``"auto"``, ``"keras"`` or ``"tensorflow"`` (see module).

    Call arguments:
        boxes: ``(B, N, 4)`` ``xyxy`` boxes, or ``(B, N, C, 4)``: one per class.
        scores: ``(B, N, C)`` per-class scores (probabilities).

    Returns:
        A dict: ``boxes (B, max_detections, 4)``, ``scores (B, max_detections)``,
        ``classes (B, max_detections)`` int32 and ``num_detections (B,)`` int32,
        in decreasing score order; padding rows have boxes and scores 0 and
        class -1.
    """

    def __init__(self, iou_threshold=0.5, score_threshold=0.05, max_detections=100,
                 pre_nms_topk=1000, min_size=1e-2, implementation="auto", **kwargs):
        super().__init__(**kwargs)
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"expected implementation in {IMPLEMENTATIONS}, "
                             f"received {implementation!r}")
        self.iou_threshold = float(iou_threshold)
        self.score_threshold = float(score_threshold)
        self.max_detections = int(max_detections)
        self.pre_nms_topk = int(pre_nms_topk)
        self.min_size = float(min_size)
        self.implementation = implementation

    def _uses_tensorflow(self, batch_size):
        if self.implementation == "tensorflow":
            if batch_size is None:
                raise ValueError("implementation='tensorflow' needs a static batch size, "
                                 "received boxes with batch size None")
            return True
        return (self.implementation == "auto" and keras.backend.backend() == "tensorflow"
                and batch_size is not None)

    def call(self, boxes, scores):
        if None in scores.shape[1:]:
            raise ValueError(f"expected scores (B, N, C) with static N and C, "
                             f"received shape {scores.shape}")
        sides = ops.minimum(boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1])
        large_enough = sides >= self.min_size  # (B, N), or (B, N, C) for per-class boxes
        scores = ops.where(large_enough if len(boxes.shape) == 4 else large_enough[..., None],
                           scores, 0.0)
        k = min(self.pre_nms_topk, scores.shape[1] * scores.shape[2])
        count = min(self.max_detections, k)
        boxes, scores, classes = top_class_candidates(boxes, scores, k)
        shifted = offset_by_class(boxes, classes)
        if self._uses_tensorflow(boxes.shape[0]):
            selected, num = nms_tensorflow(shifted, scores, self.iou_threshold,
                                           self.score_threshold, count)
        else:
            keep = greedy_nms_keras(shifted, scores, self.iou_threshold, self.score_threshold)
            selected, num = _first_kept(keep, count)
        return self._padded_detections(boxes, scores, classes, selected, num)

    def _padded_detections(self, boxes, scores, classes, selected, num):
        selected = ops.cast(selected, "int32")
        num = ops.cast(num, "int32")
        valid = ops.arange(selected.shape[1])[None, :] < num[:, None]  # (B, count)
        pad = [[0, 0], [0, self.max_detections - selected.shape[1]]]
        boxes = ops.take_along_axis(boxes, ops.repeat(selected[..., None], 4, -1), axis=1)
        boxes = ops.pad(ops.where(valid[..., None], boxes, 0.0), pad + [[0, 0]])
        scores = ops.pad(ops.where(valid, ops.take_along_axis(scores, selected, 1), 0.0), pad)
        classes = ops.where(valid, ops.take_along_axis(classes, selected, 1), -1)
        classes = ops.pad(classes, pad, constant_values=-1)
        return {"boxes": boxes, "scores": scores, "classes": classes, "num_detections": num}

    def compute_output_spec(self, boxes, scores):
        batch, size = boxes.shape[0], self.max_detections
        return {"boxes": keras.KerasTensor((batch, size, 4), boxes.dtype),
                "scores": keras.KerasTensor((batch, size), scores.dtype),
                "classes": keras.KerasTensor((batch, size), "int32"),
                "num_detections": keras.KerasTensor((batch,), "int32")}

    def get_config(self):
        return {**super().get_config(), "iou_threshold": self.iou_threshold,
                "score_threshold": self.score_threshold, "max_detections": self.max_detections,
                "pre_nms_topk": self.pre_nms_topk, "min_size": self.min_size,
                "implementation": self.implementation}
