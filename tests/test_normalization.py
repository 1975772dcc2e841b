"""Reference normalization layers equal Keras' layers in training and inference."""

import keras
import numpy as np
import pytest

from keras_cv_course.errors import KCCError
from keras_cv_course.layers import normalization

SHAPE = (4, 5, 6, 8)  # (batch, height, width, channels)


def _random(shape, seed, scale=3.0, offset=1.0):
    return (np.random.default_rng(seed).normal(size=shape) * scale + offset).astype("float32")


def _pair(name):
    if name == "batch":
        return normalization.BatchNorm(momentum=0.9), keras.layers.BatchNormalization(momentum=0.9)
    if name == "layer":
        return normalization.LayerNorm(), keras.layers.LayerNormalization()
    if name == "group":
        return normalization.GroupNorm(groups=4), keras.layers.GroupNormalization(groups=4)
    return normalization.InstanceNorm(), keras.layers.GroupNormalization(groups=SHAPE[-1])


def _copy_random_affine(ours, theirs):
    ours.build(SHAPE)
    theirs.build(SHAPE)
    for index, (a, b) in enumerate(zip(ours.weights, theirs.weights, strict=True)):
        assert a.shape == b.shape
        if a.trainable:
            value = _random(a.shape, seed=100 + index, scale=0.5)
            a.assign(value)
            b.assign(value)


@pytest.mark.parametrize("name", ["batch", "layer", "group", "instance"])
def test_equals_keras_in_training_and_inference(name):
    ours, theirs = _pair(name)
    _copy_random_affine(ours, theirs)
    for step in range(3):  # several steps, so BatchNorm's running averages move
        x = _random(SHAPE, seed=step)
        np.testing.assert_allclose(ours(x, training=True), theirs(x, training=True), atol=1e-5)
    x = _random(SHAPE, seed=99)
    np.testing.assert_allclose(ours(x, training=False), theirs(x, training=False), atol=1e-5)
    for a, b in zip(ours.weights, theirs.weights, strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b),
                                   atol=1e-6)


def test_batchnorm_training_output_is_standardised():
    layer = normalization.BatchNorm()
    y = keras.ops.convert_to_numpy(layer(_random(SHAPE, seed=1), training=True))
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 1, 2)), 1.0, atol=1e-2)


@pytest.mark.parametrize("name", ["batch", "layer", "group", "instance"])
def test_save_and_load_in_a_model(name, tmp_path):
    ours, _ = _pair(name)
    inputs = keras.Input(SHAPE[1:])
    model = keras.Model(inputs, ours(inputs))
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = _random(SHAPE, seed=3)
    np.testing.assert_allclose(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_group_count_must_divide_channels():
    with pytest.raises(KCCError, match="groups"):
        normalization.GroupNorm(groups=3).build(SHAPE)
