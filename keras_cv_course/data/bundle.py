"""A dataset ready for training: three splits plus what a model needs to know.

Every source (embedded arrays, TensorFlow Datasets, a folder of images) ends
as a ``DataBundle`` whose splits are unbatched ``tf.data.Dataset`` objects
with one element per example:

* ``classification``: ``(image, label)``, label an int32 class index;
* ``segmentation``: ``(image, mask)``, mask an int32 ``(H, W)`` class map;
* ``generative``: ``image`` alone, since the target is the input.

Images are float32 in [0, 1], shape ``(H, W, C)``. ``pipeline`` turns a
split into batches with shuffling, augmentation and prefetching.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from keras_cv_course.errors import KCCError

TARGET_KINDS = {"classification": "labels", "segmentation": "masks", "generative": None}


@dataclasses.dataclass
class DataBundle:
    """Train, validation and test splits of one dataset for one task.

    Attributes:
        name: the dataset's name, e.g. ``"digits"``.
        task: the task the targets are for.
        train, val, test: unbatched ``tf.data.Dataset`` splits.
        image_shape: ``(H, W, C)`` of every image.
        num_classes: classes of the labels or masks (0 for generative).
        class_names: one name per class.
        arrays: for in-memory sources, ``{"train": (x, y), ...}`` NumPy
            arrays (``y`` is ``None`` for generative data).
    """

    name: str
    task: str
    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset
    image_shape: tuple
    num_classes: int
    class_names: tuple = ()
    arrays: dict | None = None

    @classmethod
    def from_arrays(cls, name, task, splits, num_classes, class_names=()):
        """Builds a bundle from NumPy arrays.

        Args:
            name: dataset name.
            task: one of ``TARGET_KINDS``.
            splits: ``{"train": (x, y), "val": (x, y), "test": (x, y)}``;
                ``x`` float images in [0, 1], ``y`` int targets or ``None``.
            num_classes: number of classes.
            class_names: optional class names.

        Raises:
            KCCError: a split is empty, shapes disagree, or images hold NaN
                or infinite values.
        """
        if task not in TARGET_KINDS:
            raise KCCError(f"task must be one of {sorted(TARGET_KINDS)}, got {task!r}")
        checked = {key: _check_split(name, key, *splits[key], task)
                   for key in ("train", "val", "test")}
        datasets = {key: _to_dataset(x, y, task) for key, (x, y) in checked.items()}
        return cls(name=name, task=task, image_shape=tuple(checked["train"][0].shape[1:]),
                   num_classes=int(num_classes), class_names=tuple(class_names),
                   arrays=checked, **datasets)

    def golden_batch(self, size=8):
        """A fixed batch of test images, used to check exports against Keras."""
        images = next(iter(self.test.map(_image_of).batch(size).take(1)))
        return images.numpy()


def _image_of(*element):
    return element[0]


def _check_split(name, split, x, y, task):
    x = np.asarray(x, dtype="float32")
    if x.ndim != 4 or len(x) == 0:
        raise KCCError(
            f"{name} {split} images must be a non-empty (N, H, W, C) array, got shape {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise KCCError(f"{name} {split} images contain NaN or infinite values")
    if task == "generative":
        return x, None
    y = np.asarray(y, dtype="int32")
    expected = x.shape[:1] if task == "classification" else x.shape[:3]
    if y.shape != expected:
        raise KCCError(f"{name} {split} targets must have shape {expected}, got {y.shape}")
    return x, y


def _to_dataset(x, y, task):
    if task == "generative":
        return tf.data.Dataset.from_tensor_slices(x)
    return tf.data.Dataset.from_tensor_slices((x, y))


def pipeline(dataset, batch_size, training=False, augment=None, seed=0,
             shuffle_buffer=2048, drop_remainder=False, one_hot_classes=None):
    """Batches a split for ``model.fit``: shuffle, batch, augment, prefetch.

    Args:
        dataset: an unbatched split of a ``DataBundle``.
        batch_size: global batch size (a distribution strategy splits it).
        training: shuffle each epoch and apply ``augment``.
        augment: callable on a batch, ``(images, targets) -> (images,
            targets)``, or ``None``.
        seed: shuffling seed, so runs are repeatable.
        shuffle_buffer: size of the shuffle buffer.
        drop_remainder: drop the last partial batch.
        one_hot_classes: turn integer labels into one-hot vectors of this
            many classes (for label-mixing augmentations); applied before
            ``augment``.
    """
    if int(batch_size) < 1:
        raise KCCError(f"batch_size must be a positive integer, got {batch_size!r}")
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(int(batch_size), drop_remainder=drop_remainder)
    if one_hot_classes:
        dataset = dataset.map(lambda images, labels: (images, tf.one_hot(labels, one_hot_classes)))
    if training and augment is not None:
        dataset = dataset.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def resize_and_format(image, image_size=None, channels=None):
    """Converts an image tensor to float32 [0, 1], a size and a channel count."""
    if image.dtype == tf.uint8:
        image = tf.cast(image, tf.float32) / 255.0
    image = tf.cast(image, tf.float32)
    if image_size is not None:
        image = tf.image.resize(image, image_size, method="bilinear", antialias=True)
    if channels is not None:
        image = set_channels(image, channels)
    return tf.clip_by_value(image, 0.0, 1.0)


def set_channels(image, channels):
    """Converts between grayscale and RGB; other counts are an error."""
    have = image.shape[-1]
    if have == channels:
        return image
    if have == 1 and channels == 3:
        return tf.image.grayscale_to_rgb(image)
    if have == 3 and channels == 1:
        return tf.image.rgb_to_grayscale(image)
    raise KCCError(f"cannot convert images with {have} channels to {channels} channels")
