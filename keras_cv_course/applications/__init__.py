"""The model zoo. Importing it registers every model.

Every module in the task folders (``classification``, ``segmentation``,
``generative``, ...) is imported once here, and each registers its variants
with ``register``. Model code uses ``keras.layers`` and ``keras.ops`` only,
so it imports and builds without TensorFlow, under any Keras backend.
"""

import importlib
import pkgutil

from keras_cv_course.applications.flops import flops
from keras_cv_course.applications.registry import (
    EXPORT_FORMATS,
    TASKS,
    ModelInfo,
    build,
    build_full,
    build_tiny,
    get_info,
    list_models,
    parameter_count,
    register,
)

TASK_PACKAGES = ("classification", "segmentation", "generative")


def _import_model_modules():
    for package_name in TASK_PACKAGES:
        package = importlib.import_module(f"{__name__}.{package_name}")
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{module.name}")


_import_model_modules()

__all__ = [
    "EXPORT_FORMATS",
    "TASKS",
    "ModelInfo",
    "build",
    "build_full",
    "build_tiny",
    "flops",
    "get_info",
    "list_models",
    "parameter_count",
    "register",
]
