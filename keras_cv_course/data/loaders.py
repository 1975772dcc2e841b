"""``load_dataset``: one name in, one ``DataBundle`` out."""

import os

from keras_cv_course.data import embedded
from keras_cv_course.data.bundle import DataBundle
from keras_cv_course.data.tfds_loaders import TFDS_SPECS, load_tfds, supported_tasks
from keras_cv_course.errors import KCCError, unknown_name_error

EMBEDDED = {
    "digits": ("classification", "generative"),
    "shapes": ("classification", "segmentation", "generative"),
}
DATASETS = sorted(EMBEDDED) + sorted(TFDS_SPECS) + ["folder:PATH"]
DATASHEET_DIR = os.path.join(os.path.dirname(__file__), "datasheets")


def load_dataset(name, task="classification", image_size=None, channels=None, seed=0,
                 data_dir=None, num_examples=1200):
    """Loads a dataset by name.

    Args:
        name: one of ``DATASETS``; ``folder:PATH`` reads a user's folder.
        task: ``"classification"``, ``"segmentation"`` or ``"generative"``.
        image_size: ``(height, width)`` to resize to; each dataset has a default.
        channels: 1 or 3; each dataset has a default.
        seed: seed of the split (and of the ``shapes`` generator).
        data_dir: TFDS data folder.
        num_examples: number of ``shapes`` images to generate.

    Returns:
        A ``DataBundle``.

    Example:
        >>> bundle = load_dataset("digits", image_size=(16, 16))
        >>> bundle.num_classes
        10
    """
    name = str(name)
    if name.startswith("folder:"):
        from keras_cv_course.data.folder import load_folder

        return load_folder(name[len("folder:"):], task, image_size or (64, 64), channels or 3, seed)
    if name in EMBEDDED:
        _check_task(name, task, EMBEDDED[name])
        if name == "digits":
            return _digits(task, image_size or (8, 8), channels or 1, seed)
        return _shapes(task, image_size or (32, 32), channels or 3, seed, num_examples)
    if name in TFDS_SPECS:
        _check_task(name, task, supported_tasks(name))
        return load_tfds(name, task, image_size, channels, data_dir)
    raise unknown_name_error("dataset", name, DATASETS)


def _check_task(name, task, tasks):
    if task not in tasks:
        raise KCCError(f"dataset {name!r} serves tasks {list(tasks)}, got task {task!r}")


def _digits(task, image_size, channels, seed):
    images, labels = embedded.digits_arrays(image_size, channels)
    return _bundle("digits", task, images, labels, labels, 10,
                   [str(d) for d in range(10)], seed)


def _shapes(task, image_size, channels, seed, num_examples):
    if image_size[0] != image_size[1]:
        raise KCCError(f"shapes images are square, got image_size {tuple(image_size)}")
    raw = embedded.generate_shapes(num_examples, image_size[0], seed=seed)
    images = raw["images"] if channels == 3 else raw["images"].mean(-1, keepdims=True)
    if task == "segmentation":
        names = ["background", *embedded.SHAPE_CLASSES]
        return _bundle("shapes", task, images, raw["semantic_masks"], raw["labels"], 4, names, seed)
    return _bundle("shapes", task, images, raw["labels"], raw["labels"], 3,
                   embedded.SHAPE_CLASSES, seed)


def _bundle(name, task, images, targets, stratify_by, num_classes, class_names, seed):
    parts = embedded.split_indices(stratify_by, seed)
    splits = {key: (images[idx], None if task == "generative" else targets[idx])
              for key, idx in parts.items()}
    return DataBundle.from_arrays(name, task, splits, num_classes, class_names)


def datasheet(name):
    """The datasheet (Markdown) of an embedded dataset."""
    if name not in EMBEDDED:
        raise unknown_name_error("embedded dataset", name, EMBEDDED)
    with open(os.path.join(DATASHEET_DIR, f"{name}.md"), encoding="utf-8") as handle:
        return handle.read()
