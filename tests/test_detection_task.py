"""The detection task's own parts: targets, box-aware augmentation, pictures, parity rule."""

import numpy as np
import pytest

from keras_cv_course import data
from keras_cv_course.detection import augment
from keras_cv_course.errors import KCCError
from keras_cv_course.export.api import serving_function
from keras_cv_course.tasks import get_task
from keras_cv_course.tasks.detection import draw_boxes

TASK = get_task("detection")


def _one_box_batch():
    """An 8x8 image whose pixels (2..3, 1..4) are 1, and the box of that block."""
    images = np.zeros((1, 8, 8, 1), "float32")
    images[0, 2:4, 1:5] = 1.0
    objects = np.array([[[2 / 8, 1 / 8, 4 / 8, 5 / 8, 2.0], [-1, -1, -1, -1, -1]]], "float32")
    return images, objects


def _box_of_pixels(image):
    rows, cols = np.nonzero(image[..., 0] > 0.5)
    return np.array([rows.min(), cols.min(), rows.max() + 1, cols.max() + 1]) / image.shape[0]


def test_shapes_targets_are_packed_objects():
    bundle = data.load_dataset("shapes", task="detection", num_examples=60)
    images, objects = bundle.arrays["train"]
    assert objects.shape[1:] == (1, 5) and objects.dtype == np.float32
    assert np.all((objects[..., :4] >= 0) & (objects[..., :4] <= 1))
    assert set(np.unique(objects[..., 4])) <= {0.0, 1.0, 2.0}
    assert bundle.class_names == ("circle", "square", "triangle")


def test_flip_moves_box_with_pixels():
    images, objects = _one_box_batch()
    for seed in range(6):  # both outcomes of the coin appear
        flipped, moved = (np.asarray(t) for t in augment.flip_with_boxes(images, objects, seed))
        np.testing.assert_allclose(moved[0, 0, :4], _box_of_pixels(flipped[0]), atol=1e-6)
        np.testing.assert_array_equal(moved[0, 1], objects[0, 1])  # padding stays
        assert moved[0, 0, 4] == 2.0


def test_scale_jitter_moves_clips_and_drops_boxes():
    images, objects = _one_box_batch()
    images = np.repeat(images, 16, axis=0)
    objects = np.repeat(objects, 16, axis=0)
    zoomed, moved = (np.asarray(t) for t in augment.scale_jitter_crop(
        images, objects, scale_range=(0.5, 2.0), seed=3))
    dropped = 0
    for image, rows in zip(zoomed, moved):
        if rows[0, 4] < 0:
            dropped += 1
            assert np.all(rows == -1)
            continue
        assert np.all((rows[0, :4] >= 0) & (rows[0, :4] <= 1))
        if min(rows[0, 2] - rows[0, 0], rows[0, 3] - rows[0, 1]) < 2 / 8:
            continue  # clipped to a sliver: blurred below 0.5 by the resampling
        # The box still covers the bright block (bilinear edges blur by one pixel).
        np.testing.assert_allclose(rows[0, :4], _box_of_pixels(image), atol=1.5 / 8)
    assert dropped < 16


def test_draw_boxes_outlines_the_box():
    picture = draw_boxes(np.zeros((10, 10, 3), "float32"), [[0.2, 0.2, 0.6, 0.8]], classes=[1])
    assert picture[2, 2:9].min() > 0 and picture[6, 2:9].min() > 0  # top and bottom edges
    assert picture[4, 4].max() == 0  # inside untouched


def test_serving_options_are_checked():
    with pytest.raises(KCCError, match=r"takes serving options \['max_detections'"):
        serving_function(None, TASK, {"max_boxes": 5})


def test_parity_rule_matches_detections_not_positions():
    boxes = np.array([[[0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.9, 0.9], [0, 0, 0, 0]]], "float32")
    expected = {"boxes": boxes, "scores": np.array([[0.9, 0.8, 0.0]], "float32"),
                "classes": np.array([[1, 0, -1]], "int32"),
                "num_detections": np.array([2], "int32")}
    swapped = {"boxes": boxes[:, [1, 0, 2]], "scores": np.array([[0.8, 0.9, 0]], "float32"),
               "classes": np.array([[0, 1, -1]], "int32"), "num_detections": expected[
                   "num_detections"]}
    assert all(check["passed"] for check in TASK.compare_outputs(swapped, expected, 0).values())
    moved = dict(swapped, scores=np.array([[0.8, 0.85, 0]], "float32"))
    assert not TASK.compare_outputs(moved, expected, 0)["scores"]["passed"]
    assert TASK.agreement(moved, expected) == 1.0  # same decisions, only the score moved


@pytest.mark.parametrize("name, classes", [("voc/2007", 20), ("coco/2017", 80)])
def test_tfds_detection_sets_load_as_objects(name, classes):
    import tensorflow_datasets as tfds

    from keras_cv_course.data.bundle import pipeline

    with tfds.testing.mock_data(num_examples=6):
        bundle = data.load_dataset(name, task="detection", image_size=(48, 48))
        images, objects = next(iter(pipeline(bundle.train, 4)))
    assert bundle.num_classes == classes and len(bundle.class_names) == classes
    assert images.shape == (4, 48, 48, 3)
    assert objects.shape[0] == 4 and objects.shape[2] == 5
    labels = objects.numpy()[..., 4]
    assert np.all((labels == -1) | ((labels >= 0) & (labels < classes)))


def test_compiled_detector_with_head_weights_saves_and_loads(tmp_path):
    """YOLOv8's head has a (fixed) weight; a compiled model's loss must not claim it."""
    from keras_cv_course import applications
    from keras_cv_course.runs import load_keras_file

    model = applications.build_tiny("yolov8n")
    TASK.compile(model, applications.get_info("yolov8n"), jit_compile=False)
    path = str(tmp_path / "yolov8n.keras")
    model.save(path)
    loaded = load_keras_file(path)
    images, _ = TASK.synthetic_batch(model, batch_size=2)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0),
                               atol=1e-6)
