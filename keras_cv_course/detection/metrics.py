"""Detection metrics: COCO AP through pycocotools, and VOC mAP at IoU 0.5.

* ``coco_metrics`` hands detections and ground truth to pycocotools'
  ``COCOeval``, the implementation every detector paper reports (Lin et al.,
  "Microsoft COCO: Common Objects in Context", ECCV 2014, arXiv:1405.0312):
  AP averaged over IoU 0.50:0.05:0.95 with 101-point interpolated precision,
  AP50, AP75 and AP by object size, at most 100 detections per image.
* ``voc_map50`` is PASCAL VOC's mAP at IoU 0.5 with *all-point*
  interpolation (the VOC 2010+ rule; VOC 2007 used 11 points): per class,
  the area under the precision-recall curve made monotone, averaged over
  the classes that have ground truth. Each ground truth matches at most one
  detection, the highest scoring one; ``difficult`` boxes are not modelled.

Boxes are the detection task's: ``[ymin, xmin, ymax, xmax]`` normalised to
[0, 1]. COCO's size bounds (32² and 96² pixels) are defined on images of
about 640 pixels, so a box's area here is measured on an image of side
``area_side`` (640 by default): "small" is under 5% of the side squared.
Pass ``area_side`` = your images' side to measure areas in your pixels.
"""

import contextlib
import io

import keras
import numpy as np

COCO_AREA_SIDE = 640
"""The image side at which COCO's pixel area bounds (32², 96²) are applied."""
COCO_NAMES = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large")
"""``COCOeval.stats[0:6]``, in order."""


def valid_detections(boxes, scores, classes, num_detections):
    """Per image, the first ``num_detections`` rows: ``[(boxes, scores, classes), ...]``."""
    boxes, scores, classes = np.asarray(boxes), np.asarray(scores), np.asarray(classes)
    counts = np.asarray(num_detections).reshape(-1).astype(int)
    return [(boxes[i, :n], scores[i, :n], classes[i, :n].astype(int))
            for i, n in enumerate(counts)]


def valid_objects(objects):
    """Per image, the ground truth rows that are not padding: ``[(boxes, classes), ...]``."""
    objects = np.asarray(objects, dtype="float64")
    result = []
    for rows in objects:
        rows = rows[rows[:, 4] >= 0]
        result.append((rows[:, :4], rows[:, 4].astype(int)))
    return result


def _xywh(boxes, side):
    """Normalised ``yxyx`` -> COCO ``[x, y, width, height]`` on an image of ``side``."""
    boxes = np.asarray(boxes, dtype="float64") * side
    return np.stack([boxes[:, 1], boxes[:, 0], boxes[:, 3] - boxes[:, 1],
                     boxes[:, 2] - boxes[:, 0]], axis=-1)


def coco_metrics(detections, objects, num_classes, area_side=COCO_AREA_SIDE):
    """COCO AP, AP50, AP75 and AP by size, computed by pycocotools' ``COCOeval``.

    Args:
        detections: per image ``(boxes (n, 4), scores (n,), classes (n,))``
            (``valid_detections``).
        objects: per image ``(boxes (m, 4), classes (m,))`` (``valid_objects``).
        num_classes: classes are ``0 .. num_classes - 1``.
        area_side: the image side at which areas are measured (module docstring).

    Returns:
        ``{"ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large"}``;
        COCOeval's -1 (no ground truth of that size) is kept as -1. No
        detections at all give AP 0.
    """
    truth, found = _coco_dataset(objects, num_classes, area_side), []
    for image_id, (boxes, scores, classes) in enumerate(detections):
        for box, score, label in zip(_xywh(boxes, area_side), scores, classes):
            found.append({"image_id": image_id, "category_id": int(label) + 1,
                          "bbox": [float(v) for v in box], "score": float(score)})
    if not found or not truth["annotations"]:
        return {name: 0.0 if truth["annotations"] else -1.0 for name in COCO_NAMES}
    stats = coco_eval_stats(truth, found, "bbox")
    return {name: float(value) for name, value in zip(COCO_NAMES, stats[:6])}


def coco_eval_stats(truth, found, iou_type):
    """``COCOeval(...).stats`` of the results ``found`` against the COCO dataset ``truth``
    (a dict of images, annotations and categories); ``iou_type`` ``"bbox"`` or ``"segm"``.
    pycocotools' printed summary is swallowed."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        ground = COCO()
        ground.dataset = truth
        ground.createIndex()
        evaluation = COCOeval(ground, ground.loadRes(found), iou_type)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats


def _coco_dataset(objects, num_classes, area_side):
    images, annotations = [], []
    for image_id, (boxes, classes) in enumerate(objects):
        images.append({"id": image_id, "width": area_side, "height": area_side})
        for box, label in zip(_xywh(boxes, area_side), classes):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": int(label) + 1, "iscrowd": 0,
                                "bbox": [float(v) for v in box],
                                "area": float(box[2] * box[3])})
    categories = [{"id": index + 1, "name": str(index)} for index in range(num_classes)]
    return {"images": images, "annotations": annotations, "categories": categories}


def box_iou(boxes1, boxes2):
    """Pairwise IoU ``(n, m)`` of ``(n, 4)`` and ``(m, 4)`` boxes, as NumPy.

    ``detection.pairwise_iou`` on ``yxyx`` boxes: IoU does not depend on
    which axis comes first.
    """
    from keras_cv_course.detection.iou import pairwise_iou

    return keras.ops.convert_to_numpy(pairwise_iou(np.asarray(boxes1, "float32"),
                                                   np.asarray(boxes2, "float32")))


def voc_map50(detections, objects, num_classes, iou_threshold=0.5):
    """PASCAL VOC mean AP at IoU 0.5, all-point interpolation (see the module docstring)."""
    aps = [ap for ap in (_class_ap(detections, objects, c, iou_threshold)
                         for c in range(num_classes)) if ap is not None]
    return float(np.mean(aps)) if aps else 0.0


def _class_ap(detections, objects, label, iou_threshold):
    """AP of one class, or ``None`` when the class has no ground truth."""
    truth = [boxes[classes == label] for boxes, classes in objects]
    total = sum(len(boxes) for boxes in truth)
    if total == 0:
        return None
    found = [(score, image, box) for image, (boxes, scores, classes) in enumerate(detections)
             for box, score in zip(boxes[classes == label], scores[classes == label])]
    found.sort(key=lambda item: -item[0])
    taken = [np.zeros(len(boxes), bool) for boxes in truth]
    hits = np.zeros(len(found))
    for rank, (_, image, box) in enumerate(found):
        if len(truth[image]):
            overlaps = box_iou(box[None], truth[image])[0]
            best = int(np.argmax(overlaps))
            if overlaps[best] >= iou_threshold and not taken[image][best]:
                taken[image][best] = True
                hits[rank] = 1
    return _area_under_pr(np.cumsum(hits) / total,
                          np.cumsum(hits) / np.arange(1, len(found) + 1))


def _area_under_pr(recall, precision):
    """All-point interpolated AP: precision made non-increasing, summed over recall steps."""
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[0.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.nonzero(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def detection_scores(detections, objects, num_classes, area_side=COCO_AREA_SIDE):
    """Every detection metric: COCO's six and ``voc_map50``."""
    return {**coco_metrics(detections, objects, num_classes, area_side),
            "voc_map50": voc_map50(detections, objects, num_classes)}
