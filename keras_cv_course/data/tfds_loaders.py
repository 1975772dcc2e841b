"""Public datasets through TensorFlow Datasets (``tfds.load``).

These need the internet (or a prepared ``data_dir``) on first use. Tests run
them under ``tfds.testing.mock_data``, which fakes the records.

Each dataset maps TFDS features to the package's annotation names
(``labels``, ``semantic_masks``), and the task makes its targets from them,
so every task whose annotations a dataset has can load it.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from keras_cv_course.data.bundle import DataBundle, resize_and_format

TRIMAP_CLASSES = ("pet", "background", "border")


def _label(value, image_size):
    return tf.cast(value, tf.int32)


def _trimap(value, image_size):
    """Oxford-IIIT Pet trimaps hold 1, 2, 3: shifted to class ids 0, 1, 2."""
    mask = tf.image.resize(value, image_size, method="nearest")
    return tf.cast(mask[..., 0], tf.int32) - 1


def _boxes(objects, image_size):
    """TFDS ``BBoxFeature``: normalised ``[ymin, xmin, ymax, xmax]``, as the task's targets."""
    return tf.cast(objects["bbox"], tf.float32)


def _object_labels(objects, image_size):
    return tf.cast(objects["label"], tf.int32)


def _first_caption(captions, image_size):
    """COCO Captions has five captions per image; the first is the one trained on."""
    return captions["text"][0]


@dataclasses.dataclass(frozen=True)
class Annotation:
    """One annotation read from a TFDS feature.

    Attributes:
        feature: the TFDS feature key.
        convert: ``(value, image_size) -> tensor``, the annotation of one example.
        class_names: its classes; ``None`` takes the feature's own names.
        names_path: the path to the ``ClassLabel`` feature under ``feature``,
            for nested features (``("label",)`` under ``objects``).
    """

    feature: str
    convert: object
    class_names: tuple | None = None
    names_path: tuple = ()


@dataclasses.dataclass(frozen=True)
class TfdsSpec:
    """How one TFDS dataset becomes a bundle.

    Attributes:
        splits: TFDS split strings of train, val and test.
        image_key: the image feature.
        annotations: ``{annotation name: Annotation}``.
        default_size: ``(height, width)`` when none is asked for.
    """

    splits: tuple
    image_key: str
    annotations: dict
    default_size: tuple


_CLASSIFIER_SPLITS = ("train[:90%]", "train[90%:]", "test")
_LABELS = {"labels": Annotation("label", _label)}
_OBJECTS = {"boxes": Annotation("objects", _boxes),
            "classes": Annotation("objects", _object_labels, names_path=("label",))}
TFDS_SPECS = {
    "cifar10": TfdsSpec(_CLASSIFIER_SPLITS, "image", _LABELS, (32, 32)),
    "mnist": TfdsSpec(_CLASSIFIER_SPLITS, "image", _LABELS, (28, 28)),
    "fashion_mnist": TfdsSpec(_CLASSIFIER_SPLITS, "image", _LABELS, (28, 28)),
    "imagenette": TfdsSpec(("train[:90%]", "train[90%:]", "validation"), "image", _LABELS,
                           (160, 160)),
    "oxford_iiit_pet": TfdsSpec(_CLASSIFIER_SPLITS, "image",
                                {**_LABELS, "semantic_masks": Annotation(
                                    "segmentation_mask", _trimap, TRIMAP_CLASSES)},
                                (128, 128)),
    # Detection: every object's box and class. VOC's "difficult" and COCO's "crowd"
    # flags are not read: those boxes are ordinary objects here.
    "voc/2007": TfdsSpec(("train", "validation", "test"), "image", _OBJECTS, (320, 320)),
    "coco/2017": TfdsSpec(("train[1%:]", "train[:1%]", "validation"), "image", _OBJECTS,
                          (320, 320)),
    # Karpathy's splits: "val" and "test" hold 5,000 images each, "restval" is trained on.
    "coco_captions": TfdsSpec(("train+restval", "val", "test"), "image",
                              {"captions": Annotation("captions", _first_caption)}, (224, 224)),
}


def tfds_annotations(name):
    """The annotation names a TFDS dataset provides."""
    return tuple(TFDS_SPECS[name].annotations)


def load_tfds(name, task, image_size=None, channels=None, data_dir=None):
    """Loads a TFDS dataset into a ``DataBundle`` for ``task`` (a task object).

    Args:
        name: a key of ``TFDS_SPECS``.
        task: the task; its ``annotations`` pick the features to read.
        image_size: ``(height, width)``; defaults to the dataset's usual size.
        channels: 1 or 3; defaults to the dataset's own.
        data_dir: TFDS data folder.
    """
    import tensorflow_datasets as tfds

    spec = TFDS_SPECS[name]
    image_size = tuple(image_size or spec.default_size)
    splits, info = tfds.load(name, split=list(spec.splits), data_dir=data_dir, with_info=True)
    channels = channels or info.features[spec.image_key].shape[-1]

    def annotations_of(example):
        return {key: spec.annotations[key].convert(example[spec.annotations[key].feature],
                                                   image_size) for key in task.annotations}

    def read_training_annotations():
        rows = list(splits[0].map(annotations_of).as_numpy_iterator())
        return {key: np.asarray([row[key] for row in rows]) for key in task.annotations}

    known = {task.class_annotation: _class_names(info, spec, task)}
    class_names = task.classes_from(known, read_training_annotations)

    def convert(example):
        image = resize_and_format(example[spec.image_key], image_size, channels)
        inputs, targets = task.examples_from(image, annotations_of(example), class_names)
        return inputs if targets is None else (inputs, targets)

    train, val, test = (split.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
                        for split in splits)
    bundle = DataBundle(name=name, task=task.name, train=train, val=val, test=test,
                        num_classes=len(class_names), class_names=class_names)
    task.validate(bundle)
    return bundle


def _class_names(info, spec, task):
    if task.class_annotation is None:
        return ()
    annotation = spec.annotations[task.class_annotation]
    if annotation.class_names:
        return annotation.class_names
    feature = info.features[annotation.feature]
    for key in annotation.names_path:
        feature = feature[key]
    return tuple(feature.names)
