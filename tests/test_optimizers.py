"""Reference optimizers against Keras' built-ins and the papers' formulas."""

import keras
import numpy as np
import pytest

from keras_cv_course.errors import KCCError
from keras_cv_course.training import optimizers

STEPS = 100
# A fixed ill-conditioned problem: f(w) = 1/2 sum_i a_i (w_i - c_i)^2 + 0.1 sum_i w_i^3 / 3
# (the cubic term keeps the gradient from being linear, so curvature varies along the path).
A = np.array([1.0, 10.0, 0.3, 3.0], dtype="float32")
C = np.array([1.0, -1.0, 2.0, 0.5], dtype="float32")
W0 = np.array([-1.0, 1.5, 0.0, 2.0], dtype="float32")


def gradient(w):
    return A * (w - C) + 0.1 * w**2


def keras_trajectory(optimizer, steps=STEPS):
    w = keras.Variable(W0.copy())
    path = []
    for _ in range(steps):
        g = keras.ops.convert_to_tensor(gradient(keras.ops.convert_to_numpy(w)))
        optimizer.apply_gradients([(g, w)])
        path.append(keras.ops.convert_to_numpy(w).copy())
    return np.stack(path)


# Pairs (ours, Keras') that implement the same formula.
SAME_FORMULA = {
    "sgd": (lambda: optimizers.SGD(0.05), lambda: keras.optimizers.SGD(0.05)),
    "sgd_momentum": (
        lambda: optimizers.SGDMomentum(0.02, momentum=0.9),
        lambda: keras.optimizers.SGD(0.02, momentum=0.9),
    ),
    "nesterov": (
        lambda: optimizers.Nesterov(0.02, momentum=0.9),
        lambda: keras.optimizers.SGD(0.02, momentum=0.9, nesterov=True),
    ),
    # epsilon=0 and equal initial accumulators remove the eps-placement difference.
    "adagrad": (
        lambda: optimizers.AdaGrad(0.1, initial_accumulator_value=0.1, epsilon=0.0),
        lambda: keras.optimizers.Adagrad(0.1, initial_accumulator_value=0.1, epsilon=0.0),
    ),
    "rmsprop": (
        lambda: optimizers.RMSProp(0.01, rho=0.9, epsilon=0.0),
        lambda: keras.optimizers.RMSprop(0.01, rho=0.9, epsilon=0.0),
    ),
    "adam": (
        lambda: optimizers.Adam(0.01, epsilon=0.0),
        lambda: keras.optimizers.Adam(0.01, epsilon=0.0),
    ),
    "adamw": (
        lambda: optimizers.AdamW(0.01, weight_decay=0.1),
        lambda: keras.optimizers.AdamW(0.01, weight_decay=0.1),
    ),
}


@pytest.mark.parametrize("name", sorted(SAME_FORMULA))
def test_trajectory_equals_keras(name):
    ours, theirs = SAME_FORMULA[name]
    np.testing.assert_allclose(
        keras_trajectory(ours()), keras_trajectory(theirs()), atol=1e-6, rtol=0
    )


def numpy_paper_trajectory(name, lr, steps=STEPS, eps=1e-7, mu=0.9, rho=0.9, b1=0.9, b2=0.999):
    """The papers' update rules in float64 NumPy."""
    w = W0.astype("float64")
    state = np.zeros_like(w)
    second = np.zeros_like(w)
    path = []
    for t in range(1, steps + 1):
        g = gradient(w)
        if name == "adagrad":  # Duchi et al. 2011
            state += g**2
            w = w - lr * g / (np.sqrt(state) + eps)
        elif name == "rmsprop":  # Tieleman & Hinton 2012
            state = rho * state + (1 - rho) * g**2
            w = w - lr * g / (np.sqrt(state) + eps)
        elif name == "adam":  # Kingma & Ba 2015, Algorithm 1
            state = b1 * state + (1 - b1) * g
            second = b2 * second + (1 - b2) * g**2
            m_hat, v_hat = state / (1 - b1**t), second / (1 - b2**t)
            w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
        elif name == "nesterov":  # Sutskever et al. 2013, look-ahead form
            new_state = mu * state - lr * g
            w = w - mu * state + (1 + mu) * new_state
            state = new_state
        path.append(w.copy())
    return np.stack(path)


@pytest.mark.parametrize(
    "name, ours",
    [
        ("adagrad", lambda: optimizers.AdaGrad(0.1)),
        ("rmsprop", lambda: optimizers.RMSProp(0.01)),
        ("adam", lambda: optimizers.Adam(0.01)),
        ("nesterov", lambda: optimizers.Nesterov(0.02)),
    ],
)
def test_defaults_follow_the_paper(name, ours):
    optimizer = ours()
    lr = float(optimizer.learning_rate)
    expected = numpy_paper_trajectory(name, lr)
    np.testing.assert_allclose(keras_trajectory(optimizer), expected, atol=1e-5, rtol=0)


def test_adam_eps_placement_differs_from_keras():
    """With the default epsilon the two Adam forms are close but not identical."""
    ours = keras_trajectory(optimizers.Adam(0.01, epsilon=1e-3), steps=20)
    theirs = keras_trajectory(keras.optimizers.Adam(0.01, epsilon=1e-3), steps=20)
    assert 1e-6 < np.max(np.abs(ours - theirs)) < 1e-2


def _tiny_model():
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(3, name="dense")(inputs)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("name", sorted(optimizers.OPTIMIZERS))
def test_fit_save_and_load(name, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = rng.integers(0, 3, size=16)
    model = _tiny_model()
    model.compile(optimizer=optimizers.get(name, learning_rate=0.01),
                  loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    for ours, theirs in zip(model.optimizer.variables, loaded.optimizer.variables, strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(ours),
                                   keras.ops.convert_to_numpy(theirs))
    np.testing.assert_allclose(model.predict(x, verbose=0), loaded.predict(x, verbose=0),
                               atol=1e-6)


def test_unknown_optimizer_name():
    with pytest.raises(KCCError, match="adam"):
        optimizers.get("adamm")
