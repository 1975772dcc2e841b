"""Export: SavedModel, TFLite and ONNX through one verified path.

``export(model_or_run, out_dir, formats)`` writes the artifacts and a
``manifest.json``; ``load_runner(fmt, path)`` runs an artifact.
"""

from keras_cv_course.export.api import (
    FILE_NAMES,
    export,
    golden_inputs,
    serving_function,
    verify_artifact,
)
from keras_cv_course.export.runners import load_runner, run_in_batches
from keras_cv_course.tasks.base import parity_error

__all__ = ["FILE_NAMES", "export", "golden_inputs", "load_runner", "parity_error",
           "run_in_batches", "serving_function", "verify_artifact"]
