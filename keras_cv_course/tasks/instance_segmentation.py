"""Instance segmentation: the box, class and mask of every object in an image.

It extends the detection task. Targets are a dict: ``objects (M, 5)`` as in detection and
``masks (M, H, W)``, 1 inside each object (all 0 on padding rows). A model (Mask R-CNN)
returns its detections with a small mask each, ``detection_masks (D, m, m)``: the
probabilities of its class over its box. Serving pastes them into the image
(``detection.masks.paste_masks``): ``masks (D, H, W)`` in [0, 1], 0 on padding rows, beside
``boxes``, ``scores``, ``classes``, ``num_detections`` and the raw heads.

Metrics: the detection task's box metrics, and COCO mask AP, AP50 and AP75 from pycocotools'
``COCOeval(iouType="segm")`` on the masks thresholded at 0.5 and RLE-encoded
(``detection.masks.mask_coco_metrics``); the headline is mask AP. An artifact matches Keras
when its detections match (the detection rule) and every matched pair of masks, thresholded
at 0.5, overlaps by IoU >= 0.99.
"""

import keras
import numpy as np

from keras_cv_course.detection.masks import MASK_THRESHOLD
from keras_cv_course.specs import TensorSpec
from keras_cv_course.tasks.base import class_name, to_rgb
from keras_cv_course.tasks.detection import (
    BOX_COLOURS,
    SERVING_OUTPUTS,
    DetectionTask,
    _detections,
    _head,
    _pad_rows,
    draw_boxes,
)
from keras_cv_course.tasks.registry import register_task

MASK_MATCH_IOU = 0.99


class InstanceSegmentationTask(DetectionTask):
    name = "instance_segmentation"
    description = "box, class and mask of every object; COCO box and mask AP"
    target_specs = (DetectionTask.target_specs[0],
                    TensorSpec("masks", ("objects", "height", "width"), "float32",
                               "1 inside each object, 0 outside; padding objects all 0"))
    output_specs = (
        DetectionTask.output_specs[0],
        TensorSpec("boxes", ("detections", 4), "float32", "[ymin, xmin, ymax, xmax] in [0, 1]"),
        TensorSpec("scores", ("detections",), "float32", "class probability"),
        TensorSpec("classes", ("detections",), "int32", "class id; -1 on padding"),
        TensorSpec("num_detections", (), "int32", "real detections"),
        TensorSpec("detection_masks", ("detections", "mask_size", "mask_size"), "float32",
                   "each detection's mask over its box, probabilities of its class"),
    )
    annotations = ("boxes", "classes", "instance_masks")
    headline_metrics = ("mask_ap", "ap", "mask_ap50", "ap50")
    augmentation_policies = ("none",)
    serving_options = ()

    # -- data ---------------------------------------------------------------------------

    def pack_targets(self, values):
        """``[boxes, classes, masks]`` -> ``{"objects": (N, M, 5), "masks": (N, M, H, W)}``;
        ``[objects, masks]`` (target-spec order) are packed already."""
        if len(values) == 2:
            return {"objects": values[0], "masks": values[1]}
        boxes, classes, masks = values
        objects = super().pack_targets([boxes, classes])
        if isinstance(masks, np.ndarray):
            return {"objects": objects, "masks": masks.astype("float32")}
        import tensorflow as tf  # inside a tf.data map (TFDS loaders)

        return {"objects": objects, "masks": tf.cast(masks[:tf.shape(objects)[0]], tf.float32)}

    def objects_of(self, targets):
        return targets["objects"]

    def concatenate_targets(self, batches):
        objects = _pad_rows([batch["objects"] for batch in batches])
        rows = objects.shape[1]
        masks = [np.pad(batch["masks"], [(0, 0), (0, rows - batch["masks"].shape[1]),
                                         (0, 0), (0, 0)]) for batch in batches]
        return {"objects": objects, "masks": np.concatenate(masks)}

    def synthetic_batch(self, model, batch_size=4, seed=0):
        """The detection batch, each object's mask filling its box."""
        images, objects = super().synthetic_batch(model, batch_size, seed)
        height, width = (images["images"] if isinstance(images, dict) else images).shape[1:3]
        masks = np.zeros((*objects.shape[:2], height, width), "float32")
        for image, row in zip(*np.nonzero(objects[..., 4] >= 0)):
            top, left, bottom, right = _pixel_box(objects[image, row, :4], height, width)
            masks[image, row, top:bottom, left:right] = 1.0
        return images, {"objects": objects, "masks": masks}

    # -- evaluation ---------------------------------------------------------------------

    def score(self, outputs, targets):
        from keras_cv_course.detection.masks import mask_coco_metrics

        boxes = super().score(outputs, targets["objects"])
        found = [(masks > MASK_THRESHOLD, scores, classes) for masks, (_, scores, classes)
                 in zip(_valid_masks(outputs), _detections(outputs))]
        truth = [(masks[rows[:, 4] >= 0], rows[rows[:, 4] >= 0, 4].astype(int))
                 for masks, rows in zip(np.asarray(targets["masks"]),
                                        np.asarray(targets["objects"]))]
        classes = max([int(c.max(initial=-1)) for _, c in truth]
                      + [int(c.max(initial=-1)) for _, _, c in found]) + 1
        return {**boxes, **mask_coco_metrics(found, truth, max(classes, 1))}

    # -- export -------------------------------------------------------------------------

    def serving_outputs(self, model, outputs, **options):
        """The model's detections, with each mask pasted into the image (0 on padding)."""
        from keras_cv_course.detection.masks import paste_masks

        head = _head(model)
        height, width = head.image_size
        ymin, xmin, ymax, xmax = (outputs["boxes"][..., i] for i in range(4))
        pixels = keras.ops.stack([xmin * width, ymin * height, xmax * width, ymax * height], -1)
        masks = paste_masks(outputs["detection_masks"], pixels, head.image_size)
        real = keras.ops.arange(masks.shape[1])[None, :] < outputs["num_detections"][:, None]
        masks = masks * keras.ops.cast(real, masks.dtype)[:, :, None, None]
        return {**{key: outputs[key] for key in SERVING_OUTPUTS}, "masks": masks,
                head.name: outputs[head.name]}

    def compare_outputs(self, actual, expected, tolerance):
        """The detection rule, and IoU >= 0.99 between the masks of matched detections."""
        checks = super().compare_outputs(actual, expected, tolerance)
        failures = _mask_failures(actual, expected)
        checks["masks"] = {"error": float(failures), "passed": failures == 0,
                           "rule": f"masks of matched detections overlap by IoU >= "
                                   f"{MASK_MATCH_IOU} (thresholded at {MASK_THRESHOLD})"}
        return checks

    # -- pictures -----------------------------------------------------------------------

    def prediction_picture(self, image, outputs, class_names=()):
        """The image with each detection's mask tinted in its class colour, and its box."""
        count = int(np.asarray(outputs["num_detections"]).reshape(-1)[0])
        classes = np.asarray(outputs["classes"])[:count].astype(int)
        picture = to_rgb(image)
        for mask, label in zip(np.asarray(outputs["masks"])[:count], classes):
            inside = mask > MASK_THRESHOLD
            picture[inside] = 0.5 * picture[inside] + 0.5 * BOX_COLOURS[label % len(BOX_COLOURS)]
        boxes = np.asarray(outputs["boxes"])[:count]
        scores = np.asarray(outputs["scores"])[:count]
        lines = [f"{class_name(class_names, c)}: {s:.2f}, mask of "
                 f"{int((m > MASK_THRESHOLD).sum())} px"
                 for c, s, m in zip(classes, scores, np.asarray(outputs["masks"])[:count])]
        return draw_boxes(picture, boxes, classes=classes), lines or ["no detections"]


