"""Class log-probabilities from any classifier, for the gradient methods.

The registered classifiers end in a softmax by default
(``classifier_activation="softmax"``), some in raw scores (logits). The
methods of this package that differentiate a class score (class
visualisation, adversarial examples) therefore work on *log-probabilities*:
``log softmax(z)`` for logits ``z``, and ``log p`` for probabilities ``p``,
which is the same quantity. A log-probability does not saturate the way a
probability does, so its gradient stays informative far from the decision
boundary.
"""

import keras
import numpy as np
from keras import ops

from keras_cv_course.errors import KCCError

TINY = 1e-30  # keeps log(p) finite when a probability underflows

def outputs_probabilities(model):
    """True when ``model`` ends in a softmax (layer activation or Activation layer)."""
    activation = getattr(model.layers[-1], "activation", None)
    return getattr(activation, "__name__", "") == "softmax"

def log_probabilities(model, images):
    """``log p(class | image)``, a ``(batch, classes)`` tensor, for any classifier."""
    outputs = ops.cast(model(images, training=False), "float32")
    if outputs_probabilities(model):
        return ops.log(outputs + TINY)
    return ops.log_softmax(outputs, axis=-1)

def check_images(images, model=None):
    """Images as a float32 ``(batch, height, width, channels)`` array in ``[0, 1]``.

    Raises:
        KCCError: the array is not rank 4, or does not fit the model's input.
    """
    images = np.asarray(images, dtype="float32")
    if images.ndim != 4:
        raise KCCError(f"images must be a (batch, height, width, channels) array, "
                       f"got shape {images.shape}")
    if model is not None:
        expected = tuple(model.input_shape[1:])
        if any(e is not None and e != g for e, g in zip(expected, images.shape[1:])):
            raise KCCError(f"images of shape {images.shape[1:]} do not fit the model's "
                           f"input {expected}")
    return images

def check_non_negative(name, value):
    """Raises a one-line ``KCCError`` unless ``value`` is a finite number >= 0."""
    if not np.isfinite(value) or value < 0:
        raise KCCError(f"{name} must be a finite number >= 0, got {value}")
    return float(value)

def input_size(model):
    """The model's fixed ``(height, width, channels)`` input; ``None`` for free axes."""
    shape = model.input_shape
    if isinstance(shape, list):
        raise KCCError(f"expected a model with one image input, got inputs {shape}")
    return tuple(shape[1:])


def model_input(model):
    """The input tensor of a one-input model (its inputs list otherwise)."""
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs


def feature_model(model, layer_name=None):
    """A model from the input of ``model`` to the output of its layer ``layer_name``.

    ``None`` takes the input of the last layer: the penultimate features.
    """
    if layer_name is None:
        return keras.Model(model_input(model), model.layers[-1].input)
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        raise KCCError(f"model {model.name!r} has no layer {layer_name!r}; "
                       f"layers: {', '.join(names)}")
    return keras.Model(model_input(model), model.get_layer(layer_name).output)
