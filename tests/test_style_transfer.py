"""Style transfer: Gram matrices, the custom layers, Gatys's optimisation and TransformerNet."""

import os
import subprocess

import keras
import numpy as np
import pytest

from keras_cv_course import edge
from keras_cv_course.export import export
from keras_cv_course.layers.normalization import InstanceNorm
from keras_cv_course.understanding import style, style_features, style_network

SIZE = 32  # image size of the quick runs; the full-size network is only counted
REFERENCE_PARAMS = 1_679_235  # pytorch/examples fast_neural_style TransformerNet


@pytest.fixture(scope="module")
def extractor():
    keras.utils.set_random_seed(0)
    model, line = style_features.perceptual_extractor(weights=None)
    assert line == ("perceptual features: VGG-16, random initialisation "
                    "(no ImageNet weights given)")
    return model


@pytest.fixture(scope="module")
def images():
    return style_network.content_photos(SIZE)[:4], style_network.style_image(SIZE)


@pytest.fixture(scope="module")
def trained(extractor, images):
    photos, style_image = images
    network, history = style_network.train_style_network(
        style_image, photos, extractor, epochs=4, batch_size=2, image_size=SIZE)
    return network, history


@pytest.fixture(scope="module")
def exported(trained, images, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("style") / "export")
    manifest = export(trained[0], out, formats=("tflite", "onnx"), golden_batch=images[0][:2])
    return out, manifest


def test_transformer_net_has_the_reference_parameter_count():
    assert style_network.transformer_net((256, 256, 3)).count_params() == REFERENCE_PARAMS
    assert style_network.transformer_net().count_params() == REFERENCE_PARAMS


def test_gram_matrix_of_a_tiny_tensor():
    # H = 1, W = 2, C = 2: positions (1, 2) and (3, 4).
    features = np.array([[[[1.0, 2.0], [3.0, 4.0]]]], dtype="float32")
    expected = np.array([[1 + 9, 2 + 12], [2 + 12, 4 + 16]]) / (1 * 2 * 2)
    gram = keras.ops.convert_to_numpy(style.gram_matrix(features))
    np.testing.assert_allclose(gram[0], expected, rtol=1e-6)


def test_instance_norm_gives_zero_mean_unit_variance_per_channel():
    values = np.random.default_rng(0).normal(3.0, 5.0, (2, 6, 5, 4)).astype("float32")
    norm = InstanceNorm(epsilon=style_network.INSTANCE_NORM_EPSILON)
    out = keras.ops.convert_to_numpy(norm(values))
    np.testing.assert_allclose(out.mean(axis=(1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.var(axis=(1, 2)), 1.0, atol=1e-3)


def test_reflection_pad_equals_numpy_reflect():
    values = np.arange(2 * 4 * 5 * 3, dtype="float32").reshape(2, 4, 5, 3)
    out = keras.ops.convert_to_numpy(style_network.ReflectionPad2D(2)(values))
    np.testing.assert_array_equal(out, np.pad(values, ((0, 0), (2, 2), (2, 2), (0, 0)),
                                              mode="reflect"))


def test_nearest_upsampling_equals_numpy_repeat():
    values = np.arange(2 * 3 * 4 * 2, dtype="float32").reshape(2, 3, 4, 2)
    out = keras.ops.convert_to_numpy(style_network.NearestUpsampling2D()(values))
    np.testing.assert_array_equal(out, values.repeat(2, axis=1).repeat(2, axis=2))


def test_gatys_optimisation_lowers_its_loss(extractor, images):
    photos, style_image = images
    image, history = style.stylize_by_optimisation(photos[0], style_image, extractor, steps=8)
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert len(history) == 8 and history[-1] < 0.8 * history[0], history


def test_training_lowers_the_perceptual_loss(trained):
    network, history = trained
    losses = history["loss"]
    assert len(losses) == 4 and losses[-1] < 0.9 * losses[0], losses
    assert network.count_params() == REFERENCE_PARAMS


def test_keras_file_round_trip_gives_identical_outputs(trained, images, tmp_path):
    network = trained[0]
    path = str(tmp_path / "style.keras")
    network.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(images[0])),
                                  keras.ops.convert_to_numpy(network(images[0])))


def test_export_has_builtin_ops_only(exported):
    _, manifest = exported
    for fmt in ("tflite", "onnx"):
        entry = manifest["artifacts"][fmt]
        assert entry["parity"]["passed"], entry
        assert not [op for op in entry["ops"] if op.startswith("Flex") or op == "CUSTOM"]
    assert "MIRROR_PAD" in manifest["artifacts"]["tflite"]["ops"]


@pytest.mark.parametrize("fmt, name", [("tflite", "model.tflite"), ("onnx", "model.onnx")])
def test_artifacts_match_keras_without_tensorflow(trained, images, exported, fmt, name,
                                                  tmp_path):
    out, _ = exported
    photos = images[0]
    np.savez(tmp_path / "inputs.npz", images=photos)
    result = str(tmp_path / f"{fmt}.npz")
    command = edge.device_command(os.path.join(out, name), fmt, tmp_path / "inputs.npz",
                                  result, threads=1, runs=1, warmup=0)
    done = subprocess.run(command, capture_output=True, text=True,
                          env=edge.device_environment(), timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    meta, outputs = edge.read_result(result)
    assert meta["tensorflow_modules"] == []
    expected = keras.ops.convert_to_numpy(trained[0](photos))
    (actual,) = outputs.values()
    assert actual.shape == expected.shape
    assert np.max(np.abs(actual - expected)) < 1e-4
