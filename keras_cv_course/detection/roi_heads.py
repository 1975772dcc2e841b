"""The second stage of Faster R-CNN: RoI pooling, the box head, proposal sampling, losses.

Ren et al., "Faster R-CNN", NeurIPS 2015, arXiv:1506.01497 (the Fast R-CNN head of Girshick,
"Fast R-CNN", ICCV 2015, arXiv:1504.08083), on an FPN (Lin et al., CVPR 2017,
arXiv:1612.03144, section 4.2), with torchvision's ``RoIHeads`` settings:

* every proposal is pooled to 7 x 7 by RoIAlign (``sampling_ratio`` 2, ``aligned=False`` as
  torchvision's ``MultiScaleRoIAlign``) from the pyramid level its size picks (P2-P5);
* the box head is two fully connected layers of 1024 with ReLU ("TwoMLPHead"), then class
  scores over ``C + 1`` classes (0 is background) and class-specific box offsets,
  ``4 (C + 1)``, coded with weights 10, 10, 5, 5;
* training samples 512 RoIs per image from the proposals plus the ground-truth boxes: IoU
  >= 0.5 with an object is foreground (at most a quarter of the sample), below 0.5
  background; cross-entropy on all sampled RoIs and smooth L1 (beta 1/9) on the foreground
  RoIs' offsets for their true class, both divided by the number of sampled RoIs;
* at test time every class but background has its own box and score; the task's per-class
  NMS (IoU 0.5, scores above 0.05, 100 per image) makes the detections.
"""

import keras
from keras import ops

from keras_cv_course.detection.boxes import clip_to_image
from keras_cv_course.detection.coder import FASTER_RCNN_HEAD_WEIGHTS, BoxCoder
from keras_cv_course.detection.iou import pairwise_iou
from keras_cv_course.detection.matching import Matcher, gt_validity
from keras_cv_course.detection.rpn import balanced_sample, smooth_l1
from keras_cv_course.layers.roi_align import multilevel_roi_align

ROI_OUTPUT_SIZE = 7
ROI_SAMPLING_RATIO = 2
REPRESENTATION_SIZE = 1024
BOX_FOREGROUND_IOU = 0.5
BOX_BACKGROUND_IOU = 0.5
BOX_SAMPLES_PER_IMAGE = 512
BOX_POSITIVE_FRACTION = 0.25


@keras.saving.register_keras_serializable(package="keras_cv_course")
class MultiLevelRoIAlign(keras.layers.Layer):
    """RoIAlign of each image's RoIs on a feature pyramid (``multilevel_roi_align``).

    Args:
        output_size: the pooled grid's side.
        strides: the stride of each map, finest first, e.g. ``(4, 8, 16, 32)``.
        sampling_ratio, aligned: as in ``roi_align``.

    Call arguments: ``(maps, rois)``: the list of ``(B, H_l, W_l, C)`` maps and
    ``(B, R, 4)`` ``xyxy`` RoIs in pixels. Returns ``(B * R, out, out, C)``, image major.
    """

    def __init__(self, output_size=ROI_OUTPUT_SIZE, strides=(4, 8, 16, 32),
                 sampling_ratio=ROI_SAMPLING_RATIO, aligned=False, **kwargs):
        super().__init__(**kwargs)
        self.output_size = int(output_size)
        self.strides = tuple(int(s) for s in strides)
        self.sampling_ratio, self.aligned = int(sampling_ratio), bool(aligned)

    def call(self, maps, rois):
        per_image = rois.shape[1]
        flat = ops.reshape(rois, (-1, 4))
        images = ops.repeat(ops.arange(ops.shape(rois)[0], dtype="int32"), per_image)
        return multilevel_roi_align(list(maps), flat, images, self.output_size, self.strides,
                                    self.sampling_ratio, self.aligned)

    def compute_output_spec(self, maps, rois):
        batch = None if rois.shape[0] is None else rois.shape[0] * rois.shape[1]
        return keras.KerasTensor((batch, self.output_size, self.output_size, maps[0].shape[-1]),
                                 maps[0].dtype)

    def get_config(self):
        return {**super().get_config(), "output_size": self.output_size,
                "strides": list(self.strides), "sampling_ratio": self.sampling_ratio,
                "aligned": self.aligned}


def box_head_layers(classes, representation=REPRESENTATION_SIZE):
    """TwoMLPHead (fc6, fc7) and FastRCNNPredictor (class scores, class-specific offsets)."""
    return (keras.layers.Flatten(name="box_head_flatten"),
            keras.layers.Dense(representation, activation="relu", name="box_head_fc6"),
            keras.layers.Dense(representation, activation="relu", name="box_head_fc7"),
            keras.layers.Dense(classes + 1, name="box_predictor_cls_score"),
            keras.layers.Dense(4 * (classes + 1), name="box_predictor_bbox_pred"))


