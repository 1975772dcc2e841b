"""``kcc predict``: pictures from a run's Keras model or from any of its artifacts."""

import os

import numpy as np
import pytest
from PIL import Image

from keras_cv_course import applications
from keras_cv_course.cli import main
from keras_cv_course.export import export
from keras_cv_course.predict import PICTURE_SIDE, predict
from keras_cv_course.training import train


def _png(path, size, mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (*size, 3 if mode == "RGB" else 1), dtype="uint8")
    Image.fromarray(pixels if mode == "RGB" else pixels[..., 0]).save(path)
    return str(path)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("predict") / "run")
    train("mlp", "digits", out, epochs=2, batch_size=64, verbose=0, hidden_units=16)
    export(out, os.path.join(out, "export"))
    return out


def test_classification_pictures_show_the_top_five(digits_run, tmp_path, capsys):
    images = [_png(tmp_path / "colour.png", (30, 20)), _png(tmp_path / "grey.png", (8, 8), "L")]
    assert main(["predict", digits_run, *images, "--out", str(tmp_path / "pictures")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"{images[0]}: ") and printed[0].count("%") == 5
    for name in ("colour.png", "grey.png"):
        with Image.open(tmp_path / "pictures" / name) as picture:
            assert picture.mode == "RGB" and picture.height > PICTURE_SIDE
    assert sorted(os.listdir(tmp_path / "pictures")) == ["colour.png", "grey.png"]


@pytest.mark.parametrize("artifact", ["model.tflite", "model.onnx", "saved_model"])
def test_every_artifact_predicts_what_keras_predicts(artifact, digits_run, tmp_path):
    image = _png(tmp_path / "image.png", (12, 12))
    [(_, keras_outputs, keras_lines)] = predict(digits_run, [image])
    [(_, outputs, lines)] = predict(digits_run, [image],
                                    artifact=os.path.join(digits_run, "export", artifact))
    assert sorted(outputs) == sorted(keras_outputs)
    for key, value in keras_outputs.items():
        np.testing.assert_allclose(outputs[key], value, atol=1e-4)
    assert [line.split(":")[0] for line in lines] == [line.split(":")[0] for line in keras_lines]


def test_segmentation_pictures_overlay_the_class_map(tmp_path):
    info = applications.get_info("fcn8s")
    model = applications.build("fcn8s", **{**info.config("tiny"), "input_shape": (32, 32, 3),
                                           "classes": 3})
    model.save(tmp_path / "fcn.keras")
    image = _png(tmp_path / "scene.png", (40, 40))
    [(_, outputs, lines)] = predict(str(tmp_path / "fcn.keras"), [image],
                                    out_dir=str(tmp_path / "pictures"))
    scores = next(iter(outputs.values()))
    assert scores.shape == (32, 32, 3)
    shares = [float(line.split(": ")[1].split("%")[0]) for line in lines]
    assert lines[0].endswith("of pixels") and sum(shares) == pytest.approx(100, abs=0.5)
    with Image.open(tmp_path / "pictures" / "scene.png") as picture:
        assert picture.width >= PICTURE_SIDE
