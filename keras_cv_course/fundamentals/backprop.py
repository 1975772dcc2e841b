"""Backpropagation by hand: modular forward and backward passes in NumPy.

A network is a computational graph of simple modules. Each module here is a
pair of functions, in the style of Stanford's CS231n assignments:

* ``*_forward(inputs, parameters) -> (output, cache)`` computes the output
  and keeps what the backward pass needs;
* ``*_backward(upstream, cache) -> gradients`` applies the chain rule: given
  ``dL/d output`` it returns ``dL/d input`` and ``dL/d parameter``.

Backpropagation (Rumelhart, Hinton, Williams, "Learning representations by
back-propagating errors", Nature 1986) runs the forward functions in order,
then the backward functions in reverse order. ``numeric_gradient`` checks
any backward pass against centred finite differences, and
``tests/test_backprop.py`` checks each against ``tf.GradientTape`` on the
corresponding Keras layer.

Layouts follow Keras: images are ``(batch, height, width, channels)``, a
dense kernel is ``(in, out)`` and a convolution kernel is
``(kh, kw, in_channels, out_channels)``. BatchNorm follows Ioffe & Szegedy
(arXiv:1502.03167) in training mode; Dropout is "inverted" dropout
(Srivastava et al., JMLR 2014), scaling kept units by ``1 / (1 - p)``.
"""

import numpy as np

# --- Linear and ReLU ------------------------------------------------------------------


def linear_forward(x, w, b):
    """``out = x w + b`` with ``x`` flattened to ``(batch, in)``."""
    out = x.reshape(len(x), -1) @ w + b
    return out, (x, w)


def linear_backward(dout, cache):
    """Returns ``(dx, dw, db)``."""
    x, w = cache
    flat = x.reshape(len(x), -1)
    return (dout @ w.T).reshape(x.shape), flat.T @ dout, dout.sum(axis=0)


def relu_forward(x):
    """``max(0, x)``."""
    return np.maximum(x, 0), x


def relu_backward(dout, cache):
    """The gradient passes where the input was positive; ReLU is a gate."""
    return dout * (cache > 0)


# --- Convolution and max pooling ---------------------------------------------------------


def _same_padding(size, kernel, stride):
    """Keras' ``"same"`` padding: ``(before, after)``, the extra pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad(x, kernel_size, stride, padding):
    if padding == "valid":
        return x, ((0, 0), (0, 0))
    pads = tuple(_same_padding(x.shape[axis], kernel_size[axis - 1], stride) for axis in (1, 2))
    return np.pad(x, ((0, 0),) + pads + ((0, 0),)), pads


def im2col(x_padded, kh, kw, stride):
    """Every ``kh x kw`` window as one row: ``(batch, out_h, out_w, kh, kw, channels)``.

    The loop runs over the ``kh * kw`` kernel offsets only; each step copies
    one strided slice of the whole batch.
    """
    batch, height, width, channels = x_padded.shape
    out_h, out_w = (height - kh) // stride + 1, (width - kw) // stride + 1
    cols = np.empty((batch, out_h, out_w, kh, kw, channels), dtype=x_padded.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j, :] = x_padded[:, i:i + stride * out_h:stride,
                                              j:j + stride * out_w:stride, :]
    return cols


def col2im(dcols, padded_shape, stride):
    """The adjoint of ``im2col``: adds each window's gradient back to its pixels."""
    _, out_h, out_w, kh, kw, _ = dcols.shape
    dx = np.zeros(padded_shape, dtype=dcols.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, i:i + stride * out_h:stride, j:j + stride * out_w:stride, :] += \
                dcols[:, :, :, i, j, :]
    return dx


def conv2d_forward(x, w, b, stride=1, padding="valid"):
    """2-D convolution (cross-correlation, as in every deep-learning library).

    Args:
        x: ``(batch, height, width, in_channels)``.
        w: ``(kh, kw, in_channels, out_channels)``.
        b: ``(out_channels,)``.
        stride: step between windows.
        padding: ``"valid"`` or ``"same"`` (Keras' rule).

    Returns:
        ``(out, cache)``; ``out`` is ``(batch, out_h, out_w, out_channels)``.
    """
    kh, kw, _, out_channels = w.shape
    x_padded, pads = _pad(x, (kh, kw), stride, padding)
    cols = im2col(x_padded, kh, kw, stride)
    out = cols.reshape(*cols.shape[:3], -1) @ w.reshape(-1, out_channels) + b
    return out, (x.shape, x_padded.shape, pads, cols, w, stride)


def conv2d_backward(dout, cache):
    """Returns ``(dx, dw, db)``."""
    x_shape, padded_shape, pads, cols, w, stride = cache
    out_channels = w.shape[-1]
    flat_cols = cols.reshape(-1, np.prod(w.shape[:3]))
    flat_dout = dout.reshape(-1, out_channels)
    dw = (flat_cols.T @ flat_dout).reshape(w.shape)
    db = flat_dout.sum(axis=0)
    dcols = (flat_dout @ w.reshape(-1, out_channels).T).reshape(cols.shape)
    dx_padded = col2im(dcols, padded_shape, stride)
    (top, _), (left, _) = pads
    dx = dx_padded[:, top:top + x_shape[1], left:left + x_shape[2], :]
    return dx, dw, db


