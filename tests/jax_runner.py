"""Runs a Python snippet in a fresh process on the JAX backend, on the CPU.

The backend is chosen when Keras is first imported, so a test that needs
JAX while the suite runs on TensorFlow starts a new interpreter.
"""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Every new weight shape compiles a random initializer under JAX; at XLA's lowest
# optimisation level that compile is several times faster. Speed of the compiled
# code does not matter for a correctness check.
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


def run_on_jax(script, timeout=300, fast_compile=False):
    """Runs ``script`` (``-c`` source, or a file path ending in ``.py``) under JAX.

    Returns:
        Its standard output; a failing script fails the calling test with
        the end of its standard error.
    """
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": ROOT, "JAX_PLATFORMS": "cpu"}
    if fast_compile:
        env["XLA_FLAGS"] = FAST_COMPILE
    command = [sys.executable, script] if script.endswith(".py") else [sys.executable, "-c",
                                                                        script]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout
