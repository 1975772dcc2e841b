"""Object detection: boxes and classes of every object in an image.

Targets are one tensor per image, ``objects (M, 5)``: ``[ymin, xmin, ymax,
xmax, class]`` rows with the box normalised to [0, 1] (TFDS' convention),
padded with -1 rows to the batch's largest count. A detector's only output
is its packed raw heads (``raw_detections``); its last layer, a
``detection.head.DetectionHead``, decodes them and computes the loss, so the
task trains every detector the same way (``detection/head.py``).

Serving runs the whole pipeline in the graph: decode, per-class NMS
(``detection.nms.NonMaxSuppression``), and padded outputs ``boxes (D, 4)``
(normalised ``yxyx``), ``scores (D,)``, ``classes (D,)`` and
``num_detections ()``. The raw heads (``raw_detections``) are served beside
them, in the same signature, for deployers who decode on their own (an
ONNX file holds one graph, so one signature carries both). The export uses
a static batch of 1, so NMS lowers to the built-in TFLite NMS and ONNX
``NonMaxSuppression`` (DESIGN §6.5).

Metrics are COCO's, through pycocotools (``detection/metrics.py``), plus
VOC mAP@0.5; the headline is COCO AP. An artifact matches Keras when
every detection has a partner of the same class with IoU >= 0.99 and score
within 1e-3, and ``num_detections`` are equal.
"""

import keras
import numpy as np

from keras_cv_course.specs import TensorSpec
from keras_cv_course.tasks.base import (
    Augmentation,
    QuantizedRule,
    Task,
    class_name,
    image_panel,
    to_rgb,
)
from keras_cv_course.tasks.registry import register_task

SERVING_OUTPUTS = ("boxes", "scores", "classes", "num_detections")
MATCH_IOU = 0.99
MATCH_SCORE = 1e-3
MATCH_CORNERS = 1e-3
"""Boxes whose corners all agree within this (normalised) also match: IoU is
ill-conditioned for boxes a fraction of a pixel wide, and 0 for empty ones."""


