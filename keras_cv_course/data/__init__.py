"""Datasets: embedded (offline), TensorFlow Datasets, and image folders.

One entry point, ``load_dataset(name, task, ...)``, returns a ``DataBundle``;
``pipeline`` batches one of its splits for ``model.fit``.

Names: ``digits``, ``shapes`` (embedded), ``cifar10``, ``mnist``,
``fashion_mnist``, ``imagenette``, ``oxford_iiit_pet`` (TFDS), and
``folder:PATH`` for a folder with one sub-folder per class.
"""

from keras_cv_course.data.bundle import DataBundle, pipeline
from keras_cv_course.data.loaders import DATASETS, datasheet, load_dataset

__all__ = ["DATASETS", "DataBundle", "datasheet", "load_dataset", "pipeline"]
