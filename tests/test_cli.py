"""The ``kcc`` command: each subcommand, and one-line errors without tracebacks."""

import json
import os
import subprocess
import sys

import pytest

from keras_cv_course.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _kcc(*args):
    return subprocess.run([sys.executable, "-m", "keras_cv_course", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": ROOT})


def test_models_table(capsys):
    assert main(["models", "--task", "segmentation"]) == 0
    out = capsys.readouterr().out
    assert "fcn8s" in out and "134,000,000" in out and "3 models" in out


def test_train_evaluate_export_round_trip(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["train", "mlp", "--data", "digits", "--epochs", "2", "--out", run,
                 "--set", "hidden_units=16", "--strategy", "default", "--cache", "memory"]) == 0
    assert "test metrics: accuracy=" in capsys.readouterr().out
    with open(os.path.join(run, "config.json")) as file:
        assert json.load(file)["cache"] == "memory"
    assert main(["evaluate", run]) == 0
    assert "accuracy=" in capsys.readouterr().out
    assert main(["export", run, "--formats", "tflite", "onnx"]) == 0
    out = capsys.readouterr().out
    assert "tflite" in out and "onnx" in out and "manifest.json" in out
    assert sorted(os.listdir(os.path.join(run, "export"))) == [
        "MODEL_CARD.md", "manifest.json", "model.onnx", "model.tflite", "model_card.json"]


@pytest.mark.parametrize("args, message", [
    (["train", "resnet19", "--data", "digits"], "unknown model 'resnet19'; closest valid names"),
    (["train", "mlp", "--data", "digitz"], "unknown dataset 'digitz'"),
    (["train", "mlp", "--data", "folder:/no/such/folder"], "image folder not found"),
    (["train", "mlp", "--data", "digits", "--set", "oops"], "--set expects KEY=VALUE"),
    (["train", "mlp", "--data", "digits", "--set", "input_shape=(8,8,3)"],
     "does not match the data's shape (8, 8, 1)"),
    (["train", "mlp", "--data", "digits", "--cache", __file__],
     "cache must be 'memory' or a folder"),
    (["evaluate", "/no/such/run"], "not a run folder"),
    (["export", "/no/such/model.keras"], "model file not found"),
    (["models", "--task", "clasification"], "unknown task 'clasification'"),
    (["info", "resnet19"], "unknown model 'resnet19'"),
    (["quickstart", "--task", "generative"],
     "task 'generative' has no quickstart; tasks with one: classification, segmentation"),
    (["quickstart", "--task", "detect"], "unknown task 'detect'"),
])
def test_user_errors_are_one_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kcc: error: ") and message in err
    assert len(err.splitlines()) == 1


def test_corrupt_keras_file_from_a_real_process(tmp_path):
    corrupt = tmp_path / "model.keras"
    corrupt.write_bytes(b"\x00garbage")
    result = _kcc("export", str(corrupt))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1  # quiet: no TensorFlow log lines either
    assert "not a .keras file (a .keras file is a zip archive" in result.stderr
    assert not os.path.exists(tmp_path / "export")


def test_models_and_tasks_list_every_task(capsys):
    from keras_cv_course import tasks

    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for name in tasks.list_tasks():
        assert name in out
        assert main(["models", "--task", name]) == 0
        assert " models" in capsys.readouterr().out


def test_train_the_tiny_config_of_any_model(tmp_path, capsys):
    run = str(tmp_path / "fcn")
    assert main(["train", "fcn8s", "--data", "shapes", "--config", "tiny", "--epochs", "1",
                 "--batch-size", "16", "--out", run, "--augment", "flip"]) == 0
    assert "segmentation headline: mean_iou=" in capsys.readouterr().out
    import json

    with open(os.path.join(run, "config.json")) as handle:
        config = json.load(handle)
    assert config["config"] == "tiny" and config["augment"] == "flip"


def test_version(capsys):
    from keras_cv_course import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"kcc {__version__}"


@pytest.mark.parametrize("name, expected", [
    ("resnet50_v1", ["25,583,592", "GMACs       3.858", "images: (224, 224, 3) float32",
                     "predictions: (classes,) float32", "config      tiny: input_shape=",
                     "onnx: yes", "pretrained  imagenet", "imagenet_top1"]),
    ("fcn8s", ["134,376,863", "segmentation: (height, width, classes)", "none: random init",
               "Long, Shelhamer, Darrell"]),
])
def test_info_prints_paper_size_specs_configs_exports_and_weights(name, expected, capsys):
    assert main(["info", name]) == 0
    out = capsys.readouterr().out
    for text in expected:
        assert text in out, (text, out)
