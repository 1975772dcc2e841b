"""Every tutorial runs, follows the format, and every task has one.

A tutorial is a jupytext percent-format script in ``tutorials/`` (it opens as
a notebook and diffs as code). Its first markdown cell names its lecture and
the tasks it trains (``# Lecture: ...`` and ``# Tasks: ...``), and it ends
with an exercise. The suite runs each one as a script with ``KCC_FAST=1``,
which shrinks epochs and samples but runs the same code; the asserts inside a
tutorial check what its text claims.
"""

import glob
import os
import re
import subprocess
import sys

import pytest

from keras_cv_course import tasks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TUTORIALS = sorted(glob.glob(os.path.join(ROOT, "tutorials", "[0-9][0-9]_*.py")))
HEADER = "# ---\n# jupyter:\n#   jupytext:\n"


def _read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def tutorial_tasks(text):
    """The task names on a tutorial's ``# Tasks:`` line (``none`` gives none)."""
    match = re.search(r"^# Tasks: (.+)$", text, re.MULTILINE)
    assert match, "a tutorial names its tasks on a '# Tasks: ...' line"
    names = [name.strip() for name in match.group(1).split(",")]
    return [] if names == ["none"] else names


def package_tasks():
    """The tasks the package itself registers (tests may register toy ones)."""
    return [name for name in tasks.list_tasks()
            if type(tasks.get_task(name)).__module__.startswith("keras_cv_course.")]


def test_there_is_a_tutorial_per_lecture():
    assert len(TUTORIALS) >= 9


def test_every_registered_task_has_a_tutorial():
    covered = {name for path in TUTORIALS for name in tutorial_tasks(_read(path))}
    missing = sorted(set(package_tasks()) - covered)
    assert not missing, f"tasks without a tutorial in tutorials/: {missing}"


def test_the_task_check_fails_for_a_task_without_a_tutorial():
    class LonelyTask(tasks.Task):
        name = "lonely_task_without_tutorial"

    tasks.register_task(LonelyTask())
    try:
        LonelyTask.__module__ = "keras_cv_course.tasks.lonely"
        with pytest.raises(AssertionError, match="lonely_task_without_tutorial"):
            test_every_registered_task_has_a_tutorial()
    finally:
        tasks.unregister_task(LonelyTask.name)


@pytest.mark.parametrize("path", TUTORIALS, ids=os.path.basename)
def test_tutorial_format(path):
    text = _read(path)
    assert text.startswith(HEADER) and "format_name: percent" in text
    first_cell = text.split("# %%")[1]
    assert first_cell.startswith(" [markdown]\n# # "), "starts with a markdown title"
    assert re.search(r"^# Lecture: \S", first_cell, re.MULTILINE)
    for name in tutorial_tasks(first_cell):
        assert name in tasks.list_tasks(), f"unknown task {name!r}"
    last_cell = text.split("# %%")[-1]
    assert last_cell.startswith(" [markdown]") and "## Exercise" in last_cell
    assert 'os.environ.get("KCC_FAST")' in text


@pytest.mark.parametrize("path", TUTORIALS, ids=os.path.basename)
def test_tutorial_runs(path, tmp_path):
    env = {**os.environ, "KCC_FAST": "1", "MPLBACKEND": "Agg", "TF_CPP_MIN_LOG_LEVEL": "2",
           "KCC_TUTORIAL_OUT": str(tmp_path)}
    done = subprocess.run([sys.executable, path], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"{os.path.basename(path)} failed:\n{done.stderr[-3000:]}"
