"""Datasets: embedded (offline), TensorFlow Datasets, and image folders.

One entry point, ``load_dataset(name, task, ...)``, returns a ``DataBundle``;
``pipeline`` batches one of its splits for ``model.fit``. A dataset serves
every task whose annotations it has (``loaders.py``).

Names: ``digits``, ``shapes`` (embedded), ``cifar10``, ``mnist``,
``fashion_mnist``, ``imagenette``, ``oxford_iiit_pet`` (TFDS), and
``folder:PATH`` for a folder with one sub-folder per class.
"""

from keras_cv_course.data.bundle import PADDING, DataBundle, pad_ragged, pipeline, training_stream
from keras_cv_course.data.loaders import DATASETS, datasheet, load_dataset, tasks_served

__all__ = ["DATASETS", "PADDING", "DataBundle", "datasheet", "load_dataset", "pad_ragged",
           "pipeline", "tasks_served", "training_stream"]
