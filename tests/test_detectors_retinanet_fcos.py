"""RetinaNet and FCOS: torchvision's counts, decoding, assignment by hand, learning, saving."""

import keras
import numpy as np
import pytest

from keras_cv_course import applications
from keras_cv_course.applications.detection.fcos import centerness
from keras_cv_course.detection.head import DetectionLoss, detection_head
from keras_cv_course.layers.frozen_batch_norm import FrozenBatchNormalization

DETECTORS = ("retinanet_resnet50_fpn", "fcos_resnet50_fpn")


def numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


def objects_of(*boxes, rows=3):
    """``(1, rows, 5)`` targets from pixel ``xyxy`` boxes on a 32x32 image, with a class."""
    objects = -np.ones((1, rows, 5), "float32")
    for index, (x1, y1, x2, y2, label) in enumerate(boxes):
        objects[0, index] = [y1 / 32, x1 / 32, y2 / 32, x2 / 32, label]
    return objects


def square_images(count, seed=0):
    """Dark noisy images, each with one bright square, and their targets (3 classes)."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.0, 0.2, (count, 32, 32, 3)).astype("float32")
    objects = -np.ones((count, 2, 5), "float32")
    for index in range(count):
        size = rng.integers(10, 18)
        x, y = rng.integers(0, 32 - size, 2)
        label = index % 3
        images[index, y:y + size, x:x + size, label] = 1.0
        objects[index, 0] = [y / 32, x / 32, (y + size) / 32, (x + size) / 32, label]
    return images, objects


# Full size: exactly torchvision's counts -------------------------------------------------------

@pytest.mark.parametrize("name,reference", [("retinanet_resnet50_fpn", 34_014_999),
                                            ("fcos_resnet50_fpn", 32_269_600)])
def test_full_size_parameter_count_equals_torchvision(name, reference):
    model = applications.build_full(name)
    assert applications.parameter_count(model) == reference
    assert applications.get_info(name).reference_params == reference
    # Frozen BatchNorm's four vectors are statistics: the parameters are the trainable weights.
    frozen = [layer for layer in model.layers if isinstance(layer, FrozenBatchNormalization)]
    assert len(frozen) == 53  # stem + 16 bottlenecks x 3 + 4 projections
    assert reference == sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_frozen_batch_norm_equals_batch_norm_at_inference(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 3, 4)).astype("float32")
    vectors = [rng.uniform(0.5, 1.5, 4).astype("float32") for _ in range(4)]
    keras_bn = keras.layers.BatchNormalization(epsilon=1e-5)
    frozen = FrozenBatchNormalization(epsilon=1e-5)
    for layer in (keras_bn, frozen):
        layer.build(x.shape)
        layer.set_weights(vectors)  # gamma, beta, mean, variance
    expected = numpy(keras_bn(x, training=False))
    np.testing.assert_allclose(numpy(frozen(x, training=True)), expected, rtol=1e-5, atol=1e-6)
    assert not frozen.trainable_weights
    model = keras.Sequential([keras.Input((3, 3, 4)), frozen])
    assert applications.parameter_count(model) == 0 and model.count_params() == 16
    path = str(tmp_path / "frozen.keras")
    model.save(path)
    np.testing.assert_allclose(numpy(keras.saving.load_model(path, safe_mode=True)(x)), expected,
                               rtol=1e-5, atol=1e-6)


# Tiny configs: outputs, decoding, losses, learning, saving -------------------------------------

@pytest.fixture(scope="module")
def tiny_models():
    keras.utils.set_random_seed(0)
    return {name: applications.build_tiny(name) for name in DETECTORS}


@pytest.mark.parametrize("name,fields", [("retinanet_resnet50_fpn", 3 + 4),
                                         ("fcos_resnet50_fpn", 3 + 5)])
def test_tiny_output_and_decode(tiny_models, name, fields):
    model = tiny_models[name]
    head = detection_head(model)
    assert head.name == "raw_detections" and model.output_names == ["raw_detections"]
    assert model.input.name == "images"
    images, _ = square_images(2)
    raw = model(images)
    # 32x32 with P2-P5 (strides 4-32): 8x8 + 4x4 + 2x2 + 1x1 cells, 9 anchors each or 1 point.
    cells = 64 + 16 + 4 + 1
    assert tuple(raw.shape) == (2, cells * (9 if "retinanet" in name else 1), fields)
    boxes, scores = (numpy(t) for t in head.decode(raw))
    assert boxes.shape == (*raw.shape[:2], 4) and scores.shape == (*raw.shape[:2], 3)
    assert np.isfinite(boxes).all() and boxes.min() >= 0 and boxes.max() <= 32
    assert (boxes[..., 2:] >= boxes[..., :2]).all()
    assert 0 <= scores.min() and scores.max() <= 1
    # The prior-probability bias: every class starts near 0.01 (FCOS: sqrt(0.01 * 0.5)).
    expected = 0.01 if "retinanet" in name else np.sqrt(0.01 * 0.5)
    np.testing.assert_allclose(np.median(scores), expected, rtol=0.2)


@pytest.mark.parametrize("name", DETECTORS)
def test_tiny_loss_finite_and_decreasing(tiny_models, name):
    model = keras.models.clone_model(tiny_models[name])
    head = detection_head(model)
    images, objects = square_images(8)
    raw = model(images[:2])
    empty = -np.ones((2, 2, 5), "float32")
    mixed = objects[:2].copy()
    mixed[0] = -1.0  # one image without objects beside one with
    for targets in (empty, mixed, objects[:2], np.zeros((2, 0, 5), "float32")):
        assert np.isfinite(float(head.loss(targets, raw)))
    keras.utils.set_random_seed(1)
    model.compile(keras.optimizers.Adam(3e-3), loss=DetectionLoss(head), jit_compile=False)
    history = model.fit(images, objects, batch_size=4, epochs=10, verbose=0)  # 20 steps
    losses = history.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < 0.7 * losses[0], losses


def test_retinanet_matching_by_hand(tiny_models):
    head = detection_head(tiny_models["retinanet_resnet50_fpn"])
    # P2 (stride 4) anchors: cell (row 3, column 4) is centred at (16, 12); its anchors are
    # ratio-major, size-minor: index (3 * 8 + 4) * 9 + 3 * ratio + size. Ratio 1, size 12
    # (index 257) is [10, 6, 22, 18]; make that the object.
    np.testing.assert_array_equal(head.anchors[257], [10, 6, 22, 18])
    matches, _, _ = head.match(objects_of((10, 6, 22, 18, 2)))
    matches = numpy(matches)[0]
    assert matches[257] == 0  # IoU 1
    assert matches[256] == 0  # size 10, same centre: IoU 100 / 144 = 0.69 >= 0.5
    assert matches[255] == -2  # size 8: IoU 64 / 144 = 0.44, between 0.4 and 0.5: ignored
    assert matches[0] == -1  # far away: background
    # The loss: with confident logits and exact offsets only the other positives' errors count.
    box = np.array([10, 6, 22, 18], "float32")
    positives = matches >= 0
    raw = np.zeros((1, len(head.anchors), 7), "float32")
    raw[..., :3] = -20.0  # confident background everywhere ...
    raw[0, positives, 2] = 20.0  # ... but class 2 on the positives
    raw[0, positives, 3:] = numpy(head.coder.encode(box, head.anchors[positives]))
    objects = objects_of((10, 6, 22, 18, 2))
    assert positives.sum() >= 2 and float(head.loss(objects, raw)) < 1e-3
    raw[0, 257, 3] += 0.5  # an x-offset error of 0.5 on one positive: L1 0.5 / positives
    np.testing.assert_allclose(float(head.loss(objects, raw)), 0.5 / positives.sum(), rtol=1e-2)


def test_fcos_assignment_by_hand(tiny_models):
    head = detection_head(tiny_models["fcos_resnet50_fpn"])
    # P2 points (stride 4) sit at (4 j, 4 i), index 8 i + j. A 16x16 box centred on (16, 16):
    # centre sampling keeps points within 1.5 * 4 = 6 pixels of the centre, x, y in
    # {12, 16, 20}; all lie inside and reach at most 12 < 32, P2's upper bound. P3's only
    # inside point, (16, 16), reaches 8, below P3's lower bound 32.
    matches, _, _ = head.match(objects_of((8, 8, 24, 24, 1)))
    matches = numpy(matches)[0]
    expected = [8 * i + j for i in (3, 4, 5) for j in (3, 4, 5)]
    np.testing.assert_array_equal(np.flatnonzero(matches >= 0), expected)
    assert (matches[expected] == 0).all()
    # A smaller box around the same centre takes the point both contain: (16, 16), index 36.
    matches, _, _ = head.match(objects_of((8, 8, 24, 24, 1), (12, 12, 20, 20, 0)))
    matches = numpy(matches)[0]
    assert matches[36] == 1 and (matches[[27, 28, 29, 35, 37, 43, 44, 45]] == 0).all()
    # Centre-ness of point (12, 12) in the first box: l = t = 4, r = b = 12: sqrt(1/3 * 1/3).
    np.testing.assert_allclose(numpy(centerness(np.array([[4.0, 4.0, 12.0, 12.0]]))), [1 / 3],
                               rtol=1e-6)
    np.testing.assert_allclose(head.points[36], [16, 16])
    np.testing.assert_allclose(head.lower[:64], 0)
    np.testing.assert_allclose(head.upper[:64], 32)


@pytest.mark.parametrize("name", DETECTORS)
def test_tiny_saves_and_loads_safely(tiny_models, name, tmp_path):
    model = tiny_models[name]
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    images, objects = square_images(2)
    np.testing.assert_allclose(numpy(restored(images)), numpy(model(images)), atol=1e-5)
    head, restored_head = detection_head(model), detection_head(restored)
    assert type(restored_head) is type(head)
    assert restored_head.get_config() == head.get_config()
    raw = model(images)
    np.testing.assert_allclose(float(restored_head.loss(objects, raw)),
                               float(head.loss(objects, raw)), rtol=1e-6)
