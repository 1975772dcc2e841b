"""NumPy backpropagation: numeric gradient checks and equality with tf.GradientTape."""

import numpy as np
import pytest

from keras_cv_course.fundamentals import backprop as bp

RNG = np.random.default_rng(0)


def normal(*shape):
    return RNG.normal(size=shape)


def _loss(forward, dout):
    return lambda: float(np.sum(forward()[0] * dout))


# --- numeric gradient checks ---------------------------------------------------------------


def test_linear_gradient_check():
    x, w, b = normal(4, 2, 3), normal(6, 5), normal(5)
    dout = normal(4, 5)
    _, cache = bp.linear_forward(x, w, b)
    grads = bp.linear_backward(dout, cache)
    assert bp.check_gradient(_loss(lambda: bp.linear_forward(x, w, b), dout), [x, w, b],
                             grads) < 1e-8


def test_relu_gradient_check():
    x = normal(5, 6)
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the kink, where the gradient is undefined
    dout = normal(5, 6)
    _, cache = bp.relu_forward(x)
    assert bp.check_gradient(_loss(lambda: bp.relu_forward(x), dout), [x],
                             [bp.relu_backward(dout, cache)]) < 1e-8


@pytest.mark.parametrize("stride, padding", [(1, "valid"), (1, "same"), (2, "same"), (2, "valid")])
def test_conv2d_gradient_check(stride, padding):
    x, w, b = normal(2, 6, 5, 3), normal(3, 3, 3, 4), normal(4)
    out, cache = bp.conv2d_forward(x, w, b, stride, padding)
    dout = normal(*out.shape)
    grads = bp.conv2d_backward(dout, cache)
    forward = lambda: bp.conv2d_forward(x, w, b, stride, padding)  # noqa: E731
    assert bp.check_gradient(_loss(forward, dout), [x, w, b], grads) < 1e-8


def test_maxpool_gradient_check():
    x = normal(2, 6, 6, 3)
    out, cache = bp.maxpool_forward(x)
    dout = normal(*out.shape)
    grad = bp.maxpool_backward(dout, cache)
    assert bp.check_gradient(_loss(lambda: bp.maxpool_forward(x), dout), [x], [grad]) < 1e-8


def test_batchnorm_gradient_check():
    x, gamma, beta = normal(6, 3, 2, 4) * 2 + 1, normal(4), normal(4)
    out, cache = bp.batchnorm_forward(x, gamma, beta)
    dout = normal(*out.shape)
    grads = bp.batchnorm_backward(dout, cache)
    forward = lambda: bp.batchnorm_forward(x, gamma, beta)  # noqa: E731
    assert bp.check_gradient(_loss(forward, dout), [x, gamma, beta], grads) < 1e-7


def test_dropout_gradient_check():
    x = normal(8, 5)
    out, cache = bp.dropout_forward(x, 0.4, seed=1)
    dout = normal(*out.shape)
    forward = lambda: bp.dropout_forward(x, 0.4, seed=1)  # noqa: E731
    assert bp.check_gradient(_loss(forward, dout), [x], [bp.dropout_backward(dout, cache)]) < 1e-8
    assert 0 < np.mean(out == 0) < 1


def test_softmax_cross_entropy_gradient_check():
    logits, labels = normal(6, 4), RNG.integers(0, 4, 6)
    _, dlogits = bp.softmax_cross_entropy(logits, labels)
    loss = lambda: bp.softmax_cross_entropy(logits, labels)[0]  # noqa: E731
    assert bp.check_gradient(loss, [logits], [dlogits]) < 1e-8


def test_a_two_layer_net_backpropagates_through_the_graph():
    """Chaining modules: the whole network's gradient also passes the check."""
    x, labels = normal(5, 3, 3, 2), RNG.integers(0, 3, 5)
    w1, b1, w2, b2 = normal(3, 3, 2, 4), normal(4), normal(4, 3), normal(3)

    def forward():
        h, c1 = bp.conv2d_forward(x, w1, b1, padding="same")
        a, c2 = bp.relu_forward(h)
        p, c3 = bp.maxpool_forward(a, 3, 3)
        s, c4 = bp.linear_forward(p, w2, b2)
        loss, ds = bp.softmax_cross_entropy(s, labels)
        return loss, (c1, c2, c3, c4, ds)

    _, (c1, c2, c3, c4, ds) = forward()
    dp, dw2, db2 = bp.linear_backward(ds, c4)
    da = bp.maxpool_backward(dp, c3)
    dh = bp.relu_backward(da, c2)
    _, dw1, db1 = bp.conv2d_backward(dh, c1)
    error = bp.check_gradient(lambda: forward()[0], [w1, b1, w2, b2], [dw1, db1, dw2, db2])
    assert error < 1e-6


