"""Datasets: embedded, TFDS (mocked), image folders, and the pipeline."""

import os

import numpy as np
import pytest
import tensorflow as tf

from keras_cv_course.data import DATASETS, DataBundle, datasheet, load_dataset, pipeline
from keras_cv_course.data.embedded import SHAPE_CLASSES, generate_shapes
from keras_cv_course.errors import KCCError


def test_digits_are_the_real_sklearn_digits_resized():
    bundle = load_dataset("digits", image_size=(16, 16), channels=3)
    sizes = {key: len(x) for key, (x, _) in bundle.arrays.items()}
    assert sum(sizes.values()) == 1797
    assert sizes["test"] == 360
    x, y = bundle.arrays["train"]
    assert x.shape[1:] == (16, 16, 3) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert set(np.unique(y)) == set(range(10))


def test_splits_are_disjoint_and_deterministic():
    first = load_dataset("digits", seed=3).arrays
    second = load_dataset("digits", seed=3).arrays
    np.testing.assert_array_equal(first["test"][0], second["test"][0])
    train_rows = {row.tobytes() for row in first["train"][0]}
    overlap = sum(row.tobytes() in train_rows for row in first["test"][0])
    assert overlap <= 5  # the raw digits set itself holds a few duplicate images


def test_shapes_generator_annotations_agree():
    raw = generate_shapes(20, image_size=32, max_shapes=3, seed=1)
    again = generate_shapes(20, image_size=32, max_shapes=3, seed=1)
    np.testing.assert_array_equal(raw["images"], again["images"])
    for index in range(20):
        masks, boxes = raw["instance_masks"][index], raw["boxes"][index]
        classes = raw["classes"][index]
        assert len(masks) == len(boxes) == len(classes)
        assert raw["captions"][index].count(" and ") == len(classes) - 1
        for mask, box, class_id in zip(masks, boxes, classes):
            rows, cols = np.nonzero(mask)
            assert box[0] == rows.min() / 32 and box[3] == (cols.max() + 1) / 32
            assert SHAPE_CLASSES[class_id] in raw["captions"][index]
        # The last-drawn shape is always visible in the semantic mask.
        assert np.all(raw["semantic_masks"][index][masks[-1]] == classes[-1] + 1)


def test_shapes_tasks():
    segmentation = load_dataset("shapes", task="segmentation", num_examples=60)
    assert segmentation.num_classes == 4
    image, mask = next(iter(segmentation.train))
    assert image.shape == (32, 32, 3) and mask.shape == (32, 32) and mask.dtype == tf.int32
    generative = load_dataset("shapes", task="generative", num_examples=60)
    assert next(iter(generative.train)).shape == (32, 32, 3)


def test_pipeline_batches_shuffles_and_augments():
    bundle = load_dataset("digits")
    flip = lambda images, labels: (images[:, :, ::-1], labels)  # noqa: E731
    batch = next(iter(pipeline(bundle.train, 16, training=True, augment=flip)))
    assert batch[0].shape == (16, 8, 8, 1)
    first = [y.numpy() for _, y in pipeline(bundle.train, 64, training=True, seed=1).take(1)]
    second = [y.numpy() for _, y in pipeline(bundle.train, 64, training=True, seed=2).take(1)]
    assert not np.array_equal(first[0], second[0])


@pytest.mark.parametrize(
    "name", ["cifar10", "mnist", "fashion_mnist", "imagenette", "oxford_iiit_pet"])
def test_tfds_loaders_with_mock_data(name):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=6):
        bundle = load_dataset(name, image_size=(32, 32))
        image, label = next(iter(bundle.train))
    assert image.shape == (32, 32, bundle.image_shape[-1])
    assert image.dtype == tf.float32 and 0 <= int(label) < bundle.num_classes


def test_oxford_pet_segmentation_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=4):
        bundle = load_dataset("oxford_iiit_pet", task="segmentation", image_size=(32, 32))
        _, mask = next(iter(bundle.train))
    assert mask.shape == (32, 32) and bundle.num_classes == 3


def _write_folder(root, classes=("cat", "dog"), per_class=6):
    for index, name in enumerate(classes):
        os.makedirs(os.path.join(root, name))
        for item in range(per_class):
            pixels = np.full((20, 24, 3), 60 * index + item, dtype=np.uint8)
            tf.io.write_file(os.path.join(root, name, f"{item}.png"), tf.io.encode_png(pixels))


def test_image_folder(tmp_path):
    _write_folder(str(tmp_path))
    bundle = load_dataset(f"folder:{tmp_path}", image_size=(16, 16))
    assert bundle.class_names == ("cat", "dog")
    images = [image for image, _ in bundle.train.concatenate(bundle.val).concatenate(bundle.test)]
    assert len(images) == 12 and images[0].shape == (16, 16, 3)


def test_missing_and_empty_folders_are_clear_errors(tmp_path):
    with pytest.raises(KCCError, match="not found"):
        load_dataset(f"folder:{tmp_path}/nowhere")
    with pytest.raises(KCCError, match="at least 2 class sub-folders"):
        load_dataset(f"folder:{tmp_path}")
    os.makedirs(tmp_path / "a")
    os.makedirs(tmp_path / "b")
    with pytest.raises(KCCError, match="is empty"):
        load_dataset(f"folder:{tmp_path}")


def test_unknown_dataset_lists_closest_names():
    with pytest.raises(KCCError, match="closest valid names: digits"):
        load_dataset("digitz")
    assert "folder:PATH" in DATASETS


def test_wrong_task_for_dataset():
    with pytest.raises(KCCError, match="serves tasks"):
        load_dataset("digits", task="segmentation")


def test_nan_images_are_rejected():
    images = np.zeros((4, 8, 8, 1), dtype="float32")
    images[1, 2, 3, 0] = np.nan
    splits = {key: (images, np.zeros(4, dtype="int32")) for key in ("train", "val", "test")}
    with pytest.raises(KCCError, match="NaN"):
        DataBundle.from_arrays("bad", "classification", splits, 10)


@pytest.mark.parametrize("name", ["digits", "shapes"])
def test_datasheets_answer_the_questions(name):
    text = datasheet(name)
    for section in ("Motivation", "Composition", "Collection process", "Preprocessing",
                    "Uses", "Distribution", "Maintenance"):
        assert f"## {section}" in text


def test_cached_bundle_reads_the_same_examples(tmp_path):
    """``--cache``: in memory or in files, each split is filled once and reads alike."""
    bundle = load_dataset("digits", image_size=(8, 8))
    in_memory = bundle.cached("memory")
    in_files = bundle.cached(str(tmp_path / "cache"))
    written = sorted(os.listdir(tmp_path / "cache"))
    assert [name for name in written if name.endswith(".index")] == [
        f"digits-classification-8x8x1-{split}.index" for split in ("test", "train", "val")]
    for cached in (in_memory, in_files):
        for split in ("train", "test"):
            expected = [x.numpy() for x, _ in getattr(bundle, split)]
            assert np.array_equal([x.numpy() for x, _ in getattr(cached, split)], expected)
    assert bundle.cached(None) is bundle
    with pytest.raises(KCCError, match="cache must be 'memory' or a folder"):
        bundle.cached(str(tmp_path / "cache" / written[0]))
