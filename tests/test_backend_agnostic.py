"""Model code needs neither TensorFlow nor the TensorFlow backend."""

import os
import subprocess
import sys

from keras_cv_course import applications

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_model_builds_under_jax_with_tensorflow_blocked():
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", "drivers", "jax_without_tensorflow.py")],
        capture_output=True, text=True, timeout=900,
        env={**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu",
             # Every new weight shape compiles a random initializer under JAX; at XLA's
             # lowest optimisation level that compile is 4-6x faster. Speed of the
             # compiled code does not matter here.
             "XLA_FLAGS": "--xla_backend_optimization_level=0 "
                          "--xla_llvm_disable_expensive_passes=true"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"OK {len(applications.list_models())}" in result.stdout
