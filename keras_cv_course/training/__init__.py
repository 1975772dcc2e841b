"""Training: strategies, callbacks, run folders and the ``train`` entry point."""

from keras_cv_course.training.run_folder import RunFolder, load_keras_file
from keras_cv_course.training.strategies import STRATEGIES, get_strategy
from keras_cv_course.training.train import (
    Run,
    build_for_data,
    compile_for_task,
    evaluate_model,
    evaluate_run,
    train,
)

__all__ = [
    "STRATEGIES",
    "Run",
    "RunFolder",
    "build_for_data",
    "compile_for_task",
    "evaluate_model",
    "evaluate_run",
    "get_strategy",
    "load_keras_file",
    "train",
]
