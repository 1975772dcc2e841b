"""Evaluation: a model's metrics on a split, as its task defines them.

``evaluate_model`` batches a split and asks the task for its metrics;
``evaluate_run`` does the same for a run folder. ``kcc evaluate`` reads
its metrics from here, and so should anything that gates on a task metric.
"""

from keras_cv_course.data import pipeline
from keras_cv_course.runs import load_run


def evaluate_model(model, bundle, batch_size=64, split="test", augmentation=None):
    """Evaluates a compiled model on one split of a bundle; returns ``{metric: value}``.

    Args:
        model: a compiled Keras model.
        bundle: the ``DataBundle``.
        batch_size: evaluation batch size.
        split: ``"train"``, ``"val"`` or ``"test"``.
        augmentation: the run's ``Augmentation``; its ``target_map`` (e.g.
            one-hot labels) shapes the targets as in training.
    """
    from keras_cv_course.tasks import get_task

    target_map = augmentation.target_map if augmentation is not None else None
    dataset = pipeline(getattr(bundle, split), batch_size, target_map=target_map)
    return get_task(bundle.task).evaluate(model, dataset)


def evaluate_run(path, batch_size=64):
    """Reloads a run's final model and data and evaluates it on the test split."""
    run = load_run(path)
    policy = run.config.get("augment")
    if policy == "custom":  # a callable cannot be rebuilt, and it mapped no targets
        policy = None
    augmentation = run.task.augmentation(policy, run.bundle, run.config.get("seed", 0))
    return evaluate_model(run.model, run.bundle, batch_size, augmentation=augmentation)
