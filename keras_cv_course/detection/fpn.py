"""Feature Pyramid Network, with RetinaNet's extra levels and PANet's bottom-up path.

Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017,
arXiv:1612.03144. Each backbone level ``C<k>`` gets a 1x1 "lateral"
convolution to a common width; from the coarsest level down, the sum so far
is upsampled two times (nearest neighbour) and added to the next lateral; a
3x3 "output" convolution then smooths each sum into ``P<k>``.

Faster R-CNN on an FPN (``extra_levels="pool"``) adds one level for the RPN
alone: ``P6`` is ``P5`` subsampled by a 1x1 max pool of stride 2
(torchvision's ``LastLevelMaxPool``; no weights).

RetinaNet (Lin et al., ICCV 2017, arXiv:1708.02002) adds ``P6``, a 3x3
stride-2 convolution, and ``P7``, the same after a ReLU. torchvision's
``LastLevelP6P7`` takes P6 from ``P5`` when the input and output widths are
equal (its RetinaNet and FCOS) and from ``C5`` otherwise.

PANet (Liu et al., "Path Aggregation Network for Instance Segmentation", CVPR
2018, arXiv:1803.01534) adds a bottom-up path: ``N3 = P3``, and each
``N<k+1>`` is a 3x3 convolution (with ReLU) of ``P<k+1>`` plus a 3x3 stride-2
convolution (with ReLU) of ``N<k>``.

Layer names are ``{name}_lateral<k>``, ``{name}_upsample<k>``, ``{name}_merge<k>``,
``{name}_output<k>``, ``{name}_p6``, ``{name}_p7``, ``{name}_pool``, ``{name}_pan_down<k>`` and
``{name}_pan_output<k>``, with ``name="fpn"`` by default. Every convolution has
a bias, as in torchvision.
"""

import keras

EXTRA_LEVEL_SOURCES = (None, "p5", "c5", "pool")


def _as_level_dict(features):
    """``{"C3": t, ...}`` from a dict, or from a list ordered finest first starting at C3."""
    if isinstance(features, dict):
        levels = {int(key[1:]): tensor for key, tensor in features.items()}
    else:
        levels = {3 + i: tensor for i, tensor in enumerate(features)}
    return dict(sorted(levels.items()))


def _upsample_to(tensor, reference, name):
    """Nearest 2x upsampling, cropped to ``reference``'s grid when that is odd.

    Cropping the bottom row / right column gives exactly the result of
    resizing to the odd size with nearest-neighbour ``floor`` indexing
    (torchvision's ``interpolate(size=...)``).
    """
    upsampled = keras.layers.UpSampling2D(2, interpolation="nearest", name=name)(tensor)
    if None in (*upsampled.shape[1:3], *reference.shape[1:3]):
        return upsampled  # dynamic grids: the backbone must give exact halvings
    extra_rows = upsampled.shape[1] - reference.shape[1]
    extra_cols = upsampled.shape[2] - reference.shape[2]
    if extra_rows or extra_cols:
        upsampled = keras.layers.Cropping2D(((0, extra_rows), (0, extra_cols)),
                                            name=f"{name}_crop")(upsampled)
    return upsampled


def _conv(filters, kernel_size, name, strides=1, activation=None):
    return keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                               activation=activation, name=name)


def _extra_levels(levels, outputs, channels, source, name):
    """RetinaNet's P6 (from P5 or C5) and P7 (from ReLU(P6))."""
    top = max(levels)
    start = outputs[f"P{top}"] if source == "p5" else levels[top]
    p6 = _conv(channels, 3, f"{name}_p6", strides=2)(start)
    p7 = _conv(channels, 3, f"{name}_p7", strides=2)(keras.layers.ReLU(name=f"{name}_p6_relu")(p6))
    return {f"P{top + 1}": p6, f"P{top + 2}": p7}


def _max_pool_level(levels, outputs, name):
    """Faster R-CNN's extra level: the top output subsampled (1x1 max pool, stride 2)."""
    top = max(levels)
    pooled = keras.layers.MaxPooling2D(1, strides=2, name=f"{name}_pool")(outputs[f"P{top}"])
    return {f"P{top + 1}": pooled}


def _bottom_up_path(outputs, channels, name):
    """PANet's N levels from the P levels, finest first."""
    keys = list(outputs)
    n_levels = {keys[0].replace("P", "N"): outputs[keys[0]]}
    previous = outputs[keys[0]]
    for key in keys[1:]:
        k = key[1:]
        down = _conv(channels, 3, f"{name}_pan_down{k}", strides=2, activation="relu")(previous)
        merged = keras.layers.Add(name=f"{name}_pan_merge{k}")([down, outputs[key]])
        previous = _conv(channels, 3, f"{name}_pan_output{k}", activation="relu")(merged)
        n_levels[f"N{k}"] = previous
    return n_levels


def feature_pyramid(features, channels=256, extra_levels=None, pan=False, name="fpn"):
    """Builds an FPN on backbone features; returns ``{"P3": tensor, ...}``.

    Args:
        features: ``{"C3": t3, "C4": t4, "C5": t5}`` (any consecutive levels),
            or a list of tensors ordered finest first, taken as C3, C4, ...
        channels: the width of every pyramid level (256 in the paper).
        extra_levels: None; ``"p5"`` for RetinaNet's P6 and P7 computed from
            P5 (torchvision when the backbone output width equals
            ``channels``); ``"c5"`` for P6 computed from C5; ``"pool"`` for
            Faster R-CNN's P6, P5 subsampled by a 1x1 max pool of stride 2.
        pan: also return PANet's bottom-up levels ``N3...``; the result is then
            ``{"P3": ..., "N3": ...}``.
        name: prefix of every layer name.

    Returns:
        A dict of channels-last tensors, finest level first.

    Example:
        >>> c3, c4, c5 = (keras.Input((None, None, c)) for c in (512, 1024, 2048))
        >>> sorted(feature_pyramid({"C3": c3, "C4": c4, "C5": c5}, extra_levels="p5"))
        ['P3', 'P4', 'P5', 'P6', 'P7']
    """
    if extra_levels not in EXTRA_LEVEL_SOURCES:
        raise ValueError(f"expected extra_levels in {EXTRA_LEVEL_SOURCES}, "
                         f"received {extra_levels!r}")
    levels = _as_level_dict(features)
    laterals = {k: _conv(channels, 1, f"{name}_lateral{k}")(t) for k, t in levels.items()}
    ordered = sorted(levels, reverse=True)  # coarsest first, for the top-down pass
    merged = {ordered[0]: laterals[ordered[0]]}
    for coarser, k in zip(ordered, ordered[1:]):
        upsampled = _upsample_to(merged[coarser], laterals[k], f"{name}_upsample{k}")
        merged[k] = keras.layers.Add(name=f"{name}_merge{k}")([laterals[k], upsampled])
    outputs = {f"P{k}": _conv(channels, 3, f"{name}_output{k}")(merged[k]) for k in sorted(levels)}
    if extra_levels == "pool":
        outputs.update(_max_pool_level(levels, outputs, name))
    elif extra_levels is not None:
        outputs.update(_extra_levels(levels, outputs, channels, extra_levels, name))
    if pan:
        outputs.update(_bottom_up_path(dict(outputs), channels, name))
    return outputs
