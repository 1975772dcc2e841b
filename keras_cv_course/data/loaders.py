"""``load_dataset``: one name in, one ``DataBundle`` out, for any task.

A dataset provides *annotations* (``labels``, ``semantic_masks``,
``boxes``, ...); a task names the annotations its targets are made from
(``Task.annotations``) and makes them (``Task.targets_from``). A dataset
therefore serves every registered task whose annotations it has, including
tasks added later, with no list to edit.

=====================  =============================================================
dataset                annotations
=====================  =============================================================
``digits``             labels
``shapes``             labels, semantic_masks, boxes, classes, instance_masks, captions
TFDS classifiers       labels (``oxford_iiit_pet`` also semantic_masks)
``voc/2007``, ``coco/2017``  boxes, classes (TFDS detection sets)
``coco_captions``      captions (the first of each image's five)
``folder:PATH``        labels
=====================  =============================================================

``shapes`` also gives every example group *attributes* (``DataBundle.attributes``):
the colour, shape and size (``small``/``large`` at ``SHAPES_SIZE_THRESHOLD``) of its
labelled shape, for the unitary and intersectional analyses of a model card.
"""

import dataclasses
import os

import numpy as np

from keras_cv_course.data import embedded
from keras_cv_course.data.bundle import DataBundle, pad_ragged
from keras_cv_course.data.tfds_loaders import TFDS_SPECS, load_tfds, tfds_annotations
from keras_cv_course.errors import KCCError, unknown_name_error

EMBEDDED_ANNOTATIONS = {
    "digits": ("labels",),
    "shapes": ("labels", "semantic_masks", "boxes", "classes", "instance_masks", "captions"),
}
FOLDER_ANNOTATIONS = ("labels",)
SHAPES_SIZE_THRESHOLD = embedded.LARGE_RADIUS
"""A ``shapes`` shape is ``"large"`` when its radius is at least this fraction of the image
side, else ``"small"``: the middle of the generator's radius range [0.18, 0.32]."""
DATASETS = sorted(EMBEDDED_ANNOTATIONS) + sorted(TFDS_SPECS) + ["folder:PATH"]
"""Names ``load_dataset`` accepts: embedded, TensorFlow Datasets, and a user's folder."""
DATASHEET_DIR = os.path.join(os.path.dirname(__file__), "datasheets")


@dataclasses.dataclass
class Source:
    """An in-memory dataset before it is split: images and their annotations.

    Attributes:
        images: ``(N, H, W, C)`` float32 in [0, 1].
        annotations: ``{name: array}``, each with ``N`` rows.
        class_names: ``{annotation name: class names}`` for class-valued ones.
        attributes: ``{attribute name: (N,) str array}``, group attributes of
            each example (``shapes``: colour, shape, size); empty for none.
    """

    images: np.ndarray
    annotations: dict
    class_names: dict
    attributes: dict = dataclasses.field(default_factory=dict)


def load_dataset(name, task="classification", image_size=None, channels=None, seed=0,
                 data_dir=None, num_examples=1200, skip_bad_images=False):
    """Loads a dataset by name for a task.

    Args:
        name: one of ``DATASETS``; ``folder:PATH`` reads a user's folder.
        task: a registered task name (``keras_cv_course.tasks.list_tasks()``).
        image_size: ``(height, width)`` to resize to; each dataset has a default.
        channels: 1 or 3; each dataset has a default.
        seed: seed of the split (and of the ``shapes`` generator).
        data_dir: TFDS data folder.
        num_examples: number of ``shapes`` images to generate.
        skip_bad_images: for ``folder:PATH``, leave out bad image files
            (listed in the bundle's ``skipped_files``) instead of raising.

    Returns:
        A ``DataBundle``.

    Raises:
        KCCError: an unknown dataset, or one without the task's annotations.

    Example:
        >>> bundle = load_dataset("digits", image_size=(16, 16))
        >>> bundle.num_classes
        10
    """
    from keras_cv_course.tasks import get_task

    name, task_object = str(name), get_task(task)
    if name.startswith("folder:"):
        from keras_cv_course.data.folder import load_folder

        check_serves(name, FOLDER_ANNOTATIONS, task_object)
        return load_folder(name[len("folder:"):], task_object, image_size or (64, 64),
                           channels, seed, skip_bad_images)
    if name in EMBEDDED_ANNOTATIONS:
        check_serves(name, EMBEDDED_ANNOTATIONS[name], task_object)
        if name == "digits":
            source = _digits(image_size or (8, 8), channels or 1)
        else:
            source = _shapes(image_size or (32, 32), channels or 3, seed, num_examples)
        return bundle_from_source(name, source, task_object, seed)
    if name in TFDS_SPECS:
        check_serves(name, tfds_annotations(name), task_object)
        return load_tfds(name, task_object, image_size, channels, data_dir)
    raise unknown_name_error("dataset", name, DATASETS)


