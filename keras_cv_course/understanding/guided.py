"""Guided backpropagation: a copy of a model whose ReLUs pass back only positive signals.

Springenberg, Dosovitskiy, Brox and Riedmiller, "Striving for Simplicity:
The All Convolutional Net", ICLR workshop 2015, arXiv:1412.6806. At a ReLU
``y = max(x, 0)`` ordinary backpropagation passes the upstream gradient
``g`` where ``x > 0``; the "deconvnet" of Zeiler and Fergus passes it where
``g > 0``; *guided* backpropagation passes it only where both hold:
``g * [x > 0] * [g > 0]``. The forward pass is unchanged.

``guided_model`` clones a functional model (``keras.models.clone_model``),
swapping every ReLU for one whose gradient is that rule
(``keras.ops.custom_gradient``), and copies the weights. Three kinds of
ReLU are swapped: ``Activation("relu")`` layers, plain ``layers.ReLU``
layers, and layers with an ``activation="relu"`` argument (``Conv2D``,
``Dense``...). The original model is never modified: the clone has its own
layers and its own copy of the weights.
"""

import keras
from keras import layers, ops


@ops.custom_gradient
def guided_relu(x):
    """``max(x, 0)`` whose gradient passes ``g`` only where ``x > 0`` and ``g > 0``."""
    positive_input = ops.cast(x > 0, x.dtype)

    def grad(*args, upstream=None):
        if upstream is None:
            (upstream,) = args
        return upstream * positive_input * ops.cast(upstream > 0, upstream.dtype)

    return ops.relu(x), grad


def is_relu(function):
    """True for Keras' relu activation (a function or its name)."""
    return function is keras.activations.relu or function == "relu" or (
        getattr(function, "__name__", "") == "relu")


def is_plain_relu_layer(layer):
    """A ``layers.ReLU`` with the defaults: no cap, no leak, threshold 0."""
    return isinstance(layer, layers.ReLU) and layer.max_value is None and (
        not layer.negative_slope and not layer.threshold)


def guided_clone(layer):
    """``clone_model``'s ``clone_function``: a fresh copy of ``layer``, guided if it is a ReLU."""
    if is_plain_relu_layer(layer) or (
            isinstance(layer, layers.Activation) and is_relu(layer.activation)):
        return layers.Activation(guided_relu, name=layer.name, dtype=layer.dtype_policy)
    clone = layer.__class__.from_config(layer.get_config())
    if is_relu(getattr(layer, "activation", None)):
        clone.activation = guided_relu
    return clone


def copy_weights(source, target):
    """Copies each layer's weights from ``source`` to the same-named layer of ``target``."""
    for layer in source.layers:
        if layer.weights:
            target.get_layer(layer.name).set_weights(layer.get_weights())


def guided_model(model):
    """A copy of the functional ``model`` whose ReLUs backpropagate the guided way.

    Args:
        model: a Keras functional (or Sequential) model.

    Returns:
        A new model with the same forward pass and weights (copied, not
        shared); ``model`` is left exactly as it was.
    """
    clone = keras.models.clone_model(model, clone_function=guided_clone, recursive=True)
    copy_weights(model, clone)
    return clone
