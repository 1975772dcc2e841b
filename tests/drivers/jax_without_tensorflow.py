"""Imports the model zoo with TensorFlow blocked and builds every model under JAX.

    KERAS_BACKEND=jax python tests/drivers/jax_without_tensorflow.py

Every registered model is built in its tiny config; the first model of each
family also runs a compiled forward pass of the network its task serves (a
GAN's generator, a diffusion model's denoiser) (each pass costs an XLA compile, and
variants of a family share their layers). Prints one line per model and
``OK <count>``; exits non-zero on any failure.
"""

import importlib.abc
import sys


class BlockTensorFlow(importlib.abc.MetaPathFinder):
    """Makes ``import tensorflow`` fail, as on a machine without it."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError(f"{name} is blocked for this test")
        return None


sys.meta_path.insert(0, BlockTensorFlow())

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_cv_course import applications  # noqa: E402
from keras_cv_course.tasks import get_task  # noqa: E402

assert keras.backend.backend() == "jax", keras.backend.backend()
names = applications.list_models()
families_run = set()
for name in names:
    model = applications.build_tiny(name)
    family = applications.get_info(name).family
    if family in families_run:
        print(name, "built")
        continue
    families_run.add(family)
    task = get_task(applications.get_info(name).task)
    served = task.serving_model(model)
    inputs, targets = task.synthetic_batch(served, batch_size=2)
    if applications.get_info(name).training == "memorize":
        model.memorize(inputs, targets)
    outputs = served.predict(inputs, verbose=0)  # one compiled call, not op-by-op
    flat = outputs.values() if isinstance(outputs, dict) else [outputs]
    assert all(np.all(np.isfinite(np.asarray(value))) for value in flat), name
    print(name, "built and ran")
assert not any(module.split(".")[0] == "tensorflow" for module in sys.modules)
print("OK", len(names))