def tasks_served(annotations):
    """Registered tasks whose targets can be made from these annotations."""
    from keras_cv_course.tasks import get_task, list_tasks

    return [task for task in list_tasks() if set(get_task(task).annotations) <= set(annotations)]


def check_serves(name, annotations, task):
    """Raises a one-line error when the dataset lacks the task's annotations."""
    if not set(task.annotations) <= set(annotations):
        raise KCCError(f"dataset {name!r} serves tasks {tasks_served(annotations)}, "
                       f"got task {task.name!r}")


def bundle_from_source(name, source, task, seed):
    """Splits a ``Source`` (stratified by its labels) into a task's ``DataBundle``."""
    parts = embedded.split_indices(source.annotations["labels"], seed)

    def annotations_of(indices):
        return {k: source.annotations[k][indices] for k in task.annotations}

    class_names = task.classes_from(source.class_names, lambda: annotations_of(parts["train"]))
    splits = {key: task.examples_from(source.images[indices], annotations_of(indices),
                                      class_names)
              for key, indices in parts.items()}
    attributes = {key: {name: values[indices] for name, values in source.attributes.items()}
                  for key, indices in parts.items()} if source.attributes else None
    return DataBundle.from_arrays(name, task.name, splits, len(class_names), class_names,
                                  attributes)


def _digits(image_size, channels):
    images, labels = embedded.digits_arrays(image_size, channels)
    return Source(images, {"labels": labels}, {"labels": tuple(str(d) for d in range(10))})


def _shapes(image_size, channels, seed, num_examples):
    if image_size[0] != image_size[1]:
        raise KCCError(f"shapes images are square, got image_size {tuple(image_size)}")
    raw = embedded.generate_shapes(num_examples, image_size[0], seed=seed)
    images = raw["images"] if channels == 3 else raw["images"].mean(-1, keepdims=True)
    annotations = {
        "labels": raw["labels"],
        "semantic_masks": raw["semantic_masks"],
        "boxes": pad_ragged(raw["boxes"], dtype="float32"),
        "classes": pad_ragged(raw["classes"], dtype="int32"),
        "instance_masks": pad_ragged(raw["instance_masks"], pad_value=0, dtype="uint8"),
        "captions": np.asarray(raw["captions"]),
    }
    names = tuple(embedded.SHAPE_CLASSES)
    class_names = {"labels": names, "classes": names,
                   "semantic_masks": ("background", *names)}
    attributes = {"colour": raw["colours"], "shape": np.asarray(names)[raw["labels"]],
                  "size": np.where(raw["radii"] >= SHAPES_SIZE_THRESHOLD, "large", "small")}
    return Source(images.astype("float32"), annotations, class_names, attributes)


def datasheet(name):
    """The datasheet (Markdown) of an embedded dataset."""
    if name not in EMBEDDED_ANNOTATIONS:
        raise unknown_name_error("embedded dataset", name, EMBEDDED_ANNOTATIONS)
    with open(os.path.join(DATASHEET_DIR, f"{name}.md"), encoding="utf-8") as handle:
        return handle.read()
