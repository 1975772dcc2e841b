"""A user's own images: one sub-folder per class (``folder:PATH``).

    PATH/
      cats/  001.jpg 002.png ...
      dogs/  ...

The file list is split deterministically into train/val/test (70/10/20,
stratified by class) and decoded lazily by ``tf.data``.
"""

import os

import numpy as np
import tensorflow as tf

from keras_cv_course.data.bundle import DataBundle, resize_and_format
from keras_cv_course.data.embedded import split_indices
from keras_cv_course.errors import KCCError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def list_image_folder(path):
    """Returns ``(files, labels, class_names)`` of a class-per-folder tree.

    Raises:
        KCCError: the folder is missing, has no class sub-folders, or a class
            has no images.
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
        images = sorted(f for f in os.listdir(class_dir) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not images:
            raise KCCError(f"class folder {class_dir!r} has no images "
                           f"({', '.join(IMAGE_EXTENSIONS)})")
        files += [os.path.join(class_dir, f) for f in images]
        labels += [label] * len(images)
    return np.asarray(files), np.asarray(labels, dtype="int32"), tuple(class_names)


def load_folder(path, task, image_size=(64, 64), channels=3, seed=0):
    """Loads an image folder into a ``DataBundle``.

    Args:
        path: the folder, one sub-folder per class.
        task: a task object whose annotations the folder has (``labels``, or none).
        image_size: ``(height, width)`` every image is resized to.
        channels: 1 or 3.
        seed: seed of the split.
    """
    files, labels, class_names = list_image_folder(path)
    if min(np.bincount(labels)) < 5:
        raise KCCError(f"image folder {path!r} needs at least 5 images per class to split it")
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
                        class_names=class_names if with_classes else ())
    task.validate(bundle)
    return bundle
