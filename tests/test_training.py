"""Training: run folders, strategies, TensorBoard, schedules, precision, failures.

Resume after SIGKILL and the distributed strategies: ``test_distributed.py``.
"""

import csv
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from keras_cv_course.data import load_dataset
from keras_cv_course.errors import KCCError
from keras_cv_course.training import RunFolder, evaluate_run, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("runs") / "mlp")
    return train("mlp", "digits", out, epochs=3, batch_size=64, verbose=0, hidden_units=32,
                 strategy="mirrored")


def test_run_folder_holds_everything(finished_run):
    run = RunFolder(finished_run.path)
    for path in (run.config_json, run.model_file, run.best_checkpoint, run.history_csv,
                 run.metrics_json):
        assert os.path.exists(path), path
    assert os.listdir(os.path.join(run.logs_dir, "train"))
    config = run.read_config()
    assert config["model"] == "mlp" and config["model_overrides"] == {"hidden_units": 32}
    with open(run.history_csv) as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["0", "1", "2"]


def test_evaluate_run_reproduces_the_metrics(finished_run):
    metrics = evaluate_run(finished_run.path)
    assert metrics["accuracy"] == pytest.approx(finished_run.metrics["accuracy"], abs=1e-6)
    assert metrics["accuracy"] > 0.5


def test_finished_run_is_not_overwritten(finished_run):
    with pytest.raises(KCCError, match="already holds a finished model"):
        train("mlp", "digits", finished_run.path, epochs=1)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_json(url, timeout=60):
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def test_tensorboard_serves_the_runs_scalars(finished_run):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main",
         "--logdir", os.path.join(finished_run.path, "logs"),
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}/data/plugin/scalars"
        tags = _get_json(f"{base}/tags")
        deadline = time.time() + 60
        while "epoch_loss" not in tags.get("train", {}) and time.time() < deadline:
            time.sleep(0.5)
            tags = _get_json(f"{base}/tags")
        assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"} <= set(tags["train"])
        assert "epoch_loss" in tags["validation"]
        points = _get_json(f"{base}/scalars?run=train&tag=epoch_loss")
        served = [value for _, _, value in points]
        np.testing.assert_allclose(served, finished_run.history["loss"], rtol=1e-6)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_segmentation_and_generative_runs_log_images(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    shapes = load_dataset("shapes", task="segmentation", num_examples=40)
    digits = load_dataset("digits", task="generative", image_size=(16, 16))
    runs = [
        train("fcn8s", shapes, str(tmp_path / "fcn"), epochs=1, batch_size=8, verbose=0,
              backbone_widths=(4, 8, 8, 16, 16), convs_per_stage=(1, 1, 1, 1, 1), fc_width=16),
        train("conv_vae", digits, str(tmp_path / "vae"), epochs=1, batch_size=64, verbose=0,
              latent_dim=4, widths=(8, 16)),
    ]
    expected = [{"inputs", "predicted_masks", "overlays"},
                {"inputs", "reconstructions", "samples"}]
    for run, tags in zip(runs, expected):
        events = EventAccumulator(os.path.join(run.path, "logs", "images"),
                                  size_guidance={"tensors": 0})
        events.Reload()
        assert tags <= set(events.Tags()["tensors"])
    assert "mean_iou" in runs[0].metrics
    assert {"reconstruction_loss", "kl_loss"} <= set(runs[1].history)


@pytest.mark.parametrize("policy", ["standard", "cutmix"])
def test_augmentation_policies_train_and_evaluate(policy, tmp_path):
    run = train("linear_softmax", "digits", str(tmp_path / policy), epochs=4, verbose=0,
                augment=policy, learning_rate=1e-2)
    assert run.metrics["accuracy"] > 0.5
    assert evaluate_run(run.path)["accuracy"] == pytest.approx(run.metrics["accuracy"])


def test_cosine_schedule_with_warmup_reaches_the_optimizer(tmp_path):
    run = train("linear_softmax", "digits", str(tmp_path / "cosine"), epochs=2, verbose=0,
                schedule="cosine", warmup_epochs=1, learning_rate=0.05, batch_size=64)
    learning_rate = run.model.optimizer.learning_rate
    steps = 2 * (1257 // 64)
    assert float(learning_rate) == pytest.approx(0.05 * 0.5 * (1 + np.cos(np.pi)), abs=1e-6)
    assert run.model.optimizer.iterations.numpy() == steps
    assert float(RunFolder(run.path).read_config()["learning_rate"]) == 0.05


def test_mixed_precision_training(tmp_path):
    run = train("linear_softmax", "digits", str(tmp_path / "bf16"), epochs=1, verbose=0,
                precision="mixed_bfloat16", learning_rate=1e-2)
    assert np.isfinite(run.metrics["loss"])
    import keras

    assert keras.mixed_precision.dtype_policy().name == "float32"  # restored afterwards


def test_nan_loss_stops_with_a_clear_error_and_no_model(tmp_path):
    out = str(tmp_path / "nan")
    with pytest.raises(KCCError, match="loss became (nan|inf)"):
        train("linear_softmax", "digits", out, epochs=2, optimizer="sgd", learning_rate=1e38,
              verbose=0)
    assert not os.path.exists(RunFolder(out).model_file)


def test_input_shape_that_disagrees_with_the_data(tmp_path):
    with pytest.raises(KCCError, match="does not match the data"):
        train("mlp", "digits", str(tmp_path / "bad"), input_shape=(16, 16, 1))
    assert not os.path.exists(tmp_path / "bad")
