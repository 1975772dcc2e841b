"""Faults a user will meet: corrupt data, full disks, killed and concurrent processes, signals.

Each test causes the fault for real where it can (a corrupt file, a dead
process's staging folder, two exports at once, SIGINT and SIGTERM sent to
a training process) and simulates it where it cannot (a full disk: the
writer raises ``ENOSPC``). The promise checked each time: one line saying
what happened, nothing half-written, and nothing finished lost.
"""

import csv
import errno
import importlib
import os
import shlex
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from PIL import Image

from keras_cv_course.cli import main
from keras_cv_course.errors import KCCError
from keras_cv_course.evaluation import evaluate_run
from keras_cv_course.export import api as export_api
from keras_cv_course.export import converters, export
from keras_cv_course.runs import RunFolder, load_keras_file
from keras_cv_course.training import train
from keras_cv_course.training.interrupts import RunBackup

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MLP = dict(batch_size=64, verbose=0, hidden_units=16)
train_module = importlib.import_module("keras_cv_course.training.train")


def kcc(*args, **popen):
    """``kcc ARGS`` in a new process, as a user runs it."""
    command = [sys.executable, "-m", "keras_cv_course", *map(str, args)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": ROOT}, **popen)


def finish(process, timeout=300):
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def _image_folder(root):
    rng = np.random.default_rng(0)
    for class_name in ("cats", "dogs"):
        os.makedirs(os.path.join(root, class_name))
        for index in range(6):
            pixels = rng.integers(0, 255, (20, 20, 3), dtype="uint8")
            Image.fromarray(pixels).save(os.path.join(root, class_name, f"{index}.png"))
    with open(os.path.join(root, "cats", "corrupt.png"), "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)


def test_corrupt_image_is_named_or_skipped_and_commands_are_quiet(tmp_path):
    """The issue's example: one corrupt file in a folder of images."""
    _image_folder(tmp_path / "imgs")
    code, _, err = finish(kcc("train", "resnet18", "--data", "folder:imgs", "--image-size", 16,
                              16, "--batch-size", 2, cwd=tmp_path))
    assert code == 2 and err.count("\n") == 1, err
    assert "corrupt.png" in err and "--skip-bad-images" in err
    assert sorted(os.listdir(tmp_path)) == ["imgs"]  # no run folder

    code, out, err = finish(kcc("train", "resnet18", "--config", "tiny", "--data", "folder:imgs",
                                "--image-size", 16, 16, "--batch-size", 2, "--epochs", 1,
                                "--out", "run", "--skip-bad-images", cwd=tmp_path))
    assert code == 0 and err == "", err  # no TensorFlow, CUDA or absl lines
    skipped = RunFolder(str(tmp_path / "run")).read_config()["skipped_images"]
    assert len(skipped) == 1 and "corrupt.png: corrupt" in skipped[0]


def test_a_failure_before_the_first_epoch_leaves_nothing(tmp_path, monkeypatch):
    def broken_fit(*args, **kwargs):
        raise RuntimeError("the first batch failed")

    monkeypatch.setattr(train_module, "_fit", broken_fit)
    with pytest.raises(RuntimeError):
        train("mlp", "digits", str(tmp_path / "new"), epochs=2, **MLP)
    assert not os.path.exists(tmp_path / "new")
    os.makedirs(tmp_path / "mine")  # a folder the user made stays, and stays empty
    with pytest.raises(RuntimeError):
        train("mlp", "digits", str(tmp_path / "mine"), epochs=2, **MLP)
    assert os.listdir(tmp_path / "mine") == []


def _raise_enospc_after(calls, count, original, where=None):
    def save(self, filepath, *args, **kwargs):
        if where is None or where in str(filepath):
            calls.append(filepath)
            if len(calls) > count:
                with open(filepath, "wb") as handle:  # a write cut off halfway
                    handle.write(b"\x00" * 16)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(filepath))
        return original(self, filepath, *args, **kwargs)
    return save


def test_full_disk_while_checkpointing_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    out = str(tmp_path / "run")
    calls = []
    monkeypatch.setattr(keras.Model, "save",
                        _raise_enospc_after(calls, 1, keras.Model.save, "best"))
    with pytest.raises(KCCError) as raised:
        train("mlp", "digits", out, epochs=6, **MLP)
    message = str(raised.value)
    assert len(message.splitlines()) == 1
    assert "No space left on device" in message and "the previous file is intact" in message
    run = RunFolder(out)
    assert load_keras_file(run.best_checkpoint).count_params() > 0  # the earlier best
    assert not os.path.exists(run.best_checkpoint + ".tmp.keras")
    assert RunBackup.exists(run.backup_dir)
    with pytest.raises(KCCError, match="unfinished run .*resume with: kcc train mlp"):
        evaluate_run(out)
    monkeypatch.undo()
    resumed = train("mlp", "digits", out, epochs=6, **MLP)
    assert os.path.exists(run.model_file) and resumed.metrics["accuracy"] > 0.5


def test_full_disk_while_backing_up_resumes_from_the_previous_backup(tmp_path, monkeypatch):
    out = str(tmp_path / "run")
    calls = []
    monkeypatch.setattr(keras.Model, "save_weights",
                        _raise_enospc_after(calls, 2, keras.Model.save_weights))
    with pytest.raises(KCCError) as raised:
        train("mlp", "digits", out, epochs=5, **MLP)
    message = str(raised.value)
    assert "disk full" in message and "resume with: kcc train" in message, message
    monkeypatch.undo()
    train("mlp", "digits", out, epochs=5, **MLP)  # the cut-off backup falls back to the previous
    with open(RunFolder(out).history_csv) as handle:
        epochs = [int(row["epoch"]) for row in csv.DictReader(handle)]
    assert epochs == [0, 1, 2, 3, 4]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("reliability") / "run")
    train("mlp", "digits", out, epochs=1, **MLP)
    return out


