"""Sanity checks for attribution maps (Adebayo et al. 2018).

Adebayo, Gilmer, Muelly, Goodfellow, Hardt and Kim, "Sanity Checks for
Saliency Maps", NeurIPS 2018, arXiv:1810.03292. A map that explains the
*model* must change when the model does. The *cascading randomisation*
test re-initialises the weights layer by layer from the top (the logits)
down and compares each map with the trained model's map by the Spearman
rank correlation of the absolute values. Vanilla gradients and Grad-CAM
decorrelate quickly; guided backpropagation stays strikingly similar
(it mostly recovers edges of the image, whatever the weights).

A second, localisation check: ``mass_inside_box_ratio`` compares the
map's mean value per pixel inside the object's box with that outside it.
"""

import keras
import numpy as np
from scipy.stats import spearmanr

from keras_cv_course.errors import KCCError
from keras_cv_course.understanding import attribution

SANITY_METHODS = ("saliency", "grad_cam", "guided_backprop")


def _fresh_value(layer, weight, rng):
    """A new value for ``weight``: from the layer's initializer for it, or a
    normal draw with the weight's current standard deviation."""
    leaf = weight.path.split("/")[-1]
    initializer = getattr(layer, f"{leaf}_initializer", None)
    if leaf == "kernel" and initializer is None:
        initializer = getattr(layer, "depthwise_initializer", None)
    if initializer is not None:
        config = dict(initializer.get_config())
        if "seed" in config:
            config["seed"] = int(rng.integers(2**31))
        fresh = initializer.__class__.from_config(config)
        return keras.ops.convert_to_numpy(fresh(weight.shape, dtype=weight.dtype))
    current = keras.ops.convert_to_numpy(weight)
    return rng.normal(0.0, current.std() + 1e-3, current.shape).astype(current.dtype)


def reinitialise(layer, rng):
    """Re-draws every trainable weight of ``layer`` (running statistics are kept)."""
    for weight in layer.trainable_weights:
        weight.assign(_fresh_value(layer, weight, rng))


def layers_with_weights(model):
    """Names of the layers with trainable weights, top (output) first."""
    return [layer.name for layer in reversed(model.layers) if layer.trainable_weights]


def cascading_randomization(model, layers_top_first=None, seed=0):
    """Copies of ``model`` randomised cumulatively from the top layer down.

    Args:
        model: a Keras functional model; it is never modified.
        layers_top_first: the layer names to re-initialise, in order
            (default: every layer with trainable weights, output first).
        seed: seed of the new weights.

    Yields:
        ``(layer_name, randomised_model)`` after each layer: the model has
        that layer and every layer before it in the list re-initialised.
        The same clone is updated in place, so copy it to keep a step.
    """
    names = list(layers_top_first or layers_with_weights(model))
    known = {layer.name for layer in model.layers}
    missing = [name for name in names if name not in known]
    if missing:
        raise KCCError(f"model {model.name!r} has no layers {missing}")
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    rng = np.random.default_rng(seed)
    for name in names:
        reinitialise(clone.get_layer(name), rng)
        yield name, clone


def rank_correlation(map_a, map_b):
    """Mean Spearman rank correlation of ``|map_a|`` and ``|map_b|``, image by image.

    Args:
        map_a, map_b: ``(batch, H, W)`` maps (or one ``(H, W)`` map).

    Returns:
        A float in ``[-1, 1]``. An image where either map is constant has no
        ranking; it counts as 0 (no correlation).
    """
    a, b = np.abs(np.asarray(map_a, "float64")), np.abs(np.asarray(map_b, "float64"))
    if a.shape != b.shape:
        raise KCCError(f"maps must have the same shape, got {a.shape} and {b.shape}")
    a, b = a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:])
    values = []
    for one, other in zip(a, b):
        if np.ptp(one) == 0 or np.ptp(other) == 0:
            values.append(0.0)
        else:
            values.append(float(spearmanr(one.ravel(), other.ravel())[0]))
    return float(np.mean(values))


