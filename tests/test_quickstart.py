"""The README's main job: ``kcc quickstart`` reaches 97% with every artifact."""

from keras_cv_course.quickstart import MAX_SPREAD, TARGET_ACCURACY, run_quickstart


def test_quickstart_trains_exports_and_agrees(tmp_path):
    lines = []
    rows, passed = run_quickstart(out=str(tmp_path / "quickstart"), verbose=0, log=lines.append)
    assert [row["format"] for row in rows] == ["keras", "savedmodel", "tflite", "onnx"]
    accuracies = [row["accuracy"] for row in rows]
    assert min(accuracies) >= TARGET_ACCURACY
    assert max(accuracies) - min(accuracies) <= MAX_SPREAD
    assert passed and "PASS" in lines[-1]
