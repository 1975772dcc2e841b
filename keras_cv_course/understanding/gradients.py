"""Input gradients on any Keras backend: the one primitive of this package.

Saliency (Simonyan, Vedaldi and Zisserman 2014, arXiv:1312.6034), class
visualisation, feature inversion, adversarial examples, DeepDream and style
transfer all differentiate a scalar with respect to the *image*, not the
weights. Keras has no backend-neutral ``gradient`` op, so this module writes
it once for each backend: ``tf.GradientTape`` on TensorFlow, ``jax.grad``
on JAX. ``Adam`` then moves an image along such gradients.
"""

import keras
import numpy as np

from keras_cv_course.errors import KCCError

SUPPORTED_BACKENDS = ("tensorflow", "jax")


def value_and_gradient(function, inputs):
    """``function(inputs)`` and the gradient of its sum with respect to ``inputs``.

    Summing makes one backward pass give every example's own gradient when
    ``function`` returns one value per example (the examples do not mix).

    Args:
        function: maps a float tensor shaped like ``inputs`` to a tensor
            (a scalar, or one value per example), written with ``keras.ops``
            or by calling Keras models.
        inputs: a float array, e.g. images ``(batch, height, width, channels)``.

    Returns:
        ``(value, gradient)`` as NumPy arrays; ``gradient`` has the shape of
        ``inputs``.

    Raises:
        KCCError: the backend is not TensorFlow or JAX.
    """
    value, gradient = _backend_value_and_gradient(function, np.asarray(inputs, dtype="float32"))
    return keras.ops.convert_to_numpy(value), keras.ops.convert_to_numpy(gradient)


def gradient(function, inputs):
    """The gradient of ``sum(function(inputs))`` with respect to ``inputs``."""
    return value_and_gradient(function, inputs)[1]


def tensor_gradient(function, inputs):
    """``gradient`` on backend tensors, for use inside a compiled train step.

    Unlike ``gradient`` it converts nothing to NumPy, so it can run inside
    ``tf.function`` or a ``jax.jit`` trace (adversarial training calls it
    from the model's ``compute_loss``).
    """
    return _backend_value_and_gradient(function, inputs)[1]


def _backend_value_and_gradient(function, inputs):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _tensorflow(function, inputs)
    if backend == "jax":
        return _jax(function, inputs)
    raise KCCError(f"input gradients need the backend {' or '.join(SUPPORTED_BACKENDS)}, "
                   f"got {backend!r}")


def _tensorflow(function, inputs):
    import tensorflow as tf

    inputs = tf.convert_to_tensor(inputs)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        value = function(inputs)
        total = tf.reduce_sum(tf.cast(value, "float32"))
    return value, tape.gradient(total, inputs)


def _jax(function, inputs):
    import jax
    import jax.numpy as jnp

    def total(x):
        value = function(x)
        return jnp.sum(value.astype("float32")), value

    (_, value), grad = jax.value_and_grad(total, has_aux=True)(jnp.asarray(inputs))
    return value, grad


class Adam:
    """The Adam update (Kingma and Ba, ICLR 2015, arXiv:1412.6980) on a NumPy array."""

    def __init__(self, learning_rate, beta1=0.9, beta2=0.999, epsilon=1e-8):
        self.learning_rate, self.beta1, self.beta2, self.epsilon = (
            learning_rate, beta1, beta2, epsilon)
        self.m = self.v = 0.0
        self.t = 0

    def step(self, value, grad):
        """``value`` moved one step down ``grad``."""
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * grad
        self.v = self.beta2 * self.v + (1 - self.beta2) * grad**2
        m_hat = self.m / (1 - self.beta1**self.t)
        v_hat = self.v / (1 - self.beta2**self.t)
        return value - self.learning_rate * m_hat / (np.sqrt(v_hat) + self.epsilon)