def box_masks(boxes, size):
    """``(batch, H, W)`` booleans, true inside each normalised ``[ymin, xmin, ymax, xmax]`` box."""
    boxes = np.asarray(boxes, "float64").reshape(-1, 4)
    height, width = size
    rows = (np.arange(height) + 0.5) / height
    cols = (np.arange(width) + 0.5) / width
    inside_rows = (rows[None] >= boxes[:, :1]) & (rows[None] <= boxes[:, 2:3])
    inside_cols = (cols[None] >= boxes[:, 1:2]) & (cols[None] <= boxes[:, 3:4])
    return inside_rows[:, :, None] & inside_cols[:, None, :]


def mass_inside_box_ratio(maps, boxes):
    """(mean ``|map|`` per pixel inside the box) / (mean per pixel outside).

    Args:
        maps: ``(batch, H, W)``.
        boxes: ``(batch, 4)`` normalised ``[ymin, xmin, ymax, xmax]``, one object box
            per image (e.g. the first box of the ``shapes`` detection targets).

    Returns:
        The ratio of the two means, each averaged over the images; above 1
        when the map concentrates on the objects.
    """
    maps = np.abs(np.asarray(maps, "float64"))
    if maps.ndim != 3 or len(np.asarray(boxes).reshape(-1, 4)) != len(maps):
        raise KCCError(f"expected (batch, H, W) maps and one box per map, got maps "
                       f"{maps.shape} and boxes {np.shape(boxes)}")
    inside = box_masks(boxes, maps.shape[1:])
    inside_mean = np.mean([m[mask].mean() for m, mask in zip(maps, inside)])
    outside_mean = np.mean([m[~mask].mean() for m, mask in zip(maps, inside)])
    return float(inside_mean / max(outside_mean, 1e-12))


def method_maps(model, images, class_index, methods=SANITY_METHODS):
    """``{method: maps}`` for the ``attribution`` functions named in ``methods``."""
    return {name: getattr(attribution, name)(model, images, class_index=class_index)
            for name in methods}


def sanity_report(model, images, boxes, class_index=None, layers_top_first=None, seed=0,
                  methods=SANITY_METHODS):
    """The localisation and cascading-randomisation numbers of a classifier.

    Args:
        model: the trained classifier (never modified).
        images: ``(batch, H, W, C)`` in ``[0, 1]``.
        boxes: ``(batch, 4)`` normalised object boxes.
        class_index: the class explained (default: the trained model's
            prediction), kept fixed for the randomised models.
        layers_top_first, seed: of ``cascading_randomization``.
        methods: ``attribution`` function names.

    Returns:
        ``{"inside_outside_ratio": {method: ratio}, "rank_correlation_top_layer":
        {method: rho}, "rank_correlation_all_layers": {method: rho},
        "layers_randomised": n}``: the ratio for the trained model, and the
        rank correlation with the trained maps after randomising the top
        layer only and after randomising every listed layer.
    """
    indices = attribution.class_indices(model, np.asarray(images, "float32"), class_index)
    trained = method_maps(model, images, indices, methods)
    report = {"inside_outside_ratio": {name: mass_inside_box_ratio(maps, boxes)
                                       for name, maps in trained.items()}}
    top_only = _randomised(model, layers_top_first, seed, steps=1)
    report["rank_correlation_top_layer"] = _correlations(trained, top_only, images, indices)
    every, count = _randomised(model, layers_top_first, seed, steps=None)
    report["rank_correlation_all_layers"] = _correlations(trained, every, images, indices)
    report["layers_randomised"] = count
    return report


def _randomised(model, layers_top_first, seed, steps):
    """The cascade's model after ``steps`` layers (``None``: all); with the count if all."""
    for step, (_, randomised) in enumerate(cascading_randomization(model, layers_top_first,
                                                                   seed), start=1):
        if steps is not None and step == steps:
            return randomised
    return randomised, step


def _correlations(trained, randomised, images, indices):
    maps = method_maps(randomised, images, indices, tuple(trained))
    return {name: rank_correlation(trained[name], maps[name]) for name in trained}
