"""YOLO v1 and the YOLOv8-style detector: counts, decoding, losses, assignment, saving."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cv_course import applications
from keras_cv_course import detection as det
from keras_cv_course.applications.detection import yolo_v1, yolo_v8
from keras_cv_course.detection.head import DetectionLoss, detection_head

TINY = ("yolo_v1", "yolov8n")


def numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


def objects_batch(batch=4, rows=2, seed=0, classes=3):
    """``(batch, rows, 5)`` targets: image 0 has no object, the others one or two boxes."""
    rng = np.random.default_rng(seed)
    objects = -np.ones((batch, rows, 5), "float32")
    for index in range(1, batch):
        for row in range(1 + index % rows):
            low = rng.uniform(0.05, 0.5, 2)
            objects[index, row, :4] = [*low, *(low + rng.uniform(0.2, 0.45, 2))]
            objects[index, row, 4] = rng.integers(classes)
    return objects


@pytest.fixture(scope="module", params=TINY)
def tiny(request):
    keras.utils.set_random_seed(0)
    return applications.build_tiny(request.param)


# Full sizes ----------------------------------------------------------------------------------

# The registered (fused) counts of every full model are checked, from one shared build, by
# tests/test_parameter_counts.py; here, what only these models have.

def test_yolov8_training_form_counts_batch_norm_scale_and_shift(full_size_stats):
    # The fused (deployment) form is the registered count; the training form keeps each
    # batch norm's scale and shift, one parameter more per channel, as ultralytics' summary.
    assert full_size_stats("yolov8n")["params"] == 3_151_904
    model = applications.build_full("yolov8n", fused=False)
    assert applications.parameter_count(model) == 3_157_200
    assert model.output.shape == (None, 80 * 80 + 40 * 40 + 20 * 20, 64 + 80)
    assert len(detection_head(model).weights) == 1  # the DFL's 16 fixed bins, counted


# Tiny configs --------------------------------------------------------------------------------

def test_tiny_output_decode_and_loss(tiny):
    head = detection_head(tiny)
    assert head.name == "raw_detections" and tiny.output_names == ["raw_detections"]
    images = np.random.default_rng(1).random((4, 32, 32, 3)).astype("float32")
    raw = tiny(images)
    anchors = 16 if tiny.name == "yolo_v1" else 8 * 8 + 4 * 4 + 2 * 2
    assert raw.shape[:2] == (4, anchors)
    boxes, scores = (numpy(t) for t in head.decode(raw))
    boxes_per_anchor = 2 if tiny.name == "yolo_v1" else 1
    assert boxes.shape == (4, anchors * boxes_per_anchor, 4)
    assert scores.shape == (4, anchors * boxes_per_anchor, 3)
    assert np.isfinite(boxes).all() and boxes.min() >= 0 and boxes.max() <= 32
    assert scores.min() >= 0 and scores.max() <= 1
    objects = objects_batch()
    empty = float(head.loss(-np.ones((4, 2, 5), "float32"), raw))
    assert np.isfinite(empty) and empty > 0
    assert np.isfinite(float(head.loss(objects, raw)))


def test_tiny_loss_decreases_with_fit(tiny):
    keras.utils.set_random_seed(2)
    model = keras.models.clone_model(tiny)
    images = np.random.default_rng(3).random((8, 32, 32, 3)).astype("float32")
    # Padded to an unknown number of objects per batch, as the task's pipeline does (YOLOv8's
    # assigner read that number from the static shape; detection/matching.py now reads it
    # from the dynamic one).
    data = tf.data.Dataset.from_tensor_slices((images, objects_batch(8, seed=4))).padded_batch(
        8, padded_shapes=([32, 32, 3], [None, 5]), padding_values=-1.0)
    # Plain SGD, its variables built before fit: tracing Adam's update of YOLOv8's 366
    # variables (twice, when fit builds them) would take most of this test's time.
    rate = 0.01 if tiny.name == "yolo_v1" else 0.05  # v1's linear outputs diverge at 0.05
    model.compile(keras.optimizers.SGD(rate), loss=DetectionLoss(detection_head(model)),
                  jit_compile=False)
    model.optimizer.build(model.trainable_variables)
    history = model.fit(data, epochs=20, shuffle=False, verbose=0).history["loss"]
    assert np.isfinite(history).all() and history[-1] < 0.7 * history[0]


def test_keras_file_round_trip(tiny, tmp_path):
    path = str(tmp_path / f"{tiny.name}.keras")
    tiny.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    images = np.random.default_rng(5).random((2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(numpy(loaded(images)), numpy(tiny(images)), atol=1e-6)
    head, loaded_head = detection_head(tiny), detection_head(loaded)
    assert type(loaded_head) is type(head) and loaded_head.get_config() == head.get_config()
    objects = objects_batch(2)
    expected = float(head.loss(objects, tiny(images)))
    np.testing.assert_allclose(float(loaded_head.loss(objects, loaded(images))), expected,
                               rtol=1e-5)
    # The task's loss, rebuilt from its config as a compiled model's file is loaded.
    loss = DetectionLoss.from_config(DetectionLoss(head).get_config())
    np.testing.assert_allclose(float(loss(objects, tiny(images))), expected, rtol=1e-5)


# YOLO v1 -------------------------------------------------------------------------------------

def v1_head():
    # S = 2 on a 64 x 64 image (32-pixel cells), B = 2 boxes per cell, C = 2 classes.
    return yolo_v1.YoloV1Head((64, 64), 2, grid_size=2, boxes_per_cell=2)


def test_yolo_v1_loss_by_hand():
    # One object, box [0, 0.5] x [0, 0.5] of the image, class 1: its centre (0.25, 0.25) is in
    # cell 0 at offset (0.5, 0.5), sqrt(w) = sqrt(h) = sqrt(0.5).
    objects = np.array([[[0.0, 0.0, 0.5, 0.5, 1.0]]], "float32")
    raw = np.zeros((1, 4, 12), "float32")
    raw[0, :, 4] = raw[0, :, 9] = 0.2  # every confidence 0.2 ...
    raw[0, :, 10:] = 0.4  # ... and class probabilities that only count in cell 0
    r = math.sqrt(0.5)
    raw[0, 0, :5] = [0.6, 0.5, r, r, 0.8]  # box 0: x off by 0.1 cell; IoU 0.225 / 0.275 = 9/11
    raw[0, 0, 5:10] = [0.5, 0.5, 0.5, 0.5, 0.3]  # box 1: a quarter of the area, IoU 1/4
    raw[0, 0, 10:] = [0.2, 0.7]
    expected = (5 * 0.1**2  # coordinates of the responsible box 0 (highest IoU)
                + (0.8 - 9 / 11) ** 2  # its confidence against its IoU
                + 0.5 * (0.3**2 + 6 * 0.2**2)  # the seven other predictors' confidences
                + (0.2**2 + 0.3**2))  # cell 0's class probabilities
    np.testing.assert_allclose(float(v1_head().loss(objects, raw)), expected, rtol=1e-5)


def test_yolo_v1_decode_is_consistent_with_the_loss():
    # A perfect prediction has zero loss, and decodes to the true box with score 1.
    head = v1_head()
    objects = np.array([[[0.5, 0.1, 0.9, 0.4, 0.0], [-1, -1, -1, -1, -1]]], "float32")
    raw = np.zeros((1, 4, 12), "float32")
    # Centre (x, y) = (0.25, 0.7): cell column 0, row 1 (cell 2), offsets (0.5, 0.4).
    raw[0, 2, :5] = [0.5, 0.4, math.sqrt(0.3), math.sqrt(0.4), 1.0]
    raw[0, 2, 10:] = [1.0, 0.0]
    assert float(head.loss(objects, raw)) < 1e-10
    boxes, scores = (numpy(t) for t in head.decode(raw))
    best = int(np.argmax(scores[0, :, 0]))
    assert best == 2 * 2  # cell 2, box 0
    np.testing.assert_allclose(boxes[0, best], [0.1 * 64, 0.5 * 64, 0.4 * 64, 0.9 * 64],
                               atol=1e-4)
    np.testing.assert_allclose(scores[0, best], [1.0, 0.0])


def test_yolo_v1_responsible_predictor_without_overlap_is_the_closest():
    # Neither predictor overlaps the box: Darknet's rule picks the smaller squared error.
    head = v1_head()
    objects = np.array([[[0.0, 0.0, 0.2, 0.2, 0.0]]], "float32")
    raw = np.zeros((1, 4, 12), "float32")
    raw[0, 0, :5] = [0.9, 0.9, 0.1, 0.1, 0.0]  # far corner of the cell
    raw[0, 0, 5:10] = [0.5, 0.5, 0.1, 0.1, 0.0]  # closer, still disjoint
    has_object, target, _ = head._cell_targets(objects)
    predicted = head._boxes(*head._split(raw)[:2])
    responsible, iou = head._responsible(predicted, target, has_object)
    assert float(np.max(numpy(iou))) == 0.0
    np.testing.assert_array_equal(numpy(responsible)[0, 0], [0, 1])


# YOLOv8 --------------------------------------------------------------------------------------

def test_yolov8_assigns_boxes_to_the_points_inside_them():
    # 32 x 32 image, strides 8 / 16 / 32: points 0-15 at (4 + 8i), 16-19 at (8 + 16i), 20 at 16.
    head = yolo_v8.YoloV8Head((32, 32), 2, strides=(8, 16, 32), reg_max=4)
    raw = np.zeros((1, 21, 16 + 2), "float32")  # every side 1.5 strides, scores 0.5
    objects = np.array([[[0.0, 0.0, 0.5, 0.5, 1.0], [0.5, 0.5, 1.0, 1.0, 0.0],
                         [-1, -1, -1, -1, -1]]], "float32")
    out = {key: numpy(value) for key, value in head.assign(objects, raw).items()}
    # Box 0 (0-16 px) holds stride-8 points 0, 1, 4, 5 and stride-16 point 16; the stride-32
    # point (16, 16) lies on its edge, not inside. Box 1 holds 10, 11, 14, 15 and 19.
    expected = {0: [0, 1, 4, 5, 16], 1: [10, 11, 14, 15, 19]}
    np.testing.assert_array_equal(np.flatnonzero(out["foreground"][0]),
                                  sorted(expected[0] + expected[1]))
    for box, points in expected.items():
        np.testing.assert_array_equal(out["gt_index"][0, points], box)
        np.testing.assert_array_equal(out["classes"][0, points], 1 - box)
        np.testing.assert_allclose(out["boxes"][0, points], [[16 * box, 16 * box,
                                                              16 * box + 16, 16 * box + 16]] * 5)
    assert out["scores"][0, 0, 1] > 0 and out["scores"][0, 10, 0] > 0
    np.testing.assert_array_equal(out["scores"][0, ~out["foreground"][0]], 0)
    # Each box's positive of largest overlap (clipped CIoU) gets that overlap as its target.
    decoded = numpy(head._boxes(head._split(raw)[0]))[0]  # unclipped, as assigned
    for box, points in expected.items():
        overlaps = numpy(det.aligned_ciou(decoded[points], out["boxes"][0, points]))
        np.testing.assert_allclose(out["scores"][0, points, 1 - box].max(), overlaps.max(),
                                   rtol=1e-5)


def test_yolov8_decode_boxes_from_the_distribution():
    head = yolo_v8.YoloV8Head((32, 32), 1, strides=(8, 16, 32), reg_max=4)
    raw = np.full((1, 21, 17), -30.0, "float32")
    raw[0, 5, [1, 4 + 1, 8 + 0, 12 + 2]] = 30.0  # point (12, 12): sides 1, 1, 0, 2 strides
    raw[0, 5, 16] = 0.0
    boxes, scores = head.decode(raw)
    np.testing.assert_allclose(numpy(boxes)[0, 5], [12 - 8, 12 - 8, 12 + 0, 12 + 16], atol=1e-3)
    assert numpy(boxes)[0, 0, 0] == 0  # point (4, 4) reaches 1.5 strides left: clipped
    np.testing.assert_allclose(numpy(scores)[0, 5], [0.5])


def test_yolov8_fold_batch_norms_keeps_the_outputs():
    keras.utils.set_random_seed(6)
    config = applications.get_info("yolov8n").config("tiny")
    training = applications.build("yolov8n", **config)
    rng = np.random.default_rng(7)
    for layer in training.layers:  # non-trivial statistics
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, channels), rng.normal(0, 0.1, channels),
                               rng.normal(0, 0.1, channels), rng.uniform(0.5, 1.5, channels)])
    deployed = yolo_v8.fold_batch_norms(training, applications.build("yolov8n", **config,
                                                                     fused=True))
    images = rng.random((2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(numpy(deployed(images)), numpy(training(images, training=False)),
                               atol=1e-4)
