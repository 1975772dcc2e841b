"""``kcc quickstart --task T``: each task's main job reaches its target with every artifact."""

import pytest

from keras_cv_course.quickstart import recipe_of, run_quickstart, tasks_with_quickstart


def test_classification_and_segmentation_have_a_quickstart():
    assert {"classification", "segmentation"} <= set(tasks_with_quickstart())


@pytest.mark.parametrize("task", tasks_with_quickstart())
def test_quickstart_trains_exports_and_agrees(task, tmp_path):
    recipe = recipe_of(task)
    lines = []
    rows, passed = run_quickstart(task, out=str(tmp_path / "quickstart"), verbose=0,
                                  log=lines.append)
    assert [row["format"] for row in rows] == ["keras", "savedmodel", "tflite", "onnx",
                                               "tflite int8"]
    scores = [row[recipe.metric] for row in rows]
    assert min(scores) >= recipe.target, rows
    assert max(scores[:4]) - min(scores[:4]) <= recipe.max_spread, rows
    assert rows[-1]["bytes"] < 0.5 * rows[2]["bytes"] and rows[-1]["agreement"] >= 0.95
    assert passed and lines[-1].splitlines()[-1].startswith("PASS")
    assert f"test {recipe.metric.replace('_', ' ')}" in lines[-1]