def _pixel_box(box, height, width):
    """A normalised ``yxyx`` box as whole-pixel ``(top, left, bottom, right)``."""
    top, left, bottom, right = np.asarray(box, "float64") * [height, width, height, width]
    return int(top), int(left), int(np.ceil(bottom)), int(np.ceil(right))


def _valid_masks(outputs):
    counts = np.asarray(outputs["num_detections"]).reshape(-1).astype(int)
    return [np.asarray(outputs["masks"])[i, :n] for i, n in enumerate(counts)]


def _mask_failures(actual, expected):
    """Detections of ``expected`` whose best same-class partner in ``actual`` has a mask
    overlapping theirs by less than ``MASK_MATCH_IOU`` (or no partner)."""
    from keras_cv_course.detection.metrics import box_iou

    failures = 0
    pairs = zip(_detections(actual), _valid_masks(actual), _detections(expected),
                _valid_masks(expected))
    for mine, my_masks, theirs, their_masks in pairs:
        if not len(theirs[0]):
            continue
        overlaps = box_iou(theirs[0], mine[0]) if len(mine[0]) else np.zeros((len(theirs[0]), 0))
        for index, their_mask in enumerate(their_masks):
            same = np.flatnonzero(mine[2] == theirs[2][index])
            if not len(same):
                failures += 1
                continue
            partner = same[np.argmax(overlaps[index, same])]
            a, b = my_masks[partner] > MASK_THRESHOLD, their_mask > MASK_THRESHOLD
            union = np.logical_or(a, b).sum()
            failures += int(union and np.logical_and(a, b).sum() / union < MASK_MATCH_IOU)
    return failures


register_task(InstanceSegmentationTask())
