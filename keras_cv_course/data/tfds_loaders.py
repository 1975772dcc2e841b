"""Public datasets through TensorFlow Datasets (``tfds.load``).

These need the internet (or a prepared ``data_dir``) on first use. Tests run
them under ``tfds.testing.mock_data``, which fakes the records.
"""

import tensorflow as tf

from keras_cv_course.data.bundle import DataBundle, resize_and_format

# name -> (train split, val split, test split, image key, target key, default size)
TFDS_SPECS = {
    "cifar10": ("train[:90%]", "train[90%:]", "test", "image", "label", (32, 32)),
    "mnist": ("train[:90%]", "train[90%:]", "test", "image", "label", (28, 28)),
    "fashion_mnist": ("train[:90%]", "train[90%:]", "test", "image", "label", (28, 28)),
    "imagenette": ("train[:90%]", "train[90%:]", "validation", "image", "label", (160, 160)),
    "oxford_iiit_pet": ("train[:90%]", "train[90%:]", "test", "image", "label", (128, 128)),
}
SEGMENTATION_TARGETS = {"oxford_iiit_pet": ("segmentation_mask", ("pet", "background", "border"))}


def supported_tasks(name):
    """Tasks a TFDS dataset can serve."""
    tasks = ["classification", "generative"]
    if name in SEGMENTATION_TARGETS:
        tasks.append("segmentation")
    return tasks


def load_tfds(name, task, image_size=None, channels=None, data_dir=None):
    """Loads a TFDS dataset into a ``DataBundle``.

    Args:
        name: a key of ``TFDS_SPECS``.
        task: ``"classification"``, ``"generative"``, or ``"segmentation"``
            for oxford_iiit_pet (its trimap, classes pet/background/border).
        image_size: ``(height, width)``; defaults to the dataset's usual size.
        channels: 1 or 3; defaults to the dataset's own.
        data_dir: TFDS data folder.
    """
    import tensorflow_datasets as tfds

    train_split, val_split, test_split, image_key, label_key, default_size = TFDS_SPECS[name]
    image_size = tuple(image_size or default_size)
    splits, info = tfds.load(name, split=[train_split, val_split, test_split],
                             data_dir=data_dir, with_info=True)
    if task == "segmentation":
        mask_key, class_names = SEGMENTATION_TARGETS[name]
        num_classes = len(class_names)
    else:
        mask_key = None
        class_names = tuple(info.features[label_key].names)
        num_classes = len(class_names)
    channels = channels or info.features[image_key].shape[-1]

    def convert(example):
        image = resize_and_format(example[image_key], image_size, channels)
        if task == "generative":
            return image
        if task == "segmentation":
            # Trimap values are 1, 2, 3: shift to class ids 0, 1, 2.
            mask = tf.image.resize(example[mask_key], image_size, method="nearest")
            return image, tf.cast(mask[..., 0], tf.int32) - 1
        return image, tf.cast(example[label_key], tf.int32)

    train, val, test = (split.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
                        for split in splits)
    return DataBundle(name=name, task=task, train=train, val=val, test=test,
                      image_shape=(*image_size, channels), num_classes=num_classes,
                      class_names=class_names)
