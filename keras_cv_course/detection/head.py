"""The contract between a detector and the ``detection`` task: the ``DetectionHead`` layer.

Every detector ends in one ``DetectionHead`` layer. It packs the raw head
outputs of every pyramid level into one tensor ``(B, A, K)`` (the model's only
output, named ``raw_detections``), and it knows how to read that tensor back:

* ``decode(raw)`` gives ``xyxy`` boxes in pixels ``(B, A, 4)`` and class
  probabilities ``(B, A, C)``: the task runs NMS on them (training-time
  evaluation, the export's end-to-end signature, ``kcc predict``);
* ``loss(objects, raw)`` is the detector's training loss against the task's
  targets (``split_objects``), written with ``keras.ops`` for every backend.

So the task never asks which detector it trains: YOLO v1, an anchor-free
YOLO, RetinaNet and FCOS differ only in their head's subclass. This follows
the split of torchvision's detection models (backbone, FPN, anchors, coder,
matcher, head, postprocess) and keras-hub's task models, whose decoding
lives with the model. A head has no weights; its configuration (image size,
classes, strides, anchors) is serialized with the model, so a loaded
``.keras`` file decodes and trains as the one that was saved.
"""

import keras
from keras import ops

RAW_OUTPUT = "raw_detections"
"""The name of every detector's output: the packed raw heads."""

OBJECT_FIELDS = 5
"""Each target object is ``[ymin, xmin, ymax, xmax, class]``, box normalised to [0, 1]."""


def split_objects(objects, image_size):
    """Task targets -> ground truth as the detection parts take it.

    Args:
        objects: ``(B, M, 5)`` ``[ymin, xmin, ymax, xmax, class]`` rows, the
            box normalised to [0, 1]; padding rows are -1.
        image_size: ``(height, width)`` of the network input.

    Returns:
        ``(gt_boxes (B, M, 4) xyxy in pixels, gt_classes (B, M) int32)``;
        padding rows have class -1.
    """
    objects = ops.convert_to_tensor(objects, "float32")
    height, width = float(image_size[0]), float(image_size[1])
    ymin, xmin, ymax, xmax, classes = [objects[..., i] for i in range(OBJECT_FIELDS)]
    boxes = ops.stack([xmin * width, ymin * height, xmax * width, ymax * height], axis=-1)
    return boxes, ops.cast(ops.where(classes < 0, -1.0, classes), "int32")


class DetectionHead(keras.layers.Layer):
    """Packs raw per-level outputs into ``(B, A, K)``; decodes them; computes the loss.

    Subclasses implement ``decode`` and ``loss`` and may override
    ``pack`` (the default flattens each level's ``(B, H, W, K)`` map and
    concatenates the levels, finest first).

    Args:
        image_size: ``(height, width)`` of the network input; static.
        num_classes: object classes (no background class).
    """

    def __init__(self, image_size, num_classes, **kwargs):
        kwargs.setdefault("name", RAW_OUTPUT)
        super().__init__(**kwargs)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.num_classes = int(num_classes)

    def call(self, *levels):
        return self.pack(list(levels))

    def pack(self, levels):
        """``[(B, H, W, K), ...]`` -> ``(B, sum H*W, K)``."""
        flat = [ops.reshape(level, (-1, level.shape[1] * level.shape[2], level.shape[3]))
                for level in levels]
        return flat[0] if len(flat) == 1 else ops.concatenate(flat, axis=1)

    def decode(self, raw):
        """``(B, A, K)`` -> ``(boxes (B, A, 4) xyxy pixels, scores (B, A, C) in [0, 1])``."""
        raise NotImplementedError(f"{type(self).__name__} must implement decode")

    def loss(self, objects, raw):
        """The training loss of a batch: ``objects (B, M, 5)`` targets, ``raw (B, A, K)``."""
        raise NotImplementedError(f"{type(self).__name__} must implement loss")

    def get_config(self):
        return {**super().get_config(), "image_size": list(self.image_size),
                "num_classes": self.num_classes}


def detection_head(model):
    """The ``DetectionHead`` layer of a detector; a clear error for other models."""
    heads = [layer for layer in model.layers if isinstance(layer, DetectionHead)]
    if len(heads) != 1:
        raise ValueError(f"model {model.name!r} must end in one DetectionHead layer "
                         f"(keras_cv_course.detection.head); found {len(heads)}")
    return heads[0]


class OutOfSaving:
    """Holds an object where Keras' ``.keras`` saver does not look.

    The saver and the loader walk every attribute (properties too) of a
    compiled model's loss. A loaded loss holds a head rebuilt from its config,
    a different object from the model's; found there, the loader would look
    for its weights (YOLOv8's fixed DFL projection) under the loss, where
    nothing was saved, and fail.
    """

    def __init__(self, value):
        self.value = value


@keras.saving.register_keras_serializable(package="keras_cv_course")
class DetectionLoss(keras.losses.Loss):
    """The Keras loss of a detector: its head's ``loss`` on ``(objects, raw)``.

    Args:
        head: the model's ``DetectionHead`` (or its serialized config). The
            model saves the head; the loss saves only its config.
    """

    def __init__(self, head, name="detection_loss", **kwargs):
        super().__init__(name=name, reduction="sum_over_batch_size", **kwargs)
        if isinstance(head, dict):
            head = keras.saving.deserialize_keras_object(head)
        self._head = OutOfSaving(head)  # no attribute or property may return the layer

    def call(self, y_true, y_pred):
        # One value per batch: the head normalises (by positives) itself.
        return self._head.value.loss(y_true, y_pred)

    def get_config(self):
        return {"name": self.name,
                "head": keras.saving.serialize_keras_object(self._head.value)}
