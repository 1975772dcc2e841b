"""The model zoo. Importing it registers every model.

Every module in every sub-package (``classification``, ``segmentation``,
``generative``, and any folder added later) is imported once here, and each
registers its variants with ``register_family``. Model code uses
``keras.layers`` and ``keras.ops`` only, so it imports and builds without
TensorFlow, under any Keras backend.
"""

import importlib
import pkgutil

from keras_cv_course.applications.backbones import backbone, backbone_features, has_backbone
from keras_cv_course.applications.flops import flops
from keras_cv_course.applications.registry import (
    CONFIGS,
    EXPORT_FORMATS,
    ModelInfo,
    build,
    build_config,
    build_full,
    build_tiny,
    get_info,
    list_models,
    parameter_count,
    register,
    register_family,
    unregister,
)


def _import_model_modules():
    """Imports every module of every model package in this folder."""
    for package_info in pkgutil.iter_modules(__path__):
        if not package_info.ispkg:
            continue
        package = importlib.import_module(f"{__name__}.{package_info.name}")
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{module.name}")


_import_model_modules()

__all__ = [
    "CONFIGS",
    "EXPORT_FORMATS",
    "ModelInfo",
    "backbone",
    "backbone_features",
    "build",
    "build_config",
    "build_full",
    "build_tiny",
    "flops",
    "get_info",
    "has_backbone",
    "list_models",
    "parameter_count",
    "register",
    "register_family",
    "unregister",
]
