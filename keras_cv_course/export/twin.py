"""A tf_keras (Keras 2) twin of a Keras 3 functional model.

The TensorFlow Model Optimization Toolkit (``tensorflow-model-optimization``
0.8.1; Jacob et al., "Quantization and Training of Neural Networks for
Efficient Integer-Arithmetic-Only Inference", CVPR 2018, arXiv:1712.05877;
Zhu and Gupta, "To prune, or not to prune", 2017, arXiv:1710.01878) only
accepts tf_keras models: ``quantize_model`` and ``prune_low_magnitude`` raise
on Keras 3 models and ``cluster_weights`` returns None (DESIGN.md §6.6).

``to_tf_keras`` walks the Keras 3 functional graph depth by depth (inputs
first), rebuilds each layer from its config in ``tf_keras.layers``, calls it
on the twin tensors of its inputs, and finally copies the weights. The
config is reduced to what tf_keras understands:

* initializer, regularizer and constraint keys are dropped (the weights are
  copied, and the twin is fine-tuned, not trained from scratch);
* a dtype policy becomes its name;
* Keras-3-only keys (``quantization_config``, ``rms_scaling``, ...) are
  dropped when they hold their neutral value, and refused otherwise.

The course's own ViT layers (``ClassToken``, ``PositionEmbedding``, ``GELU``)
are short compositions of TensorFlow ops and are rebuilt as small tf_keras
layers here; any other layer without a tf_keras counterpart raises a
one-line ``KCCError`` naming it. ``check_twin`` measures the largest output
difference on a batch.
"""

import inspect

import numpy as np

from keras_cv_course.errors import KCCError

TWIN_PACKAGE = "kcc_twin"

# Keras 3 config keys that tf_keras layers lack, with the value that means
# "feature off": only then can the key be dropped without changing the layer.
_NEUTRAL_KERAS3_KEYS = {
    "quantization_config": None,
    "lora_rank": None,
    "lora_alpha": None,
    "rms_scaling": False,
    "use_gate": False,
    "sliding_window": None,
    "seed": None,
    "optional": False,
}
_DROPPED_SUFFIXES = ("_initializer", "_regularizer", "_constraint")


def _tf_keras():
    import tf_keras

    return tf_keras


def to_tf_keras(model):
    """Translates a Keras 3 functional model to an equal tf_keras model.

    Args:
        model: a built Keras 3 functional model (nested functional models and
            layers called several times are allowed).

    Returns:
        A ``tf_keras.Model`` with the same layer names (so the same input and
        output names), the same structure of outputs and copied weights.

    Raises:
        KCCError: a layer has no tf_keras translation; the message names it.
    """
    translated = {}
    twin = _translate_functional(model, translated)
    for layer, twin_layer in translated.values():
        if not isinstance(twin_layer, _tf_keras().Model):  # its layers are copied one by one
            _copy_weights(layer, twin_layer)
    return twin


def _translate_functional(model, translated):
    """Rebuilds one functional graph; ``translated`` maps id(layer) -> (layer, twin)."""
    tf_keras = _tf_keras()
    if not hasattr(model, "_nodes_by_depth"):
        raise KCCError(f"cannot translate model {model.name!r} ({type(model).__name__}) to "
                       "tf_keras: only functional models have a graph to walk")
    tensors = {}
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            operation = node.operation
            if node.is_input:
                tensor = node.outputs[0]
                tensors[id(tensor)] = tf_keras.Input(
                    shape=tuple(tensor.shape[1:]), dtype=tensor.dtype,
                    name=operation.name)
                continue
            twin_layer = _twin_layer(operation, translated)
            args, kwargs = _map_arguments(node.arguments, tensors)
            outputs = twin_layer(*args, **kwargs)
            flat_outputs = _flatten(outputs)
            if len(flat_outputs) != len(node.outputs):
                raise KCCError(f"cannot translate layer {operation.name!r} "
                               f"({type(operation).__name__}) to tf_keras: it returns "
                               f"{len(flat_outputs)} tensors where Keras returned "
                               f"{len(node.outputs)}")
            for keras_tensor, twin_tensor in zip(node.outputs, flat_outputs):
                tensors[id(keras_tensor)] = twin_tensor
    inputs = _map_structure(model._inputs_struct, tensors)
    outputs = _map_structure(model._outputs_struct, tensors)
    return tf_keras.Model(inputs, outputs, name=model.name)


