"""The region proposal network (RPN) of Faster R-CNN.

Ren, He, Girshick, Sun, "Faster R-CNN: Towards Real-Time Object Detection with Region
Proposal Networks", NeurIPS 2015, arXiv:1506.01497, section 3.1, on the feature pyramid of
Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017, arXiv:1612.03144,
section 4.1, with torchvision's settings (``fasterrcnn_resnet50_fpn``):

* anchors: one size per level, 32, 64, 128, 256, 512 pixels on P2-P6, and aspect ratios
  0.5, 1, 2, so three anchors per cell (``detection.AnchorGenerator``);
* head: a 3x3 convolution with ReLU shared by every level, then two 1x1 convolutions: one
  objectness logit and four box offsets per anchor (``BoxCoder`` weights 1, 1, 1, 1);
* proposals, per image: the ``pre_nms_top_n`` best anchors of each level (2000 in training,
  1000 at test), decoded and clipped to the image, boxes with a side under 1e-3 px dropped,
  NMS at IoU 0.7 within each level, then the ``post_nms_top_n`` best overall (2000 / 1000);
* training: anchors with IoU >= 0.7 to an object are positive, < 0.3 negative, and each
  object's best anchors are positive too; 256 anchors per image are sampled, at most half of
  them positive; binary cross-entropy on their objectness and smooth L1 (beta 1/9) on the
  positives' offsets, both divided by the number of sampled anchors.

Shapes are static everywhere: proposals come padded to ``post_nms_top_n`` rows with a count,
and sampling returns masks of fixed shape, so the same code runs in ``model.fit``, under XLA
and in an exported graph.
"""

import keras
from keras import ops

from keras_cv_course.detection.boxes import clip_to_image
from keras_cv_course.detection.coder import BoxCoder
from keras_cv_course.detection.matching import Matcher, match_anchors
from keras_cv_course.detection.nms import NonMaxSuppression

RPN_ANCHOR_SIZES = ((32,), (64,), (128,), (256,), (512,))  # P2..P6
RPN_ASPECT_RATIOS = (0.5, 1.0, 2.0)
PRE_NMS_TOP_N = {"train": 2000, "test": 1000}
POST_NMS_TOP_N = {"train": 2000, "test": 1000}
RPN_NMS_IOU = 0.7
RPN_MIN_SIZE = 1e-3
RPN_FOREGROUND_IOU = 0.7
RPN_BACKGROUND_IOU = 0.3
RPN_SAMPLES_PER_IMAGE = 256
RPN_POSITIVE_FRACTION = 0.5
SMOOTH_L1_BETA = 1.0 / 9.0
HEAD_INIT_STD = 0.01


def rpn_head_layers(width, anchors_per_location):
    """The RPN's three convolutions, shared by every pyramid level (N(0, 0.01) weights)."""
    init = keras.initializers.RandomNormal(stddev=HEAD_INIT_STD)

    def conv(filters, size, name, activation=None):
        return keras.layers.Conv2D(filters, size, padding="same", activation=activation,
                                   kernel_initializer=init, name=name)

    return (conv(width, 3, "rpn_conv", "relu"), conv(anchors_per_location, 1, "rpn_cls_logits"),
            conv(4 * anchors_per_location, 1, "rpn_bbox_pred"))


def rpn_outputs(levels, layers):
    """Objectness logits ``(B, N)`` and offsets ``(B, N, 4)`` of every anchor, ordered
    (level, y, x, anchor) like ``AnchorGenerator``'s anchors."""
    shared, classify, regress = layers
    logits, offsets = [], []
    for level in levels:
        hidden = shared(level)
        cells = int(level.shape[1]) * int(level.shape[2])
        anchors = int(classify.filters)
        logits.append(ops.reshape(classify(hidden), (-1, cells * anchors)))
        offsets.append(ops.reshape(regress(hidden), (-1, cells * anchors, 4)))
    return ops.concatenate(logits, axis=1), ops.concatenate(offsets, axis=1)


