"""The README's commands and generated model table stay current."""

import os

from keras_cv_course import applications
from keras_cv_course.applications import catalog

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def _readme():
    with open(README, encoding="utf-8") as handle:
        return handle.read()


def test_model_table_is_current(full_size_stats):
    text = _readme()
    stats = {name: full_size_stats(name) for name in applications.list_models()}
    assert catalog.replace_table(text, stats) == text, (
        "README model table is stale: run python scripts/make_readme_table.py")


def test_two_commands_come_first():
    text = _readme()
    first_blocks = text.split("```bash")[1:3]
    assert "pip install -e . && kcc quickstart" in first_blocks[0]
    assert 'pip install -e ".[test]" && pytest' in first_blocks[1]


def test_ci_runs_the_readme_commands():
    with open(os.path.join(os.path.dirname(README), ".ci", "run"), encoding="utf-8") as handle:
        script = handle.read()
    assert "pip install -e ." in script and 'pip install -e ".[test]"' in script
    assert "pytest" in script
    assert 'pip install -e ".[docs]"' in script and "mkdocs build --strict" in script
