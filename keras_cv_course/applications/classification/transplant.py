"""Moving pretrained weights from keras.applications into our models.

keras.applications ships ImageNet weights for many of the course's
architectures. Our models are written independently, so weights move
layer by layer, by name: a family supplies ``rename(source_layer_name)``
returning our layer's name (or ``None`` to skip a layer with no weights of
its own meaning, such as keras.applications' input ``Normalization``).

The transplant is strict: every weight-carrying layer on both sides must be
matched, and every shape must agree, or it raises.
"""

import keras

from keras_cv_course.errors import KCCError


def transplant(source, target, rename):
    """Copies weights from ``source`` into ``target`` by layer name.

    Args:
        source: a built ``keras.Model`` (e.g. from keras.applications).
        target: our built ``keras.Model`` with the same architecture.
        rename: callable mapping a source layer name to the target layer
            name, or to ``None`` to skip that layer.

    Returns:
        ``target``, with its weights replaced.

    Raises:
        KCCError: a layer is unmatched or a shape differs.
    """
    filled = set()
    for layer in source.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        target_name = rename(layer.name)
        if target_name is None:
            continue
        try:
            target_layer = target.get_layer(target_name)
        except ValueError:
            raise KCCError(
                f"transplant: source layer {layer.name!r} maps to {target_name!r}, "
                f"which {target.name} does not have"
            ) from None
        _set_checked(target_layer, weights, layer.name)
        filled.add(target_name)
    missing = [
        layer.name for layer in target.layers
        if layer.weights and layer.name not in filled
    ]
    if missing:
        raise KCCError(f"transplant: {target.name} layers received no weights: {missing[:5]}")
    return target


def _set_checked(target_layer, weights, source_name):
    expected = [tuple(w.shape) for w in target_layer.get_weights()]
    received = [tuple(w.shape) for w in weights]
    if expected != received:
        raise KCCError(
            f"transplant: {source_name!r} -> {target_layer.name!r} expected shapes "
            f"{expected}, received {received}"
        )
    target_layer.set_weights(weights)


def imagenet_loader(keras_application, rename, **application_kwargs):
    """Returns a loader for ``common.load_weights`` that transplants ImageNet weights.

    Args:
        keras_application: the keras.applications constructor name, e.g.
            ``"ResNet50"``.
        rename: the family's layer-name mapping.
        **application_kwargs: extra constructor arguments.
    """

    def load(model):
        constructor = getattr(keras.applications, keras_application)
        include_top = any(layer.name == "predictions" for layer in model.layers)
        try:
            source = constructor(weights="imagenet", include_top=include_top,
                                 input_shape=model.input_shape[1:], **application_kwargs)
        except Exception as error:  # noqa: BLE001 - network and cache errors vary
            raise KCCError(
                f"could not get ImageNet weights for {keras_application} through "
                f"keras.applications ({type(error).__name__}: {str(error).splitlines()[0][:120]})"
            ) from None
        transplant(source, model, rename)

    return load
