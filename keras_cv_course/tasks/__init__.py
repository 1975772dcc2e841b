"""Tasks: everything that differs between classification, segmentation, generation, ...

A task object (a subclass of ``Task``) owns its input and target specs, the
validation of datasets, the synthetic batch of the test harness, how a model
compiles, its headline evaluation metrics, its TensorBoard summaries, its
augmentation rules, and its export rules (serving outputs, parity). The rest
of the package asks the task and never compares task names.

Every module in this folder is imported here and registers its task, so
adding a task is adding one file. ``CONTRIBUTING.md`` walks through it.

Example:
    >>> from keras_cv_course import tasks
    >>> tasks.list_tasks()
    ['captioning', 'classification', 'conditional_generative', 'detection', 'generative',
     'instance_segmentation', 'segmentation']
    >>> tasks.get_task("segmentation").headline_metrics
    ('mean_iou', 'accuracy')
"""

import importlib
import pkgutil

from keras_cv_course.tasks.base import Augmentation, Quickstart, Task
from keras_cv_course.tasks.registry import get_task, list_tasks, register_task, unregister_task

_INFRASTRUCTURE = ("base", "registry")


def _import_task_modules():
    for module in pkgutil.iter_modules(__path__):
        if module.name not in _INFRASTRUCTURE:
            importlib.import_module(f"{__name__}.{module.name}")


_import_task_modules()

__all__ = ["Augmentation", "Quickstart", "Task", "get_task", "list_tasks", "register_task",
           "unregister_task"]
