"""The generative tasks end to end: train, export the served network, sample anywhere.

One tiny run per sampling method (a conditional GAN: ``latent``; a diffusion
model: ``ddim``; PixelCNN: ``pixels``) is trained on 8x8 digits and exported
once; every test reads those runs.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_cv_course.errors import KCCError
from keras_cv_course.export import export
from keras_cv_course.generative import commands, quality, sampling
from keras_cv_course.tasks import get_task
from keras_cv_course.training import train

RUNS = {"conditional_gan": "latent", "ddpm_unet": "ddim", "pixelcnn": "pixels"}
SAMPLES = 6
DDIM_STEPS = 4


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``{model name: run folder}``, each trained for one epoch and exported to TFLite and ONNX."""
    folder = tmp_path_factory.mktemp("generative")
    paths = {}
    for name in RUNS:
        run = train(name, "digits", out=str(folder / name), config="tiny", image_size=(8, 8),
                    epochs=1, batch_size=64, verbose=0)
        export(run.path, formats=("tflite", "onnx"))
        paths[name] = run.path
    return paths


def _options(name):
    return {"steps": DDIM_STEPS} if RUNS[name] == "ddim" else {}


def test_the_served_network_is_not_what_trains(runs):
    model = keras.saving.load_model(os.path.join(runs["conditional_gan"], "model.keras"))
    task = get_task("conditional_generative")
    served = task.serving_model(model)
    assert [tensor.name for tensor in served.inputs] == ["latent", "class_onehot"]
    assert [spec.name for spec in task.training_inputs(model)] == ["images"]
    images, labels = task.training_batch(model, batch_size=5)
    assert images.shape == (5, 8, 8, 1) and labels.shape == (5,) and labels.max() < 10


def test_runs_record_their_task_and_losses(runs):
    with open(os.path.join(runs["conditional_gan"], "metrics.json"), encoding="utf-8") as handle:
        metrics = json.load(handle)
    assert np.isfinite(metrics["d_loss"]) and np.isfinite(metrics["g_loss"])
    with open(os.path.join(runs["pixelcnn"], "metrics.json"), encoding="utf-8") as handle:
        assert 0 < json.load(handle)["bits_per_dim"] < 3


@pytest.mark.parametrize("name", sorted(RUNS))
def test_the_manifest_records_the_sampler(runs, name):
    with open(os.path.join(runs[name], "export", "manifest.json"), encoding="utf-8") as handle:
        manifest = json.load(handle)
    assert manifest["sampler"]["method"] == RUNS[name]
    assert manifest["sampler"]["image_shape"] == [8, 8, 1]


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
@pytest.mark.parametrize("name", sorted(RUNS))
def test_artifact_samples_equal_keras_samples(runs, name, fmt):
    keras_images = commands.sample(runs[name], SAMPLES, seed=3, **_options(name))
    artifact = os.path.join(runs[name], "export", f"model.{fmt}")
    images = commands.sample(runs[name], SAMPLES, artifact=artifact, seed=3, **_options(name))
    assert images.shape == (SAMPLES, 8, 8, 1)
    np.testing.assert_allclose(images, keras_images, atol=1e-4)


DEVICE_SCRIPT = """
import json, os, sys
sys.modules["tensorflow"] = None  # as on a board: neither TensorFlow nor Keras
sys.modules["keras"] = None
import numpy as np
from keras_cv_course import edge
from keras_cv_course.generative.sampling import draw

expected, folders = np.load(sys.argv[1]), json.loads(sys.argv[2])
steps, count = int(sys.argv[3]), int(sys.argv[4])
for name, folder in folders.items():
    with open(os.path.join(folder, "manifest.json")) as handle:
        record = json.load(handle)["sampler"]
    options = {"steps": steps} if record["method"] == "ddim" else {}
    for fmt in ("tflite", "onnx"):
        runner = edge.open_artifact(os.path.join(folder, "model." + fmt), fmt)
        images = draw(record, runner, count, seed=3, **options)
        error = float(np.abs(images - expected[name]).max())
        assert error <= 1e-4, (name, fmt, error)
        print(name, fmt, error)
print("ok")
"""


