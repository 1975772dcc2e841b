"""A user's own images: one sub-folder per class (``folder:PATH``).

    PATH/
      cats/  001.jpg 002.png ...
      dogs/  ...

Every file is checked before anything is trained or written
(``data.image_files``): a corrupt, unsupported, stray or oversized file is
named in a one-line error, or skipped with ``skip_bad=True``. The good files
are split deterministically into train/val/test (70/10/20, stratified by
class) and decoded lazily by ``tf.data``.
"""

import os

import numpy as np
import tensorflow as tf

from keras_cv_course.data.bundle import DataBundle, resize_and_format
from keras_cv_course.data.embedded import split_indices
from keras_cv_course.data.image_files import check_image_files
from keras_cv_course.errors import KCCError

MIN_IMAGES_PER_CLASS = 5
"""Fewer cannot be split 70/10/20 with every class in every split."""


def list_image_folder(path):
    """Returns ``(files, labels, class_names)`` of a class-per-folder tree.

    Every file in a class folder is listed except hidden ones (``.DS_Store``),
    so that stray files are reported rather than silently ignored.

    Raises:
        KCCError: the folder is missing, has no class sub-folders, or a class
            folder is empty.
    """
    if not os.path.isdir(path):
        raise KCCError(f"image folder not found: {path!r} "
                       "(expected a folder with one sub-folder per class)")
    class_names = sorted(entry.name for entry in os.scandir(path) if entry.is_dir())
    if len(class_names) < 2:
        raise KCCError(f"image folder {path!r} must have at least 2 class sub-folders, "
                       f"found {len(class_names)}")
    files, labels = [], []
    for label, class_name in enumerate(class_names):
        class_dir = os.path.join(path, class_name)
        images = sorted(entry.name for entry in os.scandir(class_dir)
                        if entry.is_file() and not entry.name.startswith("."))
        if not images:
            raise KCCError(f"class folder {class_dir!r} is empty")
        files += [os.path.join(class_dir, f) for f in images]
        labels += [label] * len(images)
    return np.asarray(files), np.asarray(labels, dtype="int32"), tuple(class_names)


def load_folder(path, task, image_size=(64, 64), channels=None, seed=0, skip_bad=False):
    """Loads an image folder into a ``DataBundle``.

    Args:
        path: the folder, one sub-folder per class.
        task: a task object whose annotations the folder has (``labels``, or none).
        image_size: ``(height, width)`` every image is resized to.
        channels: 1 or 3; ``None`` takes the folder's own (grey or colour).
        seed: seed of the split.
        skip_bad: leave out bad image files instead of raising; the bundle's
            ``skipped_files`` lists them with the reason.

    Raises:
        KCCError: a bad image file (unless skipped), or a class with fewer
            than ``MIN_IMAGES_PER_CLASS`` good images.
    """
    files, labels, class_names = list_image_folder(path)
    good, skipped = check_image_files(files, f"folder:{path}", channels, skip_bad)
    files, labels = files[good], labels[good]
    _check_class_sizes(labels, class_names, path)
    channels = channels or _folder_channels(files[0])
    image_size = tuple(image_size or (64, 64))

    def decode(file, label):
        raw = tf.io.read_file(file)
        image = tf.io.decode_image(raw, channels=channels, expand_animations=False)
        image.set_shape([None, None, channels])
        image = resize_and_format(image, image_size)
        targets = task.targets_from({"labels": label})
        return image if targets is None else (image, targets)

    def split(indices):
        dataset = tf.data.Dataset.from_tensor_slices((files[indices], labels[indices]))
        return dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE)

    parts = split_indices(labels, seed)
    with_classes = task.class_annotation is not None
    bundle = DataBundle(name=f"folder:{path}", task=task.name, train=split(parts["train"]),
                        val=split(parts["val"]), test=split(parts["test"]),
                        num_classes=len(class_names) if with_classes else 0,
                        class_names=class_names if with_classes else (),
                        skipped_files=tuple(f"{r.path}: {r.problem}" for r in skipped))
    task.validate(bundle)
    return bundle


def _check_class_sizes(labels, class_names, path):
    counts = np.bincount(labels, minlength=len(class_names))
    small = [f"{name} ({count})" for name, count in zip(class_names, counts)
             if count < MIN_IMAGES_PER_CLASS]
    if small:
        raise KCCError(f"image folder {path!r} needs at least {MIN_IMAGES_PER_CLASS} good images "
                       f"per class to split it; too few in: {', '.join(small)}")


def _folder_channels(first_file):
    """1 for a grey folder, else 3 (the check above made every image agree)."""
    from keras_cv_course.data.image_files import inspect_image

    return inspect_image(first_file).channels
