"""The task contract is an extension point: a task from outside the package runs end to end.

``tests/toy_task.py`` registers a task (regress a shape's centre) and a model
with no edit to package code. Here it goes through the shared harness,
``train``, ``evaluate``, ``export`` and the CLI. The last test checks the
package itself: outside ``tasks/`` no code compares a task's name.
"""

import ast
import os

import numpy as np
import pytest

from keras_cv_course import applications, tasks
from keras_cv_course.cli import main
from keras_cv_course.data import load_dataset, tasks_served
from keras_cv_course.errors import KCCError
from keras_cv_course.evaluation import evaluate_run
from keras_cv_course.export import export, load_runner
from keras_cv_course.training import train
from tests import toy_task
from tests.harness import run_model_checks

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "keras_cv_course")


@pytest.fixture(scope="module")
def toy():
    remove = toy_task.register_toy()
    yield toy_task
    remove()


@pytest.fixture(scope="module")
def toy_run(toy, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("toy") / "run")
    return train(toy.MODEL_NAME, "shapes", out, config="tiny", epochs=8, batch_size=32,
                 learning_rate=3e-3, augment="flip", verbose=0, width=8, hidden=32)


def test_toy_task_is_discovered_by_data_registry_and_cli(toy, capsys):
    assert toy.TASK_NAME in tasks.list_tasks()
    assert toy.TASK_NAME in tasks_served(["labels", "boxes"])
    assert toy.TASK_NAME not in tasks_served(["labels"])
    assert applications.list_models(task=toy.TASK_NAME) == [toy.MODEL_NAME]
    assert main(["models", "--task", toy.TASK_NAME]) == 0
    assert toy.MODEL_NAME in capsys.readouterr().out
    bundle = load_dataset("shapes", task=toy.TASK_NAME, num_examples=40)
    images, centres = bundle.arrays["train"]
    assert centres.shape == (len(images), 2) and centres.dtype == np.float32
    assert 0 < centres.min() and centres.max() < 1


def test_toy_model_passes_the_shared_harness(toy, tmp_path):
    run_model_checks(toy.MODEL_NAME, str(tmp_path))


def test_toy_task_trains_evaluates_and_beats_the_mean(toy_run):
    bundle = load_dataset("shapes", task=toy_task.TASK_NAME)
    train_centres = bundle.arrays["train"][1]
    test_centres = bundle.arrays["test"][1]
    baseline = np.mean(np.abs(test_centres - train_centres.mean(axis=0)))
    error = toy_run.metrics["mean_absolute_error"]
    assert error < 0.5 * baseline, (error, baseline)
    again = evaluate_run(toy_run.path)
    assert again["mean_absolute_error"] == pytest.approx(error, rel=1e-5)


def test_toy_task_exports_with_its_postprocessing(toy_run, tmp_path):
    out = str(tmp_path / "export")
    manifest = export(toy_run.path, out)
    assert manifest["task"] == toy_task.TASK_NAME
    assert sorted(manifest["outputs"]) == ["centre", "centre_pixels"]
    images = load_dataset("shapes", task=toy_task.TASK_NAME).arrays["test"][0][:5]
    expected = np.asarray(toy_run.model(images)) * 32.0
    for fmt, entry in manifest["artifacts"].items():
        outputs = load_runner(fmt, os.path.join(out, entry["path"]))(images)
        np.testing.assert_allclose(outputs["centre_pixels"], expected, atol=1e-3)


def test_toy_task_through_the_cli(toy_run, capsys):
    assert main(["evaluate", toy_run.path]) == 0
    assert "centre_regression headline: mean_absolute_error=" in capsys.readouterr().out