def top_per_level(logits, offsets, level_counts, k):
    """Each level's ``k`` best anchors, the levels concatenated.

    Returns:
        ``logits (B, K)``, ``offsets (B, K, 4)``, ``anchor index (B, K)`` into the
        ``(N, 4)`` anchors, and ``level (K,)`` of each column.
    """
    values, chosen, indices, levels, start = [], [], [], [], 0
    for level, count in enumerate(level_counts):
        top = min(int(k), int(count))
        best, index = ops.top_k(logits[:, start:start + count], top)
        index = ops.cast(index, "int32")
        values.append(best)
        chosen.append(ops.take_along_axis(offsets[:, start:start + count],
                                          ops.repeat(index[..., None], 4, axis=-1), axis=1))
        indices.append(index + start)
        levels.append(ops.full((top,), level, "int32"))
        start += count
    return (ops.concatenate(values, 1), ops.concatenate(chosen, 1),
            ops.concatenate(indices, 1), ops.concatenate(levels, 0))


@keras.saving.register_keras_serializable(package="keras_cv_course")
class ProposalLayer(keras.layers.Layer):
    """Region proposals from the RPN's outputs: top-k per level, decode, clip, NMS, top-k.

    Args:
        anchors: ``(N, 4)`` ``xyxy`` anchors (``AnchorGenerator``), a constant.
        level_counts: anchors of each level, finest first.
        image_size: ``(height, width)`` of the network input.
        pre_nms_top_n: anchors kept per level before NMS.
        post_nms_top_n: proposals kept per image after NMS.
        nms_iou: NMS threshold within a level.
        min_size: boxes with a side under this (pixels) are dropped.

    Call arguments: ``[logits (B, N), offsets (B, N, 4)]``.

    Returns:
        ``{"boxes": (B, post_nms_top_n, 4), "scores": (B, post_nms_top_n), "num": (B,)}``,
        best first; padding rows are zero boxes with score 0. No gradient flows into the
        boxes (torchvision detaches them too).
    """

    def __init__(self, anchors, level_counts, image_size, pre_nms_top_n, post_nms_top_n,
                 nms_iou=RPN_NMS_IOU, min_size=RPN_MIN_SIZE, **kwargs):
        super().__init__(**kwargs)
        self.anchors = ops.convert_to_numpy(anchors).astype("float32")
        self.level_counts = tuple(int(c) for c in level_counts)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.pre_nms_top_n, self.post_nms_top_n = int(pre_nms_top_n), int(post_nms_top_n)
        self.nms_iou, self.min_size = float(nms_iou), float(min_size)
        kept = sum(min(self.pre_nms_top_n, c) for c in self.level_counts)
        self.nms = NonMaxSuppression(iou_threshold=self.nms_iou, score_threshold=0.0,
                                     max_detections=self.post_nms_top_n, pre_nms_topk=kept,
                                     min_size=self.min_size)
        self.coder = BoxCoder()

    def call(self, logits, offsets):
        logits, offsets = ops.stop_gradient(logits), ops.stop_gradient(offsets)
        logits, offsets, index, levels = top_per_level(logits, offsets, self.level_counts,
                                                       self.pre_nms_top_n)
        anchors = ops.take(ops.convert_to_tensor(self.anchors), index, axis=0)  # (B, K, 4)
        boxes = clip_to_image(self.coder.decode(offsets, anchors), self.image_size)
        # One "class" per level: NMS never lets a box suppress one of another level.
        level_columns = ops.one_hot(levels, len(self.level_counts))[None]  # (1, K, levels)
        by_level = level_columns * ops.sigmoid(logits)[..., None]
        found = self.nms(boxes, by_level)
        return {"boxes": found["boxes"], "scores": found["scores"],
                "num": found["num_detections"]}

    def compute_output_spec(self, logits, offsets):
        batch, size = logits.shape[0], self.post_nms_top_n
        return {"boxes": keras.KerasTensor((batch, size, 4), "float32"),
                "scores": keras.KerasTensor((batch, size), "float32"),
                "num": keras.KerasTensor((batch,), "int32")}

    def get_config(self):
        return {**super().get_config(), "anchors": self.anchors.tolist(),
                "level_counts": list(self.level_counts), "image_size": list(self.image_size),
                "pre_nms_top_n": self.pre_nms_top_n, "post_nms_top_n": self.post_nms_top_n,
                "nms_iou": self.nms_iou, "min_size": self.min_size}