class DetectionTask(Task):
    name = "detection"
    description = "boxes and classes of every object; COCO AP"
    target_specs = (TensorSpec("objects", ("objects", 5), "float32",
                               "[ymin, xmin, ymax, xmax, class] per object, box in [0, 1], "
                               "padded with -1 rows"),)
    output_specs = (TensorSpec("raw_detections", ("anchors", "fields"), "float32",
                               "the detector's packed raw heads (DetectionHead)"),)
    annotations = ("boxes", "classes")
    class_annotation = "classes"
    headline_metrics = ("ap", "ap50", "ap75", "voc_map50")
    augmentation_policies = ("none", "flip", "scale_jitter", "flip_scale_jitter")
    serving_batch_size = 1
    serving_options = ("max_detections", "score_threshold", "iou_threshold")
    nms_defaults = dict(iou_threshold=0.5, score_threshold=0.05, max_detections=100)

    # -- data ---------------------------------------------------------------------------

    def pack_targets(self, values):
        """``[boxes (N, M, 4), classes (N, M)]`` -> ``objects (N, M, 5)``; already packed
        arrays pass through."""
        if len(values) == 1:
            return values[0]
        boxes, classes = values
        if isinstance(boxes, np.ndarray):
            return np.concatenate([boxes.astype("float32"),
                                   np.asarray(classes, "float32")[..., None]], axis=-1)
        import tensorflow as tf  # inside a tf.data map (TFDS loaders)

        # Real records have one class per box; tfds.testing.mock_data draws the two
        # lengths independently, so keep the shorter.
        count = tf.minimum(tf.shape(boxes)[0], tf.shape(classes)[0])
        boxes, classes = boxes[:count], classes[:count]
        return tf.concat([tf.cast(boxes, tf.float32),
                          tf.cast(classes, tf.float32)[..., None]], axis=-1)

    def build_arguments(self, bundle):
        return {**super().build_arguments(bundle), "classes": bundle.num_classes}

    def synthetic_batch(self, model, batch_size=4, seed=0):
        """Random images, and up to three random boxes per image (one image has none)."""
        rng = np.random.default_rng(seed)
        images, _ = super().synthetic_batch(model, batch_size, seed)
        classes = _head(model).num_classes
        objects = -np.ones((batch_size, 3, 5), "float32")
        for index in range(1, batch_size):
            for row in range(rng.integers(1, 4)):
                low = rng.uniform(0.0, 0.6, 2)
                objects[index, row, :4] = [*low, *(low + rng.uniform(0.15, 0.4, 2))]
                objects[index, row, 4] = rng.integers(classes)
        return images, objects

    # -- training -----------------------------------------------------------------------

    def loss(self, augmentation=None, model=None):
        from keras_cv_course.detection.head import DetectionLoss

        return DetectionLoss(_head(model))

    def make_augmentation(self, policy, bundle, seed):
        from keras_cv_course.detection import augment

        generator = keras.random.SeedGenerator(seed)
        steps = {"flip": [augment.flip_with_boxes], "scale_jitter": [augment.scale_jitter_crop]}
        steps["flip_scale_jitter"] = steps["scale_jitter"] + steps["flip"]

        def apply(images, objects, seed=generator):
            for step in steps[policy]:
                images, objects = step(images, objects, seed=seed)
            return images, objects

        return Augmentation(policy, apply, seeded=True)

    # -- evaluation -----------------------------------------------------------------------

    def evaluate(self, model, dataset):
        """The loss (Keras) and every detection metric of the served detections."""
        from keras_cv_course.export.api import serving_function

        head, serve = _head(model), serving_function(model, self)
        parts, truth, losses = [], [], []
        for images, targets in dataset:
            outputs = serve({"images": images})
            parts.append({key: keras.ops.convert_to_numpy(value) for key, value in outputs.items()})
            truth.append(keras.tree.map_structure(np.asarray, targets))
            # The loss of the served raw heads: one pass over the data, as model.evaluate
            # would average it (per batch, weighted by the batch's size).
            objects = self.objects_of(targets)
            losses.append((float(head.loss(objects, outputs[head.name])), len(objects)))
        outputs = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
        loss = sum(value * size for value, size in losses) / sum(size for _, size in losses)
        return {"loss": loss, **self.score(outputs, self.concatenate_targets(truth))}

    def objects_of(self, targets):
        """The ``objects (B, M, 5)`` of a batch's targets (a subclass may add masks)."""
        return targets

    def concatenate_targets(self, batches):
        """One array of the batches' targets, each padded to the largest object count."""
        return _pad_rows(batches)

    def score(self, outputs, targets):
        from keras_cv_course.detection import metrics

        detections = metrics.valid_detections(*(outputs[key] for key in SERVING_OUTPUTS))
        objects = metrics.valid_objects(targets)
        classes = max([int(np.max(c, initial=-1)) for _, c in objects] +
                      [int(np.max(c, initial=-1)) for _, _, c in detections]) + 1
        return metrics.detection_scores(detections, objects, max(classes, 1))

    def quantized_rule(self):
        """COCO AP may drop by two points at most; 90% of Keras' detections are found."""
        return QuantizedRule("ap", max_drop=0.02, min_agreement=0.9)

    def agreement(self, actual, expected):
        """The share of Keras' detections that the artifact also makes (IoU >= 0.5, same
        class), over all images."""
        found, total = 0, 0
        for mine, theirs in zip(_detections(actual), _detections(expected)):
            total += len(theirs[0])
            found += int(np.sum(_matches(mine, theirs, min_iou=0.5, max_score_gap=1.0)))
        return found / total if total else 1.0

    # -- export -------------------------------------------------------------------------

    def serving_outputs(self, model, outputs, **options):
        """Decode, per-class NMS and boxes normalised as the targets are.

        ``options``: ``max_detections`` (100), ``score_threshold`` (0.05) and
        ``iou_threshold`` (0.5) of the NMS.
        """
        from keras_cv_course.detection.nms import NonMaxSuppression

        head = _head(model)
        boxes, scores = head.decode(outputs[head.name])
        found = NonMaxSuppression(**{**self.nms_defaults, **options})(boxes, scores)
        height, width = head.image_size
        scale = keras.ops.convert_to_tensor([height, width, height, width], "float32")
        x1, y1, x2, y2 = (found["boxes"][..., i] for i in range(4))
        found["boxes"] = keras.ops.stack([y1, x1, y2, x2], axis=-1) / scale
        return {**{key: found[key] for key in SERVING_OUTPUTS}, head.name: outputs[head.name]}

    def compare_outputs(self, actual, expected, tolerance):
        """Detections match one to one: same class, IoU >= 0.99 (or corners within
        1e-3), score within 1e-3.

        The raw heads, served beside the detections, are compared as numbers
        (``Task.compare``)."""
        counts_equal = np.array_equal(np.asarray(actual["num_detections"]).reshape(-1),
                                      np.asarray(expected["num_detections"]).reshape(-1))
        unmatched = sum(int(np.sum(~_matches(mine, theirs, MATCH_IOU, MATCH_SCORE)))
                        for mine, theirs in zip(_detections(actual), _detections(expected)))
        rule = f"detections matched (IoU >= {MATCH_IOU}, score within {MATCH_SCORE})"
        check = {"error": float(unmatched), "passed": counts_equal and unmatched == 0,
                 "rule": rule}
        return {key: dict(check) if key in SERVING_OUTPUTS else
                self.compare(key, actual[key], expected[key], tolerance) for key in expected}

    # -- pictures -----------------------------------------------------------------------

    def summaries(self, model, inputs, targets=None):
        """Validation images with predicted boxes (class colours) and the true boxes (white)."""
        from keras_cv_course.export.api import serving_function

        images = image_panel(inputs)
        outputs = serving_function(model, self)({"images": images})
        outputs = {key: keras.ops.convert_to_numpy(value) for key, value in outputs.items()}
        panels = []
        for index, image in enumerate(images):
            picture = to_rgb(image)
            if targets is not None:
                truth = np.asarray(self.objects_of(targets)[index])
                truth = truth[truth[:, 4] >= 0]
                picture = draw_boxes(picture, truth[:, :4], colours=[(1.0, 1.0, 1.0)])
            count = int(outputs["num_detections"][index])
            picture = draw_boxes(picture, outputs["boxes"][index, :count],
                                 classes=outputs["classes"][index, :count])
            panels.append(picture)
        return {"detections": np.stack(panels)}

    def prediction_picture(self, image, outputs, class_names=()):
        """The image with each detection's box; one line per detection: class and score."""
        count = int(np.asarray(outputs["num_detections"]).reshape(-1)[0])
        boxes = np.asarray(outputs["boxes"])[:count]
        classes = np.asarray(outputs["classes"])[:count].astype(int)
        scores = np.asarray(outputs["scores"])[:count]
        lines = [f"{class_name(class_names, c)}: {s:.2f} at [{', '.join(f'{v:.2f}' for v in b)}]"
                 for b, c, s in zip(boxes, classes, scores)] or ["no detections"]
        return draw_boxes(to_rgb(image), boxes, classes=classes), lines