def _map_arguments(arguments, tensors):
    args = [_map_structure(value, tensors) for value in arguments.args]
    kwargs = {key: _map_structure(value, tensors) for key, value in arguments.kwargs.items()}
    return args, kwargs


def _map_structure(structure, tensors):
    """Replaces every Keras tensor in a nested structure by its twin."""
    import keras

    def replace(value):
        if isinstance(value, keras.KerasTensor):
            return tensors[id(value)]
        return value

    return keras.tree.map_structure(replace, structure)


def _flatten(outputs):
    import tensorflow as tf

    return tf.nest.flatten(outputs)


def _twin_layer(layer, translated):
    """The twin of ``layer``, built once even when the layer is called several times."""
    key = id(layer)
    if key not in translated:
        translated[key] = (layer, _translate_layer(layer, translated))
    return translated[key][1]


def _translate_layer(layer, translated):
    import keras

    if isinstance(layer, keras.Model):
        return _translate_functional(layer, translated)
    builder = _CUSTOM_TRANSLATIONS.get(type(layer).__name__)
    if builder is not None and type(layer).__module__.startswith("keras_cv_course"):
        return builder(layer)
    tf_keras = _tf_keras()
    cls = getattr(tf_keras.layers, type(layer).__name__, None)
    if cls is None or not type(layer).__module__.startswith("keras."):
        raise _refusal(layer, "no tf_keras layer of that class")
    return cls(**_twin_config(layer, cls))


def _refusal(layer, reason):
    return KCCError(f"cannot translate layer {layer.name!r} ({type(layer).__name__}) to "
                    f"tf_keras: {reason}")


def _twin_config(layer, cls):
    """The layer's config, reduced to keys that ``cls`` understands."""
    config = {}
    accepted = _accepted_keys(cls)
    for key, value in layer.get_config().items():
        if key.endswith(_DROPPED_SUFFIXES):
            continue
        if key == "dtype":
            value = _dtype_name(value)
        elif key == "activation":
            value = _activation(layer, value)
        if key not in accepted:
            if key in _NEUTRAL_KERAS3_KEYS and value == _NEUTRAL_KERAS3_KEYS[key]:
                continue
            raise _refusal(layer, f"config key {key}={value!r} has no tf_keras equivalent")
        config[key] = value
    return config


def _accepted_keys(cls):
    keys = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            keys.update(inspect.signature(init).parameters)
    # Base Layer keyword arguments that tf_keras reads from **kwargs.
    return keys | {"name", "trainable", "dtype", "input_shape", "batch_input_shape"}


def _dtype_name(dtype):
    if isinstance(dtype, dict):
        return dtype.get("config", {}).get("name", "float32")
    return getattr(dtype, "name", dtype)


def _activation(layer, value):
    if isinstance(value, dict):
        value = value.get("config", value)
    if not isinstance(value, str):
        raise _refusal(layer, f"activation {value!r} is not a named activation")
    twin = _TWIN_ACTIVATIONS.get(value)
    if twin is not None:
        return twin()
    try:
        _tf_keras().activations.get(value)
    except ValueError:
        raise _refusal(layer, f"activation {value!r} is unknown to tf_keras") from None
    return value


def _copy_weights(layer, twin_layer):
    weights = layer.get_weights()
    twin_weights = twin_layer.get_weights()
    shapes = [w.shape for w in weights]
    twin_shapes = [w.shape for w in twin_weights]
    if shapes != twin_shapes:
        raise _refusal(layer, f"weight shapes {shapes} differ from the twin's {twin_shapes}")
    if weights:
        twin_layer.set_weights(weights)