def _first_by_random_key(candidates, count, seed):
    """``(B, N)`` mask of ``count`` (``(B,)``) candidates drawn uniformly without replacement."""
    keys = ops.where(candidates, keras.random.uniform(ops.shape(candidates), seed=seed), -1.0)
    order = ops.argsort(ops.argsort(-keys, axis=1), axis=1)  # rank of each key, 0 = largest
    return candidates & (order < ops.cast(count, order.dtype)[:, None])


def balanced_sample(positive, negative, samples_per_image, positive_fraction, seed=None):
    """torchvision's ``BalancedPositiveNegativeSampler`` with static shapes.

    Draws at most ``samples_per_image * positive_fraction`` positives at random, then fills
    the rest of ``samples_per_image`` with random negatives (fewer when there are not
    enough).

    Args:
        positive, negative: ``(B, N)`` booleans, disjoint.
        samples_per_image: candidates sampled per image.
        positive_fraction: the largest share of positives.
        seed: a ``keras.random.SeedGenerator`` (or int) for the draws.

    Returns:
        ``(sampled_positive, sampled_negative)``, ``(B, N)`` booleans.
    """
    positive, negative = ops.convert_to_tensor(positive), ops.convert_to_tensor(negative)
    most_positive = int(samples_per_image * positive_fraction)
    positives = ops.minimum(ops.sum(ops.cast(positive, "int32"), axis=1), most_positive)
    negatives = ops.minimum(ops.sum(ops.cast(negative, "int32"), axis=1),
                            samples_per_image - positives)
    return (_first_by_random_key(positive, positives, seed),
            _first_by_random_key(negative, negatives, seed))


def smooth_l1(difference, beta=SMOOTH_L1_BETA):
    """Huber-style smooth L1, elementwise: ``0.5 x^2 / beta`` below ``beta``, else
    ``|x| - 0.5 beta``."""
    size = ops.abs(difference)
    return ops.where(size < beta, 0.5 * size * size / beta, size - 0.5 * beta)


def rpn_losses(logits, offsets, anchors, gt_boxes, gt_classes, seed=None,
               samples_per_image=RPN_SAMPLES_PER_IMAGE, positive_fraction=RPN_POSITIVE_FRACTION):
    """The RPN's two losses on a batch: ``(objectness, box)``, scalars.

    Args:
        logits: ``(B, N)`` objectness logits; offsets: ``(B, N, 4)``.
        anchors: ``(N, 4)`` ``xyxy`` anchors.
        gt_boxes: ``(B, G, 4)`` ``xyxy`` pixels; gt_classes: ``(B, G)``, -1 on padding.
        seed: the sampler's ``SeedGenerator``.
    """
    matcher = Matcher(RPN_FOREGROUND_IOU, RPN_BACKGROUND_IOU, allow_low_quality_matches=True)
    matches = match_anchors(anchors, gt_boxes, gt_classes, matcher)
    positive, negative = balanced_sample(matches >= 0, matches == -1, samples_per_image,
                                         positive_fraction, seed)
    sampled = ops.cast(positive | negative, "float32")
    count = ops.maximum(ops.sum(sampled), 1.0)
    labels = ops.cast(positive, "float32")
    bce = ops.binary_crossentropy(labels, logits, from_logits=True)  # (B, N), elementwise
    objectness = ops.sum(bce * sampled) / count
    matched = ops.take_along_axis(gt_boxes, ops.repeat(ops.maximum(matches, 0)[..., None], 4, -1),
                                  axis=1)
    anchors = ops.cast(ops.convert_to_tensor(anchors), matched.dtype)[None]
    safe = ops.where(positive[..., None], matched, anchors)  # no log(0) off the positives
    targets = BoxCoder().encode(safe, anchors)
    box = ops.sum(ops.sum(smooth_l1(offsets - targets), -1) * ops.cast(positive, "float32"))
    return objectness, box / count
