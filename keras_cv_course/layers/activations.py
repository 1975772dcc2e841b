"""The course's activation functions, by name.

=============  =====================================================  ==========================
name           formula                                                source
=============  =====================================================  ==========================
sigmoid        ``1 / (1 + exp(-x))``                                  logistic function
tanh           ``(e^x - e^-x) / (e^x + e^-x)``                        LeCun et al., "Efficient
                                                                      BackProp", 1998
relu           ``max(0, x)``                                          Nair & Hinton, ICML 2010
leaky_relu     ``max(a x, x)``, ``a = 0.01``                          Maas, Hannun, Ng, ICML 2013
elu            ``x`` if ``x > 0`` else ``a (e^x - 1)``, ``a = 1``     Clevert et al., ICLR 2016,
                                                                      arXiv:1511.07289
gelu           ``x Phi(x)``, tanh approximation                       Hendrycks & Gimpel, 2016,
                                                                      arXiv:1606.08415
=============  =====================================================  ==========================

``gelu`` is the tanh approximation
``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``: the exact form lowers to
``Erfc``, which tf2onnx cannot convert (see the export design notes).
``gelu_exact`` gives ``x Phi(x)`` with the error function for training-only
use. Each function equals its ``keras.activations`` counterpart (tested),
and ``keras.layers.Activation(get(name))`` or ``Dense(..., activation=get(name))``
uses it in a model; ``serialize_name`` maps back to Keras' own serializable
activation names.
"""

import math

from keras import ops

from keras_cv_course.errors import unknown_name_error

LEAKY_SLOPE = 0.01


def sigmoid(x):
    """Squashes to (0, 1); saturates, and its outputs are not zero-centred."""
    return 1.0 / (1.0 + ops.exp(-x))


def tanh(x):
    """Squashes to (-1, 1); zero-centred but still saturates."""
    return ops.tanh(x)


def relu(x):
    """``max(0, x)``: no saturation for ``x > 0``, zero gradient for ``x < 0``."""
    return ops.maximum(x, 0.0)


def leaky_relu(x, negative_slope=LEAKY_SLOPE):
    """ReLU with a small slope for negative inputs, so no unit is ever 'dead'."""
    return ops.where(x > 0, x, negative_slope * x)


def elu(x, alpha=1.0):
    """Exponential linear unit: smooth, negative outputs push mean activations to 0."""
    return ops.where(x > 0, x, alpha * (ops.exp(ops.minimum(x, 0.0)) - 1.0))


def gelu(x):
    """Gaussian error linear unit, tanh approximation (export-friendly)."""
    return 0.5 * x * (1.0 + ops.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def gelu_exact(x):
    """``x Phi(x)`` with the Gaussian CDF written through ``erf``."""
    return 0.5 * x * (1.0 + ops.erf(x / math.sqrt(2.0)))


ACTIVATIONS = {
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "gelu": gelu,
    "gelu_exact": gelu_exact,
}


def get(name):
    """Returns the activation function called ``name``.

    Raises:
        KCCError: unknown name; the message lists the closest names.
    """
    if name not in ACTIVATIONS:
        raise unknown_name_error("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]
