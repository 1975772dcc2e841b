"""The bad-input suite: every command and entry point, every kind of bad input.

Each case runs one ``kcc`` command (in this process, through ``main``) or
one Python entry point on a bad input and asserts what a user is promised:
a one-line message naming what was expected, exit status 2, no traceback,
and no new files anywhere. The cases are a table; the count is printed
and recorded in ``docs/reliability.md``.
"""

import json
import os
import shutil
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from keras_cv_course import __version__
from keras_cv_course.cli import main
from keras_cv_course.errors import KCCError

MIN_CASES = 40


# -- the workspace: one small finished run, its export, and every kind of bad file ----------


def _png(path, size=(16, 16), mode="RGB", seed=0):
    channels = {"RGB": 3, "L": 1}[mode]
    pixels = np.random.default_rng(seed).integers(0, 255, (*size, channels), dtype="uint8")
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels).save(path)


def _bomb_png(path, side=20000):
    """A PNG header declaring ``side`` x ``side`` pixels, with no pixel data to decode."""
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    with open(path, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


def _class_folder(root, name, classes=("cats", "dogs"), per_class=6, extra=None):
    folder = os.path.join(root, name)
    for index, class_name in enumerate(classes):
        os.makedirs(os.path.join(folder, class_name))
        for image in range(per_class):
            _png(os.path.join(folder, class_name, f"{image}.png"), seed=index * 100 + image)
    if extra:
        extra(os.path.join(folder, classes[0]))
    return folder


def _truncate(path):
    with open(path, "rb") as handle:
        data = handle.read()
    with open(path, "wb") as handle:
        handle.write(data[:len(data) // 3])


def _bad_files(root):
    """Single bad files: images, model files and artifacts."""
    _png(os.path.join(root, "good.png"))
    _png(os.path.join(root, "tiny.png"), size=(1, 1))
    _bomb_png(os.path.join(root, "bomb.png"))
    Image.new("RGB", (16, 16)).save(os.path.join(root, "photo.tiff"))
    with open(os.path.join(root, "corrupt.png"), "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n" + b"garbage" * 8)
    with open(os.path.join(root, "notes.txt"), "w") as handle:
        handle.write("not an image")
    open(os.path.join(root, "empty.keras"), "wb").close()
    with open(os.path.join(root, "notzip.keras"), "w") as handle:
        handle.write("hello")
    _lambda_model(os.path.join(root, "lambda.keras"))


def _lambda_model(path):
    import keras

    inputs = keras.Input((3,))
    outputs = keras.layers.Lambda(lambda x: x * 2, name="double_it")(inputs)
    keras.Model(inputs, outputs).save(path)


def _broken_runs(root, run):
    """Copies of the good run, each broken one way."""
    def copy(name, edit):
        target = os.path.join(root, name)
        shutil.copytree(run, target, ignore=shutil.ignore_patterns("export"))
        edit(target)

    def newer(target):
        config_path = os.path.join(target, "config.json")
        with open(config_path) as handle:
            config = json.load(handle)
        with open(config_path, "w") as handle:
            json.dump({**config, "package_version": "99.0.0"}, handle)

    def replace_model(source):
        return lambda target: shutil.copy(source, os.path.join(target, "model.keras"))

    copy("unfinished", lambda target: os.remove(os.path.join(target, "model.keras")))
    copy("newer", newer)
    copy("corrupt_model", replace_model(os.path.join(root, "notzip.keras")))
    copy("lambda_model", replace_model(os.path.join(root, "lambda.keras")))
    copy("bad_json", lambda target: open(os.path.join(target, "config.json"), "w").write("{"))
    os.makedirs(os.path.join(root, "empty_folder"))


def _broken_artifacts(root, export_dir):
    for name in ("model.tflite", "model.onnx"):
        shutil.copy(os.path.join(export_dir, name), os.path.join(root, f"truncated_{name}"))
        _truncate(os.path.join(root, f"truncated_{name}"))
    saved = os.path.join(root, "truncated_saved_model")
    shutil.copytree(os.path.join(export_dir, "saved_model"), saved)
    _truncate(os.path.join(saved, "saved_model.pb"))
    shutil.copy(os.path.join(export_dir, "model.tflite"), os.path.join(root, "model.txt"))


def _folders(root):
    def add(name, writer):
        return lambda folder: writer(os.path.join(folder, name))

    _class_folder(root, "corrupt_folder", extra=add("corrupt.png", lambda p: open(
        p, "wb").write(b"\x89PNG\r\n\x1a\n" + b"x" * 40)))
    _class_folder(root, "stray_folder", extra=add("readme.txt", lambda p: open(p, "w").write(
        "hello")))
    _class_folder(root, "mixed_folder", extra=add("grey.png", lambda p: _png(p, mode="L")))
    _class_folder(root, "tiny_folder", extra=add("tiny.png", lambda p: _png(p, size=(1, 1))))
    _class_folder(root, "bomb_folder", extra=add("bomb.png", _bomb_png))
    _class_folder(root, "tiff_folder", extra=add("photo.tiff", lambda p: Image.new(
        "RGB", (16, 16)).save(p)))
    _class_folder(root, "one_class_folder", classes=("cats",))
    _class_folder(root, "small_class_folder", per_class=2)
    folder = _class_folder(root, "empty_class_folder")
    os.makedirs(os.path.join(folder, "birds"))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Every file the cases need, made once; the cases must not change it."""
    from keras_cv_course.export import export
    from keras_cv_course.training import train

    root = str(tmp_path_factory.mktemp("bad_inputs"))
    run = os.path.join(root, "run")
    train("mlp", "digits", run, epochs=1, batch_size=64, verbose=0, hidden_units=8)
    export(run, os.path.join(run, "export"))
    _bad_files(root)
    _broken_runs(root, run)
    _broken_artifacts(root, os.path.join(run, "export"))
    _folders(root)
    return root


# -- the cases --------------------------------------------------------------------------------

TRAIN = ["train", "mlp", "--data", "digits", "--epochs", "1"]
TINY_FOLDER = ["train", "resnet18", "--config", "tiny", "--image-size", "16", "16",
               "--batch-size", "2", "--epochs", "1", "--data"]


def folder(name):
    return lambda w: [*TINY_FOLDER, f"folder:{w}/{name}"]


def cli(*args):
    """A case whose arguments need no workspace path."""
    return lambda w: list(args)


CLI_CASES = {
    # names and values
    "unknown model": (cli("train", "resnet19", "--data", "digits"), "unknown model 'resnet19'"),
    "unknown dataset": (cli(*TRAIN[:2], "--data", "digitz"), "unknown dataset 'digitz'"),
    "unknown command": (cli("trian"), "invalid choice: 'trian'"),
    "missing --data": (cli("train", "mlp"), "the following arguments are required: --data"),
    "unknown config": (cli(*TRAIN, "--config", "huge"), "argument --config: invalid choice"),
    "unknown precision": (cli(*TRAIN, "--precision", "fp8"), "argument --precision"),
    "unknown strategy": (cli(*TRAIN, "--strategy", "warp"), "unknown strategy 'warp'"),
    "unknown schedule": (cli(*TRAIN, "--schedule", "zigzag"), "argument --schedule"),
    "unknown augmentation": (cli(*TRAIN, "--augment", "wobble"), "augmentation 'wobble'"),
    "unknown task": (cli("models", "--task", "clasification"), "unknown task 'clasification'"),
    "unknown model for info": (cli("info", "resnet19"), "unknown model 'resnet19'"),
    "task without quickstart": (cli("quickstart", "--task", "generative"), "has no quickstart"),
    "malformed --set": (cli(*TRAIN, "--set", "oops"), "--set expects KEY=VALUE"),
    "--set with a bad key": (cli(*TRAIN, "--set", "1x=3"), "--set expects KEY=VALUE"),
    "--set of an unknown argument": (cli(*TRAIN, "--set", "wings=2"), "cannot build mlp"),
    # numbers
    "zero epochs": (cli(*TRAIN[:4], "--epochs", "0"), "--epochs: expected a positive integer"),
    "negative epochs": (cli(*TRAIN[:4], "--epochs", "-3"), "expected a positive integer"),
    "text epochs": (cli(*TRAIN[:4], "--epochs", "ten"), "expected a positive integer, got 'ten'"),
    "zero batch size": (cli(*TRAIN, "--batch-size", "0"), "--batch-size: expected a positive"),
    "negative batch size": (cli(*TRAIN, "--batch-size", "-1"), "expected a positive integer"),
    "batch larger than the data": (cli(*TRAIN, "--batch-size", "5000"),
                                   "batch_size is larger than the training split"),
    "zero learning rate": (cli(*TRAIN, "--lr", "0"), "--lr: expected a positive number"),
    "negative learning rate": (cli(*TRAIN, "--lr", "-0.1"), "expected a positive number"),
    "NaN learning rate": (cli(*TRAIN, "--lr", "nan"), "expected a positive number, got 'nan'"),
    "infinite learning rate": (cli(*TRAIN, "--lr", "inf"), "expected a positive number"),
    "zero quickstart epochs": (cli("quickstart", "--epochs", "0"), "expected a positive integer"),
    # shapes and channels
    "1x1 image size": (cli(*TRAIN, "--image-size", "1", "1"), "expected an image side from 8"),
    "huge image size": (cli(*TRAIN, "--image-size", "100000", "100000"), "to 4096 pixels"),
    "two channels": (cli(*TRAIN, "--channels", "2"), "argument --channels: invalid choice"),
    "model for another input shape": (cli(*TRAIN, "--set", "input_shape=(8,8,3)"),
                                      "does not match the data's shape (8, 8, 1)"),
    "grayscale data for an RGB model": (
        cli("train", "resnet18", "--config", "tiny", "--data", "shapes", "--channels", "1",
            "--set", "input_shape=(32,32,3)"), "does not match the data's shape (32, 32, 1)"),
    # image folders
    "missing folder": (cli(*TRAIN[:2], "--data", "folder:/no/such/folder"),
                       "image folder not found"),
    "non-UTF-8 folder name": (cli(*TRAIN[:2], "--data", os.fsdecode(b"folder:/tmp/bad\xff")),
                              "image folder not found"),
    "corrupt image in a folder": (folder("corrupt_folder"), "corrupt.png'"),
    "stray text file in a folder": (folder("stray_folder"), "readme.txt': not an image file"),
    "grey image among RGB": (folder("mixed_folder"), "grey.png': has 1 channel(s)"),
    "1x1 image in a folder": (folder("tiny_folder"), "tiny.png': too small (1x1"),
    "decompression bomb in a folder": (folder("bomb_folder"), "bomb.png': too large"),
    "unsupported format in a folder": (folder("tiff_folder"), "unsupported format TIFF"),
    "single-class folder": (folder("one_class_folder"), "at least 2 class sub-folders"),
    "classes with too few images": (folder("small_class_folder"), "too few in: cats (2)"),
    "empty class": (folder("empty_class_folder"), "birds' is empty"),
    # run folders and output paths
    "--out is a file": (lambda w: [*TRAIN, "--out", f"{w}/good.png"], "is not a folder"),
    "--out on a read-only file system": (cli(*TRAIN, "--out", "/sys/kcc-run"),
                                         "cannot write the run folder '/sys/kcc-run'"),
    "--out holds a finished run": (lambda w: [*TRAIN, "--out", f"{w}/run"],
                                   "already holds a finished model"),
    "evaluate a missing run": (cli("evaluate", "/no/such/run"), "not a run folder"),
    "evaluate an empty folder": (lambda w: ["evaluate", f"{w}/empty_folder"], "not a run folder"),
    "evaluate a file": (lambda w: ["evaluate", f"{w}/good.png"], "not a run folder"),
    "evaluate an unfinished run": (lambda w: ["evaluate", f"{w}/unfinished"],
                                   "unfinished run"),
    "evaluate a newer run": (lambda w: ["evaluate", f"{w}/newer"],
                             "made by keras_cv_course 99.0.0, newer than this"),
    "evaluate a run with a corrupt model": (lambda w: ["evaluate", f"{w}/corrupt_model"],
                                            "not a .keras file (a .keras file is a zip"),
    "evaluate a run whose config is not JSON": (lambda w: ["evaluate", f"{w}/bad_json"],
                                                "is not valid JSON"),
    # model files
    "export a missing model": (cli("export", "/no/such/model.keras"), "model file not found"),
    "export an empty .keras": (lambda w: ["export", f"{w}/empty.keras"], "not a .keras file"),
    "export a .keras that is not a zip": (lambda w: ["export", f"{w}/notzip.keras"],
                                          "a .keras file is a zip archive, and this one is not"),
    "export a .keras with a lambda": (lambda w: ["export", f"{w}/lambda.keras"],
                                      "safe mode refused layer(s) ['double_it']"),
    "export to an unknown format": (lambda w: ["export", f"{w}/run", "--formats", "pdf"],
                                    "formats must be some of"),
    "export over an existing folder": (lambda w: ["export", f"{w}/run", "--out",
                                                  f"{w}/run/export"], "exists; pass overwrite"),
    "export to a read-only file system": (lambda w: ["export", f"{w}/run", "--out",
                                                     "/sys/kcc-export"], "cannot write"),
    # predict: images and artifacts
    "predict a missing image": (lambda w: ["predict", f"{w}/run", f"{w}/nope.png"],
                                "image file not found"),
    "predict a corrupt image": (lambda w: ["predict", f"{w}/run", f"{w}/corrupt.png"],
                                "corrupt"),
    "predict a 1x1 image": (lambda w: ["predict", f"{w}/run", f"{w}/tiny.png"], "too small"),
    "predict a text file": (lambda w: ["predict", f"{w}/run", f"{w}/notes.txt"],
                            "not an image file"),
    "predict a decompression bomb": (lambda w: ["predict", f"{w}/run", f"{w}/bomb.png"],
                                     "too large (more than 89,478,485 pixels)"),
    "predict with a truncated .tflite": (lambda w: ["predict", f"{w}/run", f"{w}/good.png",
                                                    "--artifact", f"{w}/truncated_model.tflite"],
                                         "cannot load tflite artifact"),
    "predict with a truncated .onnx": (lambda w: ["predict", f"{w}/run", f"{w}/good.png",
                                                  "--artifact", f"{w}/truncated_model.onnx"],
                                       "cannot load onnx artifact"),
    "predict with a truncated SavedModel": (
        lambda w: ["predict", f"{w}/run", f"{w}/good.png", "--artifact",
                   f"{w}/truncated_saved_model"], "cannot load savedmodel artifact"),
    "predict with an artifact of unknown type": (
        lambda w: ["predict", f"{w}/run", f"{w}/good.png", "--artifact", f"{w}/model.txt"],
        "artifact must be a .tflite file"),
    "predict into a read-only file system": (
        lambda w: ["predict", f"{w}/run", f"{w}/good.png", "--out", "/sys/kcc-pictures"],
        "cannot create the output folder"),
}


def _tree(*roots):
    return {os.path.join(folder, name) for root in roots for folder, dirs, files in os.walk(root)
            for name in dirs + files}


def _assert_one_line_and_nothing_written(err, before, roots, expected):
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err, err
    assert _tree(*roots) == before, _tree(*roots) ^ before


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_bad_input(case, workspace, tmp_path, monkeypatch, capsys):
    arguments, expected = CLI_CASES[case]
    monkeypatch.chdir(tmp_path)
    roots = (workspace, str(tmp_path))
    before = _tree(*roots)
    status = main(arguments(workspace))
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.startswith("kcc: error: ")
    _assert_one_line_and_nothing_written(err, before, roots, expected)


def _nan_images():
    from keras_cv_course.data import DataBundle

    images = np.zeros((4, 8, 8, 1), "float32")
    images[2, 3, 3, 0] = np.nan
    labels = np.zeros(4, "int32")
    return DataBundle.from_arrays("mine", "classification", {
        key: (images, labels) for key in ("train", "val", "test")}, 2)


def _float_labels():
    from keras_cv_course.data import DataBundle

    images, labels = np.zeros((4, 8, 8, 1), "float32"), np.full(4, 0.5, "float32")
    return DataBundle.from_arrays("mine", "classification", {
        key: (images, labels) for key in ("train", "val", "test")}, 2)


def _train(**arguments):
    from keras_cv_course.training import train

    return lambda w: train("mlp", "digits", os.path.join(w, "new-run"), **arguments)


def _python(function):
    return lambda w: function()


PYTHON_CASES = {
    "NaN in user arrays": (_python(_nan_images), "contains NaN or infinite values"),
    "float class ids": (_python(_float_labels), "labels"),
    "train(epochs=0)": (_train(epochs=0), "epochs must be a positive integer"),
    "train(batch_size=-2)": (_train(batch_size=-2), "batch_size must be a positive integer"),
    "train(learning_rate=nan)": (_train(learning_rate=float("nan")),
                                 "learning_rate must be a positive number"),
    "load_dataset of a corrupt folder": (
        lambda w: __import__("keras_cv_course.data", fromlist=["load_dataset"]).load_dataset(
            f"folder:{w}/corrupt_folder"), "corrupt.png"),
    "predict() on a missing image": (
        lambda w: __import__("keras_cv_course.predict", fromlist=["predict"]).predict(
            f"{w}/run", [f"{w}/missing.png"]), "image file not found"),
    "export() with a golden batch of another shape": (
        lambda w: __import__("keras_cv_course.export", fromlist=["export"]).export(
            f"{w}/run", f"{w}/new-export", golden_batch=np.zeros((2, 9, 9, 1), "float32")),
        "golden batch"),
}


@pytest.mark.parametrize("case", sorted(PYTHON_CASES))
def test_python_bad_input(case, workspace, tmp_path, monkeypatch):
    function, expected = PYTHON_CASES[case]
    monkeypatch.chdir(tmp_path)
    roots = (workspace, str(tmp_path))
    before = _tree(*roots)
    with pytest.raises(KCCError) as raised:
        function(workspace)
    _assert_one_line_and_nothing_written(str(raised.value), before, roots, expected)


def test_the_suite_has_enough_cases():
    count = len(CLI_CASES) + len(PYTHON_CASES)
    print(f"bad-input cases: {count} ({len(CLI_CASES)} kcc, {len(PYTHON_CASES)} Python)")
    assert count >= MIN_CASES
    assert __version__  # the newer-run case compares against it


# -- property-based: any value, any array -----------------------------------------------------

# Any text a shell can pass (no NUL), surrogate-escaped bytes included.
ARGUMENT = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",))
                   | st.sampled_from(["\udcff", "\udc80"]), max_size=12)
PROPERTY_SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                             suppress_health_check=[HealthCheck.function_scoped_fixture])
TRAIN_FLAGS = ["--epochs", "--batch-size", "--lr", "--channels", "--seed", "--set",
               "--warmup-epochs", "--backup-every-steps", "--optimizer", "--strategy"]


@PROPERTY_SETTINGS
@given(flag=st.sampled_from(TRAIN_FLAGS + ["--image-size"]), value=ARGUMENT)
def test_any_train_value_gets_a_one_line_answer(flag, value, tmp_path, monkeypatch, capsys):
    """Whatever the value, train answers in one line with status 2 (the data is missing)."""
    monkeypatch.chdir(tmp_path)
    values = [value, value] if flag == "--image-size" else [value]
    status = main(["train", "mlp", "--data", "folder:/no/such/folder", flag, *values])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not os.listdir(tmp_path)


@PROPERTY_SETTINGS
@given(command=st.sampled_from(["evaluate", "export", "predict"]), path=ARGUMENT)
def test_any_path_gets_a_one_line_answer(command, path, workspace, tmp_path, monkeypatch,
                                         capsys):
    """evaluate, export and predict on any path: one line, status 2, nothing written."""
    monkeypatch.chdir(tmp_path)
    before = _tree(workspace)
    arguments = {"evaluate": [path], "export": [path, "--out", "exported"],
                 "predict": [f"{workspace}/run", path, "--out", "pictures"]}[command]
    status = main([command, *arguments])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not os.listdir(tmp_path) and _tree(workspace) == before


@PROPERTY_SETTINGS
@given(images=hnp.arrays(st.sampled_from(["float32", "float64", "uint8", "int64"]),
                         hnp.array_shapes(min_dims=1, max_dims=5, min_side=1, max_side=5)),
       labels=hnp.arrays(st.sampled_from(["int32", "int64", "float32"]),
                         hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=5)))
def test_any_arrays_are_accepted_or_refused_in_one_line(images, labels):
    """``DataBundle.from_arrays`` takes an array pair or says in one line why not."""
    from keras_cv_course.data import DataBundle

    try:
        DataBundle.from_arrays("mine", "classification",
                               {key: (images, labels) for key in ("train", "val", "test")}, 2)
    except KCCError as error:
        assert len(str(error).splitlines()) == 1


@PROPERTY_SETTINGS
@given(pixels=hnp.arrays("uint8", st.tuples(st.integers(1, 40), st.integers(1, 40),
                                            st.sampled_from([1, 3, 4]))))
def test_any_image_file_is_predicted_or_refused_in_one_line(pixels, workspace, tmp_path):
    """``predict`` on any PNG: outputs that are probabilities, or one line."""
    from keras_cv_course.predict import predict

    path = str(tmp_path / "image.png")
    Image.fromarray(pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels).save(path)
    try:
        [(_, outputs, lines)] = predict(f"{workspace}/run", [path])
    except KCCError as error:
        assert len(str(error).splitlines()) == 1 and min(pixels.shape[:2]) < 8
        return
    probabilities = next(iter(outputs.values()))
    assert probabilities.shape == (10,) and abs(float(probabilities.sum()) - 1) < 1e-4
    assert len(lines) == 5
