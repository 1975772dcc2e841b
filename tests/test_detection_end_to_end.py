"""One detector, trained once on ``shapes``, through every step a user takes.

``kcc train`` (the library call), ``kcc evaluate`` (COCO metrics), TensorBoard
boxes, the end-to-end export (decode and NMS in the graph, batch 1, builtin
NMS ops), the artifacts run where TensorFlow cannot be imported and match
Keras' detections, and ``kcc predict`` draws boxes, from Keras and from an
artifact. Every registered detector also goes through the shared harness
(``tests/test_models.py``) on synthetic boxes.
"""

import glob
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_cv_course.edge import read_result
from keras_cv_course.evaluation import evaluate_run
from keras_cv_course.export import export
from keras_cv_course.export.api import serving_function
from keras_cv_course.runs import load_run
from keras_cv_course.tasks import get_task
from keras_cv_course.training import train

MODEL = "yolo_v1"
EPOCHS = 12
TASK = get_task("detection")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("detection") / "run")
    train(MODEL, "shapes", out, config="tiny", epochs=EPOCHS, batch_size=32,
          learning_rate=1e-3, augment="flip", verbose=0)
    return out


@pytest.fixture(scope="module")
def exported(trained_run):
    return export(trained_run, formats=("tflite", "onnx"),
                  serving_options={"max_detections": 10})


def test_training_learns_to_detect(trained_run):
    metrics = evaluate_run(trained_run)
    assert metrics["voc_map50"] > 0.3 and metrics["ap50"] > 0.3, metrics
    assert set(TASK.headline_metrics) <= set(metrics)


def test_tensorboard_draws_boxes(trained_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(os.path.join(trained_run, "logs", "images"),
                              size_guidance={"tensors": 0})
    events.Reload()
    assert "detections" in events.Tags()["tensors"]
    pictures = events.Tensors("detections")
    assert len(pictures) == EPOCHS


def test_end_to_end_export_has_builtin_nms(exported):
    tflite, onnx = exported["artifacts"]["tflite"], exported["artifacts"]["onnx"]
    assert tflite["ops"].get("NON_MAX_SUPPRESSION_V5") == 1, tflite["ops"]
    assert onnx["ops"].get("NonMaxSuppression") == 1, onnx["ops"]
    assert exported["serving_options"] == {"max_detections": 10}
    for entry in (tflite, onnx):
        assert entry["parity"]["passed"], entry["parity"]
    assert exported["outputs"]["boxes"]["shape"][1:] == [10, 4]


def test_artifacts_run_without_tensorflow_and_match_keras(trained_run, exported, tmp_path):
    run = load_run(trained_run)
    images = run.bundle.arrays["test"][0][:16]
    serve = serving_function(run.model, TASK)
    np.savez(tmp_path / "inputs.npz", images=images)
    expected = {key: np.asarray(value) for key, value in serve({"images": images}).items()}
    assert expected["num_detections"].sum() > 0
    expected = {key: value[:, :10] if value.ndim > 1 and key != "raw_detections" else value
                for key, value in expected.items()}
    for fmt in ("tflite", "onnx"):
        result = tmp_path / f"{fmt}.npz"
        done = subprocess.run(
            [sys.executable, "-m", "keras_cv_course.edge", "--artifact",
             os.path.join(trained_run, "export", f"model.{fmt}"), "--format", fmt,
             "--inputs", str(tmp_path / "inputs.npz"), "--runs", "2", "--warmup", "1",
             "--out", str(result)], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        meta, actual = read_result(str(result))
        checks = TASK.compare_outputs(actual, expected, 1e-4)
        assert all(check["passed"] for check in checks.values()), (fmt, checks)
        assert not meta["tensorflow_modules"] and not meta["tensorflow_importable"], meta


@pytest.mark.parametrize("artifact", [None, "model.tflite"])
def test_predict_draws_boxes(trained_run, exported, tmp_path, artifact):
    from PIL import Image

    run = load_run(trained_run)
    image = (run.bundle.arrays["test"][0][0] * 255).astype("uint8")
    Image.fromarray(image).save(tmp_path / "shape.png")
    command = [sys.executable, "-m", "keras_cv_course", "predict", trained_run,
               str(tmp_path / "shape.png"), "--out", str(tmp_path / "pictures")]
    if artifact:
        command += ["--artifact", os.path.join(trained_run, "export", artifact)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert any(name in done.stdout for name in ("circle", "square", "triangle")), done.stdout
    assert glob.glob(str(tmp_path / "pictures" / "*.png"))