def maxpool_forward(x, pool_size=2, stride=2):
    """Max over ``pool_size x pool_size`` windows (``"valid"`` padding)."""
    cols = im2col(x, pool_size, pool_size, stride)  # (b, oh, ow, p, p, c)
    windows = cols.reshape(*cols.shape[:3], -1, cols.shape[-1])  # (b, oh, ow, p*p, c)
    winner = windows.argmax(axis=3)  # the first maximum of each window
    out = np.take_along_axis(windows, winner[:, :, :, None, :], axis=3)[:, :, :, 0, :]
    return out, (x.shape, cols.shape, winner, stride)


def maxpool_backward(dout, cache):
    """Routes each window's gradient to the input that won the max."""
    x_shape, cols_shape, winner, stride = cache
    batch, out_h, out_w, p, _, channels = cols_shape
    dwindows = np.zeros((batch, out_h, out_w, p * p, channels), dtype=dout.dtype)
    np.put_along_axis(dwindows, winner[:, :, :, None, :], dout[:, :, :, None, :], axis=3)
    return col2im(dwindows.reshape(cols_shape), x_shape, stride)


# --- BatchNorm, Dropout and the loss ------------------------------------------------------


def batchnorm_forward(x, gamma, beta, epsilon=1e-3):
    """Training-mode batch normalization over every axis but the last.

    ``x_hat = (x - mean) / sqrt(var + eps)``, ``out = gamma x_hat + beta``,
    with the batch's mean and biased variance.
    """
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axis=axes)
    inv_std = 1.0 / np.sqrt(x.var(axis=axes) + epsilon)
    x_hat = (x - mean) * inv_std
    return gamma * x_hat + beta, (x_hat, inv_std, gamma)


def batchnorm_backward(dout, cache):
    """Returns ``(dx, dgamma, dbeta)``.

    The mean and variance depend on every input, so ``dx`` has three terms;
    collected, they give the compact form
    ``dx = inv_std / n * (n dx_hat - sum(dx_hat) - x_hat sum(dx_hat x_hat))``.
    """
    x_hat, inv_std, gamma = cache
    axes = tuple(range(dout.ndim - 1))
    n = dout.size // dout.shape[-1]
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * x_hat).sum(axis=axes)
    dx_hat = dout * gamma
    dx = inv_std / n * (
        n * dx_hat - dx_hat.sum(axis=axes) - x_hat * (dx_hat * x_hat).sum(axis=axes))
    return dx, dgamma, dbeta


def dropout_forward(x, rate, mask=None, seed=None):
    """Inverted dropout: ``out = x * mask / (1 - rate)``.

    Args:
        x: any array.
        rate: probability of dropping a unit.
        mask: a given boolean keep-mask (to replay another library's draw);
            ``None`` draws one with ``seed``.
        seed: seed of the drawn mask.
    """
    if mask is None:
        mask = np.random.default_rng(seed).uniform(size=x.shape) >= rate
    scale = mask / (1.0 - rate)
    return x * scale, scale


def dropout_backward(dout, cache):
    """The same mask and scale apply to the gradient."""
    return dout * cache


def softmax_cross_entropy(logits, labels):
    """Mean softmax cross-entropy and its gradient with respect to the logits.

    ``L = -mean_i log softmax(s_i)[y_i]`` and ``dL/ds = (softmax(s) - onehot(y)) / n``.
    Subtracting each row's maximum first keeps ``exp`` from overflowing.

    Returns:
        ``(loss, dlogits)``.
    """
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = len(logits)
    loss = -log_probs[np.arange(n), labels].mean()
    dlogits = np.exp(log_probs)
    dlogits[np.arange(n), labels] -= 1.0
    return loss, dlogits / n


# --- Gradient checking -----------------------------------------------------------------


def numeric_gradient(f, x, h=1e-5):
    """Centred finite differences ``(f(x + h e_i) - f(x - h e_i)) / 2h`` of a scalar ``f``.

    ``x`` is perturbed in place and restored. Use float64: in float32 the
    rounding error of ``f`` swamps the difference.
    """
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + h
        plus = f()
        x[index] = original - h
        minus = f()
        x[index] = original
        grad[index] = (plus - minus) / (2.0 * h)
    return grad


def relative_error(a, b):
    """``max |a - b| / max(|a| + |b|)``: the gradient checker's yardstick."""
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a) + np.abs(b)), 1e-12))


def check_gradient(loss, inputs, analytic, h=1e-5):
    """Relative error between ``analytic`` gradients and numeric ones.

    Args:
        loss: ``loss()`` returns a scalar computed from ``inputs``; to check
            a module's backward pass for an upstream gradient ``dout``, use
            ``loss = lambda: np.sum(forward(...)[0] * dout)``.
        inputs: the arrays to differentiate with respect to (float64).
        analytic: the backward pass's gradients, one per input.
        h: finite-difference step.

    Returns:
        The largest relative error over the inputs; about 1e-7 or less
        means the backward pass is right.

    Example:
        >>> x, w, b = rng.normal(size=(4, 5)), rng.normal(size=(5, 3)), np.zeros(3)
        >>> dout = rng.normal(size=(4, 3))
        >>> out, cache = linear_forward(x, w, b)
        >>> check_gradient(lambda: np.sum(linear_forward(x, w, b)[0] * dout),
        ...                [x, w, b], linear_backward(dout, cache))  # ~1e-10
    """
    return max(relative_error(numeric_gradient(loss, x, h), g)
               for x, g in zip(inputs, analytic, strict=True))
