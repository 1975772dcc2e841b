"""Mask R-CNN and the instance segmentation task: torchvision's count, the data, training
with five logged losses, pasted masks, the mask parity rule and mask AP.

The harness (``tests/test_models.py``) builds, trains a step, saves, loads and exports the
tiny model end to end; the mask branch's parts are checked by hand in ``test_masks.py``.
"""

import keras
import numpy as np
import pytest

from keras_cv_course import applications
from keras_cv_course.applications.detection.mask_rcnn import MaskRCNN
from keras_cv_course.data import load_dataset
from keras_cv_course.export.api import serving_function
from keras_cv_course.tasks import get_task

NAME = "maskrcnn_resnet50_fpn"
TASK = get_task("instance_segmentation")


def test_full_size_parameter_count_equals_torchvision():
    model = applications.build_full(NAME)
    assert applications.parameter_count(model) == 44_401_393
    mask_branch = [f"mask_fcn{k}" for k in (1, 2, 3, 4)] + ["mask_conv5", "mask_fcn_logits"]
    assert sum(int(np.prod(w.shape)) for name in mask_branch
               for w in model.get_layer(name).weights) == 44_401_393 - 41_755_286
    assert model.output["detection_masks"].shape == (None, 100, 28, 28)


def test_shapes_serves_instance_masks_that_fill_their_boxes():
    images, targets = load_dataset("shapes", task="instance_segmentation").arrays["train"]
    objects, masks = targets["objects"], targets["masks"]
    assert masks.shape == (len(images), objects.shape[1], 32, 32)
    rows, cols = np.nonzero(masks[0, 0])
    ymin, xmin, ymax, xmax = objects[0, 0, :4] * 32
    assert rows.min() >= np.floor(ymin) and rows.max() < np.ceil(ymax)
    assert cols.min() >= np.floor(xmin) and cols.max() < np.ceil(xmax)


@pytest.fixture(scope="module")
def trained():
    """The tiny model after three epochs on 256 shapes images, its history and test data."""
    bundle = load_dataset("shapes", task="instance_segmentation")
    images, targets = bundle.arrays["train"]
    keras.utils.set_random_seed(0)
    model = applications.build_tiny(NAME)
    TASK.compile(model, make_optimizer=lambda: keras.optimizers.Adam(1e-3))
    few = {key: value[:256] for key, value in targets.items()}
    history = model.fit(images[:256], few, batch_size=32, epochs=3, verbose=0)
    test_images, test_targets = bundle.arrays["test"]
    return model, history.history, test_images[:16], {k: v[:16] for k, v in test_targets.items()}


def test_five_losses_are_logged_and_their_sum_falls(trained):
    _, history, _, _ = trained
    names = MaskRCNN.loss_names
    assert names[-1] == "mask_loss" and set(names) <= set(history)
    total = [sum(history[name][epoch] for name in names) for epoch in range(3)]
    np.testing.assert_allclose(history["loss"], total, rtol=1e-4)
    assert history["loss"][-1] < history["loss"][0]
    assert history["mask_loss"][-1] < history["mask_loss"][0]


def test_served_masks_are_pasted_and_silent_on_padding(trained):
    model, _, images, _ = trained
    outputs = {key: keras.ops.convert_to_numpy(value)
               for key, value in serving_function(model, TASK)({"images": images}).items()}
    masks, counts = outputs["masks"], outputs["num_detections"]
    assert masks.shape == (16, 10, 32, 32)
    assert masks.min() >= 0.0 and masks.max() <= 1.0
    for index, count in enumerate(counts):
        assert not masks[index, count:].any()
    np.testing.assert_array_equal(outputs["classes"][0, counts[0]:], -1)


def test_mask_parity_rule_catches_a_changed_mask(trained):
    model, _, images, _ = trained
    outputs = {key: keras.ops.convert_to_numpy(value)
               for key, value in serving_function(model, TASK)({"images": images}).items()}
    assert all(check["passed"] for check in TASK.compare_outputs(outputs, outputs, 1e-5).values())
    image = int(np.argmax(outputs["num_detections"] > 0))
    changed = {key: value.copy() for key, value in outputs.items()}
    changed["masks"][image, 0] = 1.0 - (changed["masks"][image, 0] > 0.5)
    check = TASK.compare_outputs(changed, outputs, 1e-5)["masks"]
    assert not check["passed"] and check["error"] >= 1


def test_evaluation_reports_box_and_mask_ap(trained):
    model, _, images, targets = trained
    dataset = [(images, targets)]
    scores = TASK.evaluate(model, dataset)
    for name in ("loss", "ap", "ap50", "mask_ap", "mask_ap50", "mask_ap75"):
        assert name in scores and np.isfinite(scores[name])
    assert 0.0 <= scores["mask_ap"] <= 1.0


def test_prediction_picture_tints_the_masks(trained):
    model, _, images, _ = trained
    outputs = {key: keras.ops.convert_to_numpy(value)[0]
               for key, value in serving_function(model, TASK)({"images": images[:1]}).items()}
    picture, lines = TASK.prediction_picture(images[0], outputs)
    assert picture.shape == (32, 32, 3)
    assert lines and ("mask of" in lines[0] or lines == ["no detections"])