def _head(model):
    from keras_cv_course.detection.head import detection_head

    return detection_head(model)


def _pad_rows(parts):
    """Concatenates ``(n, M_i, 5)`` target batches, padding each to the largest M."""
    rows = max(part.shape[1] for part in parts)
    padded = [np.pad(part, [(0, 0), (0, rows - part.shape[1]), (0, 0)], constant_values=-1)
              for part in parts]
    return np.concatenate(padded)


def _detections(outputs):
    """Per image ``(boxes, scores, classes)`` of the valid detections."""
    from keras_cv_course.detection.metrics import valid_detections

    return valid_detections(*(outputs[key] for key in SERVING_OUTPUTS))


def _matches(mine, theirs, min_iou, max_score_gap):
    """For each of ``theirs``' detections: does ``mine`` have a partner (greedy, one to one)?"""
    from keras_cv_course.detection.metrics import box_iou

    matched = np.zeros(len(theirs[0]), bool)
    if not len(mine[0]) or not len(theirs[0]):
        return matched
    overlaps = box_iou(theirs[0], mine[0])
    corners = np.abs(theirs[0][:, None, :] - mine[0][None, :, :]).max(-1)
    overlaps = np.where(corners <= MATCH_CORNERS, 1.0, overlaps)
    used = np.zeros(len(mine[0]), bool)
    for index in np.argsort(-theirs[1]):
        partners = (overlaps[index] >= min_iou) & (mine[2] == theirs[2][index]) & ~used & (
            np.abs(mine[1] - theirs[1][index]) <= max_score_gap)
        if partners.any():
            best = int(np.argmax(np.where(partners, overlaps[index], -1)))
            used[best] = matched[index] = True
    return matched


# Colours of classes 0, 1, 2, ... (repeating after six).
BOX_COLOURS = np.array([[1.0, 0.2, 0.2], [0.2, 0.9, 0.2], [0.3, 0.5, 1.0], [1.0, 0.8, 0.1],
                        [0.9, 0.3, 0.9], [0.2, 0.9, 0.9]], dtype="float32")


def draw_boxes(image, boxes, classes=None, colours=None, thickness=1):
    """Draws box outlines on an ``(H, W, 3)`` image; boxes normalised ``yxyx``.

    Each box takes ``colours[i]`` if given, else the colour of its class.
    """
    picture = np.array(image, dtype="float32", copy=True)
    height, width = picture.shape[:2]
    for index, box in enumerate(np.asarray(boxes, "float32").reshape(-1, 4)):
        if colours is not None:
            colour = colours[index % len(colours)]
        else:
            label = 0 if classes is None else int(classes[index])
            colour = BOX_COLOURS[label % len(BOX_COLOURS)]
        top, left = int(np.clip(box[0] * height, 0, height - 1)), int(
            np.clip(box[1] * width, 0, width - 1))
        bottom, right = int(np.clip(box[2] * height, 0, height - 1)), int(
            np.clip(box[3] * width, 0, width - 1))
        picture[top:top + thickness, left:right + 1] = colour
        picture[bottom - thickness + 1:bottom + 1, left:right + 1] = colour
        picture[top:bottom + 1, left:left + thickness] = colour
        picture[top:bottom + 1, right - thickness + 1:right + 1] = colour
    return picture


register_task(DetectionTask())
