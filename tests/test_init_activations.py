"""Activations by name, and the variances of Xavier and Kaiming initialisation."""

import keras
import numpy as np
import pytest

from keras_cv_course.errors import KCCError
from keras_cv_course.layers import activations
from keras_cv_course.layers.initializers import KaimingInit, XavierInit, fans

X = np.linspace(-6, 6, 241).astype("float32")

KERAS_EQUIVALENT = {
    "sigmoid": keras.activations.sigmoid,
    "tanh": keras.activations.tanh,
    "relu": keras.activations.relu,
    "leaky_relu": lambda x: keras.activations.leaky_relu(x, negative_slope=0.01),
    "elu": keras.activations.elu,
    "gelu": lambda x: keras.activations.gelu(x, approximate=True),
    "gelu_exact": lambda x: keras.activations.gelu(x, approximate=False),
}


@pytest.mark.parametrize("name", sorted(activations.ACTIVATIONS))
def test_activation_equals_keras(name):
    ours = keras.ops.convert_to_numpy(activations.get(name)(X))
    theirs = keras.ops.convert_to_numpy(KERAS_EQUIVALENT[name](X))
    np.testing.assert_allclose(ours, theirs, atol=2e-6)


def test_activations_in_a_dense_layer():
    layer = keras.layers.Dense(3, activation=activations.get("leaky_relu"))
    assert layer(np.ones((2, 4), "float32")).shape == (2, 3)


def test_unknown_activation():
    with pytest.raises(KCCError, match="relu"):
        activations.get("rellu")


@pytest.mark.parametrize(
    "shape, fan_in, fan_out",
    [((300, 200), 300, 200), ((3, 3, 16, 32), 144, 288), ((5, 8, 4), 40, 20)],
)
def test_fans(shape, fan_in, fan_out):
    assert fans(shape) == (fan_in, fan_out)


@pytest.mark.parametrize("distribution", ["normal", "uniform"])
@pytest.mark.parametrize(
    "initializer, expected",
    [
        (lambda d: XavierInit(d, seed=1), lambda fi, fo: 2.0 / (fi + fo)),
        (lambda d: KaimingInit(d, seed=1), lambda fi, fo: 2.0 / fi),
        (lambda d: KaimingInit(d, negative_slope=0.2, seed=1), lambda fi, fo: 2.0 / 1.04 / fi),
    ],
)
@pytest.mark.parametrize("shape", [(400, 300), (3, 3, 32, 64)])
def test_initializer_variance(initializer, expected, distribution, shape):
    values = keras.ops.convert_to_numpy(initializer(distribution)(shape))
    target = expected(*fans(shape))
    # The sample variance of n draws has relative standard error about sqrt(2 / n).
    assert abs(values.mean()) < 5 * np.sqrt(target / values.size)
    assert values.var() == pytest.approx(target, rel=5 * np.sqrt(2.0 / values.size))
    if distribution == "uniform":
        assert np.abs(values).max() <= np.sqrt(3 * target) + 1e-7


def test_xavier_uniform_has_glorot_uniform_bounds():
    shape = (50, 70)
    limit = np.sqrt(6.0 / (50 + 70))  # Glorot & Bengio, Eq. 16
    values = keras.ops.convert_to_numpy(XavierInit("uniform", seed=0)(shape))
    assert np.abs(values).max() <= limit
    assert np.abs(values).max() > 0.98 * limit


def test_initializers_serialize():
    for initializer in (XavierInit("uniform", seed=3), KaimingInit(negative_slope=0.1)):
        config = keras.saving.serialize_keras_object(initializer)
        restored = keras.saving.deserialize_keras_object(config)
        assert restored.get_config() == initializer.get_config()
    with pytest.raises(KCCError, match="distribution"):
        XavierInit("gaussian")
