"""Detection metrics (``detection/metrics.py``) on hand-built cases with known answers.

COCO numbers come from pycocotools' ``COCOeval``: these cases check that
boxes, classes, padding and scores reach it correctly, by values computed by
hand with COCO's 101-point rule (AP = mean over recall 0, 0.01, ..., 1 of
the interpolated precision). VOC mAP@0.5 uses all-point interpolation.
"""

import numpy as np
import pytest

from keras_cv_course.detection import metrics
from keras_cv_course.tasks import get_task

TRUTH = np.array([[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.9, 0.8]], "float32")


def _objects(boxes_per_image, classes_per_image, rows=3):
    """Task targets ``(N, rows, 5)`` padded with -1."""
    objects = -np.ones((len(boxes_per_image), rows, 5), "float32")
    for index, (boxes, classes) in enumerate(zip(boxes_per_image, classes_per_image)):
        objects[index, :len(boxes), :4] = boxes
        objects[index, :len(boxes), 4] = classes
    return objects


def _outputs(boxes_per_image, scores_per_image, classes_per_image, rows=5):
    """Serving outputs padded like the NMS layer's."""
    count = len(boxes_per_image)
    outputs = {"boxes": np.zeros((count, rows, 4), "float32"),
               "scores": np.zeros((count, rows), "float32"),
               "classes": -np.ones((count, rows), "int32"),
               "num_detections": np.zeros((count,), "int32")}
    for i, (boxes, scores, classes) in enumerate(zip(boxes_per_image, scores_per_image,
                                                     classes_per_image)):
        n = len(boxes)
        outputs["boxes"][i, :n], outputs["scores"][i, :n] = boxes, scores
        outputs["classes"][i, :n], outputs["num_detections"][i] = classes, n
    return outputs


def _score(outputs, objects):
    return get_task("detection").score(outputs, objects)


def test_perfect_predictions_score_one():
    objects = _objects([TRUTH, TRUTH[:1]], [[0, 1], [2]])
    outputs = _outputs([TRUTH, TRUTH[:1]], [[0.9, 0.8], [0.7]], [[0, 1], [2]])
    scores = _score(outputs, objects)
    for name in ("ap", "ap50", "ap75", "voc_map50"):
        assert scores[name] == pytest.approx(1.0), (name, scores)
    # On a 640-pixel side the boxes are 128 x 128 and 256 x 192 pixels, both above 96²:
    # large. No box is small, which COCOeval reports as -1.
    assert scores["ap_small"] == -1.0 and scores["ap_large"] == pytest.approx(1.0)


def test_shifted_box_counts_only_at_low_iou_thresholds():
    # The prediction is shifted right by a quarter of the box's width: IoU = 0.75 / 1.25 = 0.6,
    # so thresholds 0.50, 0.55 and 0.60 match (3 of COCO's 10) and 0.75 does not.
    truth = np.array([[0.0, 0.0, 0.4, 0.4]], "float32")
    shifted = truth + np.array([0.0, 0.1, 0.0, 0.1], "float32")
    iou = metrics.box_iou(shifted, truth)[0, 0]
    assert iou == pytest.approx(0.6, abs=1e-6)
    shifted[0, 3] -= 1e-4  # a hair inside, so that 0.60 matches despite rounding
    scores = _score(_outputs([shifted], [[0.9]], [[0]]), _objects([truth], [[0]]))
    assert scores["ap50"] == pytest.approx(1.0) and scores["ap75"] == pytest.approx(0.0)
    assert scores["ap"] == pytest.approx(0.3)


def test_a_false_positive_ranked_between_two_hits():
    # Ranking: hit (P 1, R 1/2), false positive (P 1/2), hit (P 2/3, R 1).
    # COCO: 51 recall points at precision 1, 50 at 2/3; VOC: 1/2 * 1 + 1/2 * 2/3.
    truth = _objects([TRUTH[:1], TRUTH[1:]], [[0], [0]])
    far = np.array([[0.0, 0.9, 0.05, 0.95]], "float32")
    outputs = _outputs([TRUTH[:1], np.concatenate([far, TRUTH[1:]])], [[0.9], [0.8, 0.7]],
                       [[0], [0, 0]])
    scores = _score(outputs, truth)
    assert scores["ap50"] == pytest.approx((51 + 50 * 2 / 3) / 101, abs=1e-6)
    assert scores["voc_map50"] == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_duplicates_ranked_last_cost_nothing_and_missed_objects_halve_recall():
    truth = _objects([TRUTH, TRUTH], [[0, 0], [0, 0]])
    duplicated = _outputs([TRUTH, np.concatenate([TRUTH, TRUTH])], [[0.9, 0.9],
                          [0.9, 0.9, 0.1, 0.1]], [[0, 0], [0, 0, 0, 0]])
    assert _score(duplicated, truth)["ap50"] == pytest.approx(1.0)
    # Two of four objects found, perfectly: precision 1 up to recall 1/2, then nothing.
    half = _outputs([TRUTH, TRUTH[:0]], [[0.9, 0.8], []], [[0, 0], []])
    scores = _score(half, truth)
    assert scores["ap50"] == pytest.approx(51 / 101, abs=1e-6)
    assert scores["voc_map50"] == pytest.approx(0.5)


def test_wrong_class_is_a_miss_and_classes_average():
    # Class 0 is found, class 1 is predicted as class 2: mAP over classes 0 and 1 is 1/2.
    truth = _objects([TRUTH], [[0, 1]])
    outputs = _outputs([TRUTH], [[0.9, 0.9]], [[0, 2]])
    scores = _score(outputs, truth)
    assert scores["voc_map50"] == pytest.approx(0.5)
    assert scores["ap50"] == pytest.approx(0.5)


def test_no_detections_score_zero():
    truth = _objects([TRUTH], [[0, 1]])
    scores = _score(_outputs([TRUTH[:0]], [[]], [[]]), truth)
    assert scores["ap"] == 0.0 and scores["voc_map50"] == 0.0
