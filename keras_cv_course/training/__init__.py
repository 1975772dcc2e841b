"""Training: strategies, callbacks and the ``train`` entry point.

Run folders live in ``keras_cv_course.runs`` and evaluation in
``keras_cv_course.evaluation``; both are re-exported here for convenience.
"""

from keras_cv_course.evaluation import evaluate_model, evaluate_run
from keras_cv_course.runs import RunFolder, load_keras_file, load_run
from keras_cv_course.training.strategies import STRATEGIES, get_strategy
from keras_cv_course.training.train import Run, build_for_data, check_model_fits_data, train

__all__ = [
    "STRATEGIES",
    "Run",
    "RunFolder",
    "build_for_data",
    "check_model_fits_data",
    "evaluate_model",
    "evaluate_run",
    "get_strategy",
    "load_keras_file",
    "load_run",
    "train",
]
