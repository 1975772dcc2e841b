"""The data layer carries any task's data: several inputs, N-D inputs, dict targets, padding.

Two tasks defined here (and removed afterwards) stand for the tasks still to
come: one whose examples are a short video plus tokens, and one whose
targets are padded boxes and classes. The package is not edited for them.
"""

import numpy as np
import pytest
import tensorflow as tf

from keras_cv_course import tasks
from keras_cv_course.data import PADDING, DataBundle, load_dataset, pad_ragged, pipeline
from keras_cv_course.data.augment import flip_boxes, flip_with_masks
from keras_cv_course.errors import KCCError
from keras_cv_course.specs import TensorSpec


class ClipAndTokensTask(tasks.Task):
    name = "test_clip_and_tokens"
    input_specs = (TensorSpec("frames", ("time", "height", "width", "channels"), "float32"),
                   TensorSpec("tokens", ("length",), "int32"))
    target_specs = (TensorSpec("labels", (), "int32"),)


class BoxesTask(tasks.Task):
    name = "test_boxes"
    target_specs = (TensorSpec("boxes", ("max_boxes", 4), "float32"),
                    TensorSpec("classes", ("max_boxes",), "int32"))
    annotations = ("boxes", "classes")
    class_annotation = "classes"


@pytest.fixture(scope="module", autouse=True)
def test_tasks():
    for task in (ClipAndTokensTask(), BoxesTask()):
        tasks.register_task(task)
    yield
    for task in (ClipAndTokensTask, BoxesTask):
        tasks.unregister_task(task.name)


def _clip_split(count, rng):
    inputs = {"frames": rng.uniform(0, 1, (count, 3, 8, 8, 1)),
              "tokens": rng.integers(0, 20, (count, 6))}
    return inputs, rng.integers(0, 2, count)


def test_several_inputs_of_any_rank():
    rng = np.random.default_rng(0)
    splits = {key: _clip_split(6, rng) for key in ("train", "val", "test")}
    bundle = DataBundle.from_arrays("clips", "test_clip_and_tokens", splits, 2)
    assert [spec.describe() for spec in bundle.input_specs] == [
        "frames: (3, 8, 8, 1) float32", "tokens: (6,) int32"]
    inputs, labels = next(iter(pipeline(bundle.train, 4)))
    assert inputs["frames"].shape == (4, 3, 8, 8, 1) and inputs["tokens"].dtype == tf.int32
    assert labels.shape == (4,)
    golden = bundle.golden_batch(2)
    assert sorted(golden) == ["frames", "tokens"] and golden["frames"].shape == (2, 3, 8, 8, 1)


def test_inputs_that_break_the_specs_are_one_line_errors():
    rng = np.random.default_rng(0)
    good = _clip_split(4, rng)
    flat = ({"frames": good[0]["frames"][:, 0], "tokens": good[0]["tokens"]}, good[1])
    with pytest.raises(KCCError, match=r"clips train: 'frames' must have shape .* got \(8, 8, 1\)"):
        DataBundle.from_arrays("clips", "test_clip_and_tokens",
                               {"train": flat, "val": good, "test": good})
    fractional = ({**good[0], "tokens": good[0]["tokens"] + 0.5}, good[1])
    with pytest.raises(KCCError, match="'tokens' must hold integers"):
        DataBundle.from_arrays("clips", "test_clip_and_tokens",
                               {"train": fractional, "val": good, "test": good})
    with pytest.raises(KCCError, match=r"inputs must be a dict with keys \['frames', 'tokens'\]"):
        DataBundle.from_arrays("clips", "test_clip_and_tokens",
                               {"train": (good[0]["frames"], good[1]), "val": good, "test": good})


def test_shapes_serves_padded_box_targets_as_a_dict():
    bundle = load_dataset("shapes", task="test_boxes", num_examples=40)
    images, targets = bundle.arrays["train"]
    assert targets["boxes"].shape == (len(images), 1, 4)
    assert targets["classes"].shape == (len(images), 1)
    assert bundle.class_names == ("circle", "square", "triangle")
    assert [spec.name for spec in bundle.target_specs] == ["boxes", "classes"]


def test_pipeline_pads_variable_numbers_of_boxes():
    counts = [1, 3, 2, 0]

    def examples():
        for count in counts:
            yield np.zeros((8, 8, 3), "float32"), {"boxes": np.full((count, 4), 0.5, "float32"),
                                                   "classes": np.full((count,), 2, "int32")}

    signature = (tf.TensorSpec((8, 8, 3), tf.float32),
                 {"boxes": tf.TensorSpec((None, 4), tf.float32),
                  "classes": tf.TensorSpec((None,), tf.int32)})
    dataset = tf.data.Dataset.from_generator(examples, output_signature=signature)
    _, targets = next(iter(pipeline(dataset, 4)))
    assert targets["boxes"].shape == (4, 3, 4) and targets["classes"].shape == (4, 3)
    np.testing.assert_array_equal(targets["classes"].numpy()[3], [PADDING] * 3)
    np.testing.assert_array_equal((targets["classes"].numpy() == 2).sum(axis=1), counts)


def test_pad_ragged():
    padded = pad_ragged([np.ones((1, 4)), np.ones((3, 4)), np.zeros((0, 4))], dtype="float32")
    assert padded.shape == (3, 3, 4)
    assert np.all(padded[0, 1:] == PADDING) and np.all(padded[2] == PADDING)
    assert pad_ragged([[1, 2], [3]], length=4, dtype="int32").tolist() == [
        [1, 2, -1, -1], [3, -1, -1, -1]]
    with pytest.raises(KCCError, match="cannot pad sequences of length 2 to length 1"):
        pad_ragged([[1, 2]], length=1)


def test_a_flip_moves_boxes_and_masks_with_the_image():
    boxes = np.array([[[0.1, 0.2, 0.5, 0.4], [-1, -1, -1, -1]]], "float32")
    np.testing.assert_allclose(np.asarray(flip_boxes(boxes)),
                               [[[0.1, 0.6, 0.5, 0.8], [-1, -1, -1, -1]]], atol=1e-6)
    images = np.zeros((64, 4, 6, 1), "float32")
    images[:, :, 0] = 1.0  # a bright left column
    masks = np.zeros((64, 4, 6), "int32")
    masks[:, :, 0] = 1
    flipped_images, flipped_masks = flip_with_masks(images, masks, seed=3)
    flipped_images, flipped_masks = np.asarray(flipped_images), np.asarray(flipped_masks)
    moved = flipped_masks[:, 0, -1] == 1
    assert 10 < moved.sum() < 54  # about half
    np.testing.assert_array_equal(flipped_images[..., 0] == 1.0, flipped_masks == 1)


def test_a_dataset_lists_the_tasks_it_serves():
    with pytest.raises(KCCError, match=r"dataset 'digits' serves tasks \['classification', "
                                       r"'conditional_generative', 'generative'"):
        load_dataset("digits", task="segmentation")


def test_segmentation_overlays_tint_each_class():
    from keras_cv_course.tasks.segmentation import PALETTE, overlay

    images = np.zeros((1, 2, 2, 1), "float32")
    classes = np.array([[[0, 1], [2, 1]]])
    tinted = overlay(images, classes, alpha=1.0)
    assert tinted.shape == (1, 2, 2, 3)
    np.testing.assert_allclose(tinted[0, 0, 1], PALETTE[1])
    np.testing.assert_allclose(tinted[0, 1, 0], PALETTE[2])