def box_head(layers, pooled, rois_per_image):
    """Class logits ``(B, R, C + 1)`` and offsets ``(B, R, 4 (C + 1))`` of pooled RoIs."""
    flatten, fc6, fc7, classify, regress = layers
    hidden = fc7(fc6(flatten(pooled)))
    logits, offsets = classify(hidden), regress(hidden)
    return (ops.reshape(logits, (-1, rois_per_image, logits.shape[-1])),
            ops.reshape(offsets, (-1, rois_per_image, offsets.shape[-1])))


def class_specific_boxes(proposals, offsets, image_size):
    """``(B, R, C, 4)`` boxes of every object class (background dropped), clipped."""
    per_class = ops.reshape(offsets, (-1, offsets.shape[1], offsets.shape[2] // 4, 4))[:, :, 1:]
    # Each class gets its own copy of the proposal, so that every sum below has the full
    # (B, R, C) shape: at batch 1, Keras' TensorFlow ``add`` turns a (1, R, 1) operand into
    # an NCHW ``BiasAdd``, which the TFLite converter cannot lower inside a model.
    proposals = proposals[:, :, None, :] + ops.zeros_like(per_class)
    boxes = BoxCoder(FASTER_RCNN_HEAD_WEIGHTS).decode(per_class, proposals)
    return clip_to_image(boxes, image_size)


def _gather_rows(values, index):
    if len(values.shape) == 2:
        return ops.take_along_axis(values, index, axis=1)
    return ops.take_along_axis(values, ops.repeat(index[..., None], values.shape[-1], -1), axis=1)


def sample_proposals(proposals, num_proposals, gt_boxes, gt_classes, seed=None,
                     samples_per_image=BOX_SAMPLES_PER_IMAGE,
                     positive_fraction=BOX_POSITIVE_FRACTION):
    """The RoIs the box head trains on, and their targets.

    Args:
        proposals: ``(B, P, 4)`` padded proposals; num_proposals: ``(B,)`` real rows.
        gt_boxes: ``(B, G, 4)`` ``xyxy`` pixels; gt_classes: ``(B, G)``, -1 on padding.
        seed: the sampler's ``SeedGenerator``.

    Returns:
        A dict of ``(B, S)``-leading tensors, ``S = min(samples_per_image, P + G)``:
        ``rois`` (4), ``labels`` (int32, 0 = background, else class + 1), ``targets``
        (4, coded with weights 10, 10, 5, 5), ``matched`` (int32, the object of a
        foreground RoI; 0 for the others) and ``weights`` (1 for sampled slots, 0 for the
        slots left over when an image has fewer candidates).
    """
    gt_valid = gt_validity(gt_classes)
    candidates = ops.concatenate([proposals, ops.cast(gt_boxes, proposals.dtype)], axis=1)
    real = ops.arange(proposals.shape[1])[None, :] < ops.cast(num_proposals, "int32")[:, None]
    valid = ops.concatenate([real, gt_valid], axis=1)
    matcher = Matcher(BOX_FOREGROUND_IOU, BOX_BACKGROUND_IOU)
    matches = matcher(pairwise_iou(gt_boxes, candidates), gt_valid)
    positive, negative = balanced_sample(valid & (matches >= 0), valid & (matches == -1),
                                         samples_per_image, positive_fraction, seed)
    sampled = ops.cast(positive | negative, "float32")
    count = min(int(samples_per_image), int(candidates.shape[1]))
    weights, slots = ops.top_k(sampled, count)  # sampled candidates first
    slots = ops.cast(slots, "int32")
    rois = _gather_rows(candidates, slots)
    matched = _gather_rows(ops.maximum(matches, 0), slots)
    foreground = _gather_rows(positive, slots)
    labels = ops.where(foreground, _gather_rows(gt_classes, matched) + 1, 0)
    truth = ops.where(foreground[..., None], _gather_rows(gt_boxes, matched), rois)
    targets = BoxCoder(FASTER_RCNN_HEAD_WEIGHTS).encode(truth, rois)
    return {"rois": ops.stop_gradient(rois), "labels": ops.cast(labels, "int32"),
            "targets": ops.stop_gradient(targets), "weights": weights,
            "matched": ops.where(foreground, matched, 0)}


def fast_rcnn_losses(logits, offsets, labels, targets, weights):
    """``(classifier, box_regression)`` losses of sampled RoIs (torchvision's
    ``fastrcnn_loss``), each summed and divided by the number of sampled RoIs."""
    weights = ops.cast(weights, "float32")
    count = ops.maximum(ops.sum(weights), 1.0)
    cross_entropy = ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    classifier = ops.sum(cross_entropy * weights) / count
    per_class = ops.reshape(offsets, (-1, offsets.shape[1], offsets.shape[2] // 4, 4))
    own = ops.take_along_axis(per_class, labels[..., None, None], axis=2)[:, :, 0]
    foreground = ops.cast(labels > 0, "float32") * weights
    box = ops.sum(ops.sum(smooth_l1(own - targets), axis=-1) * foreground) / count
    return classifier, box