def test_toy_task_writes_its_image_summaries(toy_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(os.path.join(toy_run.path, "logs", "images"),
                              size_guidance={"tensors": 0})
    events.Reload()
    assert "predicted_centres" in events.Tags()["tensors"]


def test_unknown_augmentation_names_the_valid_ones(toy, tmp_path):
    with pytest.raises(KCCError, match="valid: none, flip"):
        train(toy.MODEL_NAME, "shapes", str(tmp_path / "x"), config="tiny", epochs=1,
              augment="mixup")
    assert not os.path.exists(tmp_path / "x")


def _task_name_comparisons(source, names):
    """(line, text) of every comparison in Python ``source`` that involves a task name.

    A task name is a string constant naming a task, or an operand called
    ``task`` (a variable or an attribute such as ``info.task``) compared with
    anything but ``None``.
    """
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        constants = [sub.value for part in operands for sub in ast.walk(part)
                     if isinstance(sub, ast.Constant)]
        called_task = any(_called_task(operand) for operand in operands)
        with_none = any(isinstance(op, ast.Constant) and op.value is None for op in operands)
        if (called_task and not with_none) or any(value in names for value in constants):
            found.append((node.lineno, ast.unparse(node)))
    return found


def _called_task(node):
    return ((isinstance(node, ast.Name) and node.id == "task")
            or (isinstance(node, ast.Attribute) and node.attr == "task"))


def test_the_search_finds_comparisons_of_task_names():
    names = {"segmentation", "classification"}
    source = ('if task == "segmentation":\n    pass\n'
              'ok = info.task in ("classification", "x")\nname = "segmentation"\n'
              'same = bundle.task != info.task\nkeep = [n for n in ns if r[n].task == task]\n'
              'fine = info.task_count == 2\nalso = task is not None\n'
              'fine_too = set(task.annotations) <= set(seen)\n')
    assert [line for line, _ in _task_name_comparisons(source, names)] == [1, 3, 5, 6]


def test_no_code_outside_tasks_compares_a_task_name():
    names = set(tasks.list_tasks())
    offenders = []
    for root, _, files in os.walk(PACKAGE):
        if os.path.join(PACKAGE, "tasks") in root:
            continue
        for file in files:
            if file.endswith(".py"):
                path = os.path.join(root, file)
                with open(path, encoding="utf-8") as handle:
                    hits = _task_name_comparisons(handle.read(), names)
                offenders += [(os.path.relpath(path, PACKAGE), *hit) for hit in hits]
    assert not offenders, offenders


class TwoOptimizerTask(toy_task.CentreTask):
    """Compiles with two optimizers, as a GAN's task does (one per player)."""

    name = "test_two_optimizers"

    def compile(self, model, info=None, bundle=None, make_optimizer=None, jit_compile="auto",
                augmentation=None, steps_per_execution=1):
        super().compile(model, info, bundle, make_optimizer, jit_compile, augmentation,
                        steps_per_execution)
        model.second_optimizer = make_optimizer()
        return model


def test_compile_can_make_one_optimizer_per_player(tmp_path):
    tasks.register_task(TwoOptimizerTask())
    applications.register("test_two_player_net", toy_task.centre_net,
                          task=TwoOptimizerTask.name, family="test", paper="-",
                          reference_params=None, params_source="-")
    try:
        run = train("test_two_player_net", "shapes", str(tmp_path / "run"), epochs=1,
                    optimizer="sgd", learning_rate=0.02, schedule="cosine", verbose=0, width=2,
                    hidden=4)
        first, second = run.model.optimizer, run.model.second_optimizer
        assert first is not second and type(second).__name__ == "SGD"
        assert second.get_config()["learning_rate"] == first.get_config()["learning_rate"]
    finally:
        applications.unregister("test_two_player_net")
        tasks.unregister_task(TwoOptimizerTask.name)


def test_data_of_another_task_is_one_line_and_writes_nothing(tmp_path):
    digits = load_dataset("digits", image_size=(16, 16))
    with pytest.raises(KCCError, match="model 'fcn8s' needs segmentation data, "
                                       "got classification data"):
        train("fcn8s", digits, str(tmp_path / "run"), config="tiny", epochs=1)
    assert not os.path.exists(tmp_path / "run")
