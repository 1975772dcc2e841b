"""Test setup shared by every test.

TensorFlow must see two logical CPU devices before it initialises, so that
``MirroredStrategy`` really splits each batch across two replicas.
"""

import fcntl
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # why: keras_cv_course/__init__.py

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


def _run_folder(request, tmp_path_factory):
    """A temporary folder of this test run, shared by its pytest-xdist workers."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if hasattr(request.config, "workerinput") else base


@pytest.fixture(scope="session")
def full_size_stats(request, tmp_path_factory):
    """``stats(name)``: parameters and GMACs of a full-size model, built once per test run.

    Each model is built by the first test (on any pytest-xdist worker) that
    asks for it, and its numbers are left in the run's shared temporary
    folder for the others; a per-model lock keeps two workers from building
    the same model, while they build different ones side by side.
    """
    from keras_cv_course.applications import catalog

    cache = _run_folder(request, tmp_path_factory) / "full_size_stats"
    cache.mkdir(exist_ok=True)

    def stats(name):
        path = cache / f"{name}.json"
        with open(cache / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not path.exists():
                path.write_text(json.dumps(catalog.full_size_stats([name])[name]))
        return json.loads(path.read_text())

    return stats


@pytest.fixture(scope="session")
def claim_architecture(request, tmp_path_factory):
    """``claim(fingerprint, name)``: the first model name that claimed an architecture.

    Variants whose tiny configs build the very same network (ViT-S/16 and
    ViT-B/16 shrunk to one tiny size, say) need the expensive harness steps
    once. Claims are shared by the pytest-xdist workers through a locked
    JSON file in the run's temporary folder.
    """
    shared = _run_folder(request, tmp_path_factory)
    path = shared / "architecture_claims.json"

    def claim(fingerprint, name):
        with open(shared / "architecture_claims.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            claims = json.loads(path.read_text()) if path.exists() else {}
            owner = claims.setdefault(fingerprint, name)
            path.write_text(json.dumps(claims))
        return owner

    return claim
