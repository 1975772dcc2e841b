"""Test setup shared by every test.

TensorFlow must see two logical CPU devices before it initialises, so that
``MirroredStrategy`` really splits each batch across two replicas.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


@pytest.fixture(scope="session")
def full_size_stats():
    """Parameter counts (and GMACs) of every full-size model, built once per session."""
    from keras_cv_course.applications import catalog

    return catalog.full_size_stats()