# --- equality with tf.GradientTape on Keras layers ---------------------------------------------


def _tape(layer, x, dout, training=None, variables=()):
    """Gradients of ``sum(layer(x) * dout)`` for ``x`` and ``variables``."""
    import tensorflow as tf

    x = tf.Variable(x)
    with tf.GradientTape() as tape:
        out = layer(x, training=training) if training is not None else layer(x)
        loss = tf.reduce_sum(out * dout)
    grads = tape.gradient(loss, [x, *variables])
    return out.numpy(), [g.numpy() for g in grads]


def test_linear_and_relu_equal_keras():
    import keras

    x, w, b = normal(4, 6), normal(6, 5), normal(5)
    dense = keras.layers.Dense(5, dtype="float64")
    dense.build((None, 6))
    dense.set_weights([w, b])
    dout = normal(4, 5)
    out, (dx, dw, db) = _tape(dense, x, dout, variables=(dense.kernel, dense.bias))
    ours, cache = bp.linear_forward(x, w, b)
    np.testing.assert_allclose(ours, out, atol=1e-12)
    for a, b_ in zip(bp.linear_backward(dout, cache), (dx, dw, db), strict=True):
        np.testing.assert_allclose(a, b_, atol=1e-12)
    out, (dx,) = _tape(keras.layers.ReLU(dtype="float64"), x, dout[:, :1].repeat(6, axis=1))
    np.testing.assert_allclose(bp.relu_backward(dout[:, :1].repeat(6, axis=1), x), dx)


@pytest.mark.parametrize("stride, padding", [(1, "same"), (2, "same"), (2, "valid")])
def test_conv2d_equals_keras(stride, padding):
    import keras

    x, w, b = normal(2, 7, 6, 3), normal(3, 3, 3, 4), normal(4)
    conv = keras.layers.Conv2D(4, 3, strides=stride, padding=padding, dtype="float64")
    conv.build((None, 7, 6, 3))
    conv.set_weights([w, b])
    ours, cache = bp.conv2d_forward(x, w, b, stride, padding)
    dout = normal(*ours.shape)
    out, grads = _tape(conv, x, dout, variables=(conv.kernel, conv.bias))
    np.testing.assert_allclose(ours, out, atol=1e-10)
    for a, b_ in zip(bp.conv2d_backward(dout, cache), grads, strict=True):
        np.testing.assert_allclose(a, b_, atol=1e-10)


def test_maxpool_equals_keras():
    import keras

    x = normal(2, 6, 6, 3)
    ours, cache = bp.maxpool_forward(x)
    dout = normal(*ours.shape)
    out, (dx,) = _tape(keras.layers.MaxPooling2D(2, dtype="float64"), x, dout)
    np.testing.assert_allclose(ours, out)
    np.testing.assert_allclose(bp.maxpool_backward(dout, cache), dx)


def test_batchnorm_equals_keras_in_training_mode():
    import keras

    x, gamma, beta = normal(6, 3, 2, 4) * 2 + 1, normal(4), normal(4)
    layer = keras.layers.BatchNormalization(epsilon=1e-3, dtype="float64")
    layer.build((None, 3, 2, 4))
    layer.set_weights([gamma, beta, np.zeros(4), np.ones(4)])
    ours, cache = bp.batchnorm_forward(x, gamma, beta, epsilon=1e-3)
    dout = normal(*ours.shape)
    out, grads = _tape(layer, x, dout, training=True, variables=(layer.gamma, layer.beta))
    np.testing.assert_allclose(ours, out, atol=1e-10)
    for a, b_ in zip(bp.batchnorm_backward(dout, cache), grads, strict=True):
        np.testing.assert_allclose(a, b_, atol=1e-10)


def test_dropout_equals_keras_with_its_mask():
    import keras

    x = normal(50, 8) + 5.0  # no zeros, so the mask can be read off the output
    dout = normal(50, 8)
    out, (dx,) = _tape(keras.layers.Dropout(0.3, seed=2, dtype="float64"), x, dout,
                       training=True)
    ours, cache = bp.dropout_forward(x, 0.3, mask=out != 0)
    np.testing.assert_allclose(ours, out, atol=1e-12)
    np.testing.assert_allclose(bp.dropout_backward(dout, cache), dx, atol=1e-12)


def test_softmax_cross_entropy_equals_keras():
    import keras
    import tensorflow as tf

    logits, labels = normal(6, 4), RNG.integers(0, 4, 6)
    variable = tf.Variable(logits)
    with tf.GradientTape() as tape:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64")(
            labels, variable)
    ours, dlogits = bp.softmax_cross_entropy(logits, labels)
    assert ours == pytest.approx(float(loss), rel=1e-10)
    np.testing.assert_allclose(dlogits, tape.gradient(loss, variable).numpy(), atol=1e-12)
