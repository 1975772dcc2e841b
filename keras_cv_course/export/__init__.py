"""Export: SavedModel, TFLite and ONNX through one verified path.

``export(model_or_run, out_dir, formats, quantize=MODE)`` writes the
artifacts, a ``manifest.json`` and (for runs) a model card;
``load_runner(fmt, path)`` runs an artifact; ``bench_run`` measures them.
"""

from keras_cv_course.export.api import (
    FILE_NAMES,
    default_folder,
    export,
    golden_inputs,
    serving_function,
    verify_artifact,
)
from keras_cv_course.export.bench import bench_run, write_bench
from keras_cv_course.export.model_card import write_card_for_export
from keras_cv_course.export.quantize import QUANTIZE_MODES, QuantizeOptions
from keras_cv_course.export.runners import load_runner, run_in_batches
from keras_cv_course.tasks.base import parity_error

__all__ = ["FILE_NAMES", "QUANTIZE_MODES", "QuantizeOptions", "bench_run", "default_folder",
           "export", "golden_inputs", "load_runner", "parity_error", "run_in_batches",
           "serving_function", "verify_artifact", "write_bench", "write_card_for_export"]
