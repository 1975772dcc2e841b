"""Test setup shared by every test.

TensorFlow must see two logical CPU devices before it initialises, so that
``MirroredStrategy`` really splits each batch across two replicas.
"""

import fcntl
import json
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
def full_size_stats(request, tmp_path_factory):
    """Parameters and GMACs of every full-size model, built once per test run.

    Under pytest-xdist the first worker to ask builds them and leaves a JSON
    file in the run's shared temporary folder; the other worker reads it.
    """
    from keras_cv_course.applications import catalog

    if not hasattr(request.config, "workerinput"):  # a plain, single-process run
        return catalog.full_size_stats()
    shared = tmp_path_factory.getbasetemp().parent  # one folder per run, shared by workers
    cache = shared / "full_size_stats.json"
    with open(shared / "full_size_stats.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not cache.exists():
            cache.write_text(json.dumps(catalog.full_size_stats()))
        return json.loads(cache.read_text())