def check_twin(model, twin, batch):
    """Largest absolute difference between the outputs of ``model`` and ``twin``.

    Args:
        model: the Keras 3 model.
        twin: its tf_keras twin (``to_tf_keras(model)``).
        batch: inputs both models accept (an array, or a dict by input name).

    Returns:
        The largest absolute difference over every output, as a float.
    """
    import keras
    import tensorflow as tf

    expected = keras.tree.flatten(model(batch, training=False))
    actual = tf.nest.flatten(twin(batch, training=False))
    if len(expected) != len(actual):
        raise KCCError(f"the twin has {len(actual)} outputs; the model has {len(expected)}")
    errors = [np.max(np.abs(keras.ops.convert_to_numpy(e) - np.asarray(a)), initial=0.0)
              for e, a in zip(expected, actual)]
    return float(max(errors, default=0.0))


def assert_twin_equal(model, twin, batch, tolerance=1e-5):
    """Raises ``KCCError`` unless the twin's outputs equal the model's within ``tolerance``."""
    error = check_twin(model, twin, batch)
    if not error <= tolerance:
        raise KCCError(f"the tf_keras twin of {model.name!r} differs from it by {error:.3g} "
                       f"(allowed {tolerance:g})")
    return error


# The twins of the course's own ViT layers (keras_cv_course.layers.vit_layers).
# They are defined lazily, so that importing this module needs no TensorFlow.
_TWIN_CLASSES = {}


def _twin_classes():
    if _TWIN_CLASSES:
        return _TWIN_CLASSES
    import tensorflow as tf

    tf_keras = _tf_keras()
    register = tf_keras.utils.register_keras_serializable(package=TWIN_PACKAGE)

    @register
    class ClassToken(tf_keras.layers.Layer):
        """Prepends a learnable ``(1, 1, d)`` token to a ``(batch, n, d)`` sequence."""

        def build(self, input_shape):
            self.token = self.add_weight(name="token", shape=(1, 1, input_shape[-1]),
                                         initializer="zeros")
            super().build(input_shape)

        def call(self, inputs):
            token = tf.broadcast_to(tf.cast(self.token, inputs.dtype),
                                    (tf.shape(inputs)[0], 1, tf.shape(inputs)[-1]))
            return tf.concat([token, inputs], axis=1)

    @register
    class PositionEmbedding(tf_keras.layers.Layer):
        """Adds a learnable ``(1, length, d)`` embedding."""

        def build(self, input_shape):
            self.embedding = self.add_weight(
                name="embedding", shape=(1, input_shape[1], input_shape[2]),
                initializer="zeros")
            super().build(input_shape)

        def call(self, inputs):
            return inputs + tf.cast(self.embedding, inputs.dtype)

    @register
    class GELU(tf_keras.layers.Layer):
        """``x Phi(x)``, exact or with the tanh approximation."""

        def __init__(self, approximate=True, **kwargs):
            super().__init__(**kwargs)
            self.approximate = bool(approximate)

        def call(self, inputs):
            return tf.nn.gelu(inputs, approximate=self.approximate)

        def get_config(self):
            return {**super().get_config(), "approximate": self.approximate}

    @register
    def hard_silu(x):
        """``x relu6(x + 3) / 6``, Keras 3's ``hard_silu`` (tf_keras lacks it)."""
        return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)

    _TWIN_CLASSES.update(ClassToken=ClassToken, PositionEmbedding=PositionEmbedding,
                         GELU=GELU, hard_silu=hard_silu)
    return _TWIN_CLASSES


def _base_kwargs(layer):
    return {"name": layer.name, "trainable": layer.trainable,
            "dtype": _dtype_name(layer.get_config().get("dtype"))}


def _class_token(layer):
    return _twin_classes()["ClassToken"](**_base_kwargs(layer))


def _position_embedding(layer):
    return _twin_classes()["PositionEmbedding"](**_base_kwargs(layer))


def _gelu(layer):
    return _twin_classes()["GELU"](approximate=layer.approximate, **_base_kwargs(layer))


_CUSTOM_TRANSLATIONS = {
    "ClassToken": _class_token,
    "PositionEmbedding": _position_embedding,
    "GELU": _gelu,
}

_TWIN_ACTIVATIONS = {
    "hard_silu": lambda: _twin_classes()["hard_silu"],
    "hard_swish": lambda: _twin_classes()["hard_silu"],
}

__all__ = ["to_tf_keras", "check_twin", "assert_twin_equal"]
