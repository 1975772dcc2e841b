"""The perceptual features' VGG-16 weights: ImageNet when cached, else the project's own.

One module fixture trains a narrow VGG-16-BN on ``shapes`` for one short
epoch with ``perceptual_weights.train_project_weights``; the tests read its
file and JSON record.
"""

import os
import shutil

import keras
import numpy as np
import pytest

from keras_cv_course import applications
from keras_cv_course.errors import KCCError
from keras_cv_course.understanding import perceptual_weights, style_features

NARROW = dict(block_widths=(4, 8, 8, 16, 16))


@pytest.fixture(scope="module")
def project_weights(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("perceptual") / "vgg16_shapes.weights.h5")
    record = perceptual_weights.train_project_weights(path, fc_units=16, epochs=1,
                                                      num_examples=120, **NARROW)
    return path, record


def test_folding_batch_norm_keeps_the_function():
    keras.utils.set_random_seed(0)
    vgg_bn = applications.build("vgg16_bn", include_top=False, input_shape=(32, 32, 3),
                                **NARROW)
    rng = np.random.default_rng(0)
    for layer in vgg_bn.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = (np.asarray(w) for w in layer.get_weights())
            layer.set_weights([rng.uniform(0.5, 2, gamma.shape), rng.normal(size=beta.shape),
                               rng.normal(size=mean.shape), rng.uniform(0.5, 2, variance.shape)])
    plain = perceptual_weights.folded_vgg(vgg_bn, NARROW["block_widths"])
    images = rng.uniform(size=(2, 32, 32, 3)).astype("float32")
    expected = vgg_bn.predict(images, verbose=0)
    np.testing.assert_allclose(plain.predict(images, verbose=0), expected, rtol=1e-4,
                               atol=1e-4 * np.abs(expected).max())
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in plain.layers)


def test_project_weights_are_written_recorded_and_described(project_weights):
    path, record = project_weights
    assert os.path.isfile(path) and os.path.isfile(perceptual_weights.record_path(path))
    assert sorted(os.listdir(os.path.dirname(path))) == sorted(
        [os.path.basename(path), os.path.basename(perceptual_weights.record_path(path))])
    assert record["data"] == "shapes" and 0.0 <= record["test_accuracy"] <= 1.0
    model, line = style_features.perceptual_extractor(weights=path, **NARROW)
    assert line.startswith("perceptual features: VGG-16 trained by this project on shapes")
    assert path in line
    random_model, _ = style_features.perceptual_extractor(weights="random", **NARROW)
    images = np.random.default_rng(1).uniform(size=(1, 32, 32, 3)).astype("float32")
    trained, random = (np.asarray(m.predict(images, verbose=0)["relu1_2"])
                       for m in (model, random_model))
    assert np.isfinite(trained).all() and not np.allclose(trained, random)


def test_auto_prefers_cached_imagenet_then_the_project_weights(project_weights, tmp_path,
                                                               monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("KCC_HOME", str(tmp_path / "kcc"))
    cached = perceptual_weights.project_weights_path()
    os.makedirs(os.path.dirname(cached))
    shutil.copy(project_weights[0], cached)
    messages = []
    assert perceptual_weights.resolve("auto", log=messages.append) == cached
    assert perceptual_weights.resolve("project", log=messages.append) == cached
    assert messages == []  # found in the cache: nothing is trained
    imagenet = tmp_path / "keras" / "models" / perceptual_weights.IMAGENET_FILE
    imagenet.parent.mkdir(parents=True)
    imagenet.write_bytes(b"")
    assert perceptual_weights.resolve("auto") == "imagenet"
    assert perceptual_weights.resolve("project") == cached
    assert perceptual_weights.resolve("random") is None


def test_a_missing_weights_file_is_a_one_line_error(tmp_path):
    with pytest.raises(KCCError) as error:
        style_features.perceptual_extractor(weights=str(tmp_path / "none.weights.h5"))
    assert "does not exist" in str(error.value) and "\n" not in str(error.value)