def test_full_disk_while_exporting_keeps_the_previous_export(small_run, tmp_path, monkeypatch):
    out = str(tmp_path / "export")
    first = export(small_run, out, formats=("tflite",))

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(converters, "savedmodel_to_tflite", no_space)
    with pytest.raises(KCCError, match="disk full while exporting .*the previous export is intact"):
        export(small_run, out, formats=("tflite",), overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["export"]  # no staging folder left
    assert export_api.load_runner("tflite", os.path.join(out, "model.tflite"))
    with open(os.path.join(out, "manifest.json")) as handle:
        assert '"created": "' + first["created"] in handle.read()


def test_staging_folders_of_killed_exports_are_removed(small_run, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".export.tmp-{dead.pid}"
    os.makedirs(stale / "saved_model")
    mine = tmp_path / f".export.tmp-{os.getpid()}.keep"  # not a staging name: kept
    os.makedirs(mine)
    export(small_run, str(tmp_path / "export"), formats=("tflite",))
    assert sorted(os.listdir(tmp_path)) == sorted(["export", mine.name])


def test_two_exports_to_one_folder_end_with_one_complete_export(small_run, tmp_path):
    out = tmp_path / "export"
    processes = [kcc("export", small_run, "--out", out, "--formats", "tflite") for _ in range(2)]
    results = [finish(process) for process in processes]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, _, err in results if code == 2)
    assert loser.count("\n") == 1 and ("exists" in loser or "another export" in loser), loser
    assert sorted(os.listdir(out)) == ["MODEL_CARD.md", "manifest.json", "model.tflite",
                                       "model_card.json"]
    assert sorted(os.listdir(tmp_path)) == ["export"]


def _wait_for_epochs(history_csv, epochs, process, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if os.path.exists(history_csv):
            with open(history_csv) as handle:
                if len(handle.read().splitlines()) > epochs:
                    return
        time.sleep(0.05)
    raise AssertionError(f"no {epochs} epochs in {history_csv}: {process.communicate()}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_a_backup_and_says_how_to_resume(signum, tmp_path):
    out = str(tmp_path / "run")
    process = kcc("train", "mlp", "--data", "digits", "--epochs", 30, "--out", out,
                  "--set", "hidden_units=16")
    _wait_for_epochs(RunFolder(out).history_csv, 2, process)
    process.send_signal(signum)
    code, _, err = finish(process)
    assert code == 128 + signum and err.count("\n") == 1, err
    assert f"interrupted by {signal.Signals(signum).name} at epoch" in err
    assert RunBackup.exists(RunFolder(out).backup_dir)
    assert not os.path.exists(RunFolder(out).model_file)
    assert main(["evaluate", out]) == 2
    if signum != signal.SIGINT:
        return
    resume = shlex.split(err.split("resume with: ")[1])
    assert resume[:2] == ["kcc", "train"]
    code, _, err = finish(kcc(*resume[1:]))
    assert code == 0, err
    with open(RunFolder(out).history_csv) as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == list(range(30))
    assert os.path.exists(RunFolder(out).model_file)