def test_artifacts_sample_without_tensorflow(runs, tmp_path):
    expected = {name: commands.sample(path, SAMPLES, seed=3, **_options(name))
                for name, path in runs.items()}
    np.savez(tmp_path / "expected.npz", **expected)
    folders = {name: os.path.join(path, "export") for name, path in runs.items()}
    done = subprocess.run([sys.executable, "-c", DEVICE_SCRIPT, str(tmp_path / "expected.npz"),
                           json.dumps(folders), str(DDIM_STEPS), str(SAMPLES)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


def test_conditional_samples_follow_the_requested_classes(runs):
    model = keras.saving.load_model(os.path.join(runs["conditional_gan"], "model.keras"))
    record, forward = model.sampler.record(), sampling.keras_forward(model.sampler.network)
    threes = sampling.draw(record, forward, 4, seed=1, class_ids=[3, 3, 3, 3])
    sevens = sampling.draw(record, forward, 4, seed=1, class_ids=[7, 7, 7, 7])
    assert not np.allclose(threes, sevens)  # same noise, another class: other images
    with pytest.raises(KCCError, match=r"class_ids must be 2 ids in \[0, 10\)"):
        sampling.draw(record, forward, 2, class_ids=[0, 10])


def test_summaries_show_samples_of_fixed_noise(runs):
    model = keras.saving.load_model(os.path.join(runs["ddpm_unet"], "model.keras"))
    images = np.random.default_rng(0).uniform(0, 1, (3, 8, 8, 1)).astype("float32")
    first = get_task("generative").summaries(model, images)
    assert sorted(first) == ["inputs", "samples"]
    assert first["samples"].shape == (1, 4 * 9 + 1, 4 * 9 + 1, 1)  # a 4x4 grid of 8x8 samples
    np.testing.assert_array_equal(get_task("generative").summaries(model, images)["samples"],
                                  first["samples"])


def _feature_classifier(path):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    model.save(path)
    return path


def test_sample_quality_reports_trained_and_untrained(runs, tmp_path):
    classifier = _feature_classifier(str(tmp_path / "classifier.keras"))
    report = quality.sample_quality(runs["conditional_gan"], classifier, num_samples=40)
    for which in ("trained", "untrained"):
        scores = report[which]
        assert {"fid", "kid", "precision", "recall", "class_accuracy"} <= set(scores)
        assert all(np.isfinite(value) for value in scores.values())
        assert 0 <= scores["class_accuracy"] <= 1
    likelihood = quality.sample_quality(runs["pixelcnn"], classifier, num_samples=8)
    assert likelihood["pixel_independent_bits_per_dim"] > 0 and "bits_per_dim" in likelihood


def test_kcc_sample_writes_a_grid(runs, tmp_path):
    out = tmp_path / "grid.png"
    done = subprocess.run([sys.executable, "-m", "keras_cv_course", "sample",
                           runs["conditional_gan"], "--n", "10", "--classes", "4",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "10 samples" in done.stdout and out.is_file()
    from PIL import Image

    with Image.open(out) as picture:
        assert min(picture.size) >= commands.GRID_SIDE // 2


def test_image_grid_tiles_in_rows():
    images = np.zeros((5, 2, 3, 1), "float32")
    grid = commands.image_grid(images, columns=3, padding=1)
    assert grid.shape == (2 * 3 + 1, 3 * 4 + 1, 1)
    assert grid[0].min() == 1.0 and grid[1, 1] == 0.0


def test_bad_sample_requests_are_one_line_errors(runs, tmp_path):
    classifier = _feature_classifier(str(tmp_path / "classifier.keras"))
    cases = {
        "draws no samples": lambda: commands.sample(classifier, 2),
        "no manifest.json": lambda: commands.sample(
            runs["pixelcnn"], 2, artifact=os.path.join(runs["pixelcnn"], "model.keras")),
        "not class-conditional": lambda: commands.sample(runs["ddpm_unet"], 2, class_ids=[1]),
        "positive int": lambda: commands.sample(runs["pixelcnn"], 0),
        "does not exist": lambda: commands.sample(
            runs["conditional_gan"], 2, out=str(tmp_path / "missing" / "grid.png")),
        "unknown sampling method": lambda: sampling.draw({"method": "magic"}, None, 2),
    }
    for expected, call in cases.items():
        with pytest.raises(KCCError) as caught:
            call()
        assert expected in str(caught.value) and "\n" not in str(caught.value), caught.value
    assert not os.path.exists(tmp_path / "missing")
