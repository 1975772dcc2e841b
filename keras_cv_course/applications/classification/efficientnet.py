"""EfficientNet B0-B7: compound scaling of width, depth and resolution.

Paper: Mingxing Tan, Quoc V. Le. "EfficientNet: Rethinking Model Scaling for
Convolutional Neural Networks". ICML 2019. arXiv:1905.11946.

EfficientNet-B0 is a searched network of MBConv blocks (MobileNetV2's
inverted residual with squeeze-and-excitation and the swish activation
``x * sigmoid(x)``). Larger models scale it along three axes at once with
one coefficient ``phi``:

    depth  d = alpha ** phi,   width w = beta ** phi,   resolution r = gamma ** phi * 224
    with alpha * beta**2 * gamma**2 ~ 2 (so FLOPs grow about 2**phi),
    and alpha = 1.2, beta = 1.1, gamma = 1.15 found by grid search on B0.

``compound_scale(phi)`` computes that rule and ``efficientnet_from_phi(phi)``
builds a model from it. The published B1-B7 do **not** use the rule's exact
values: their coefficients were rounded by hand (B1-B3 are smaller steps than
phi = 1, 2, 3; B4-B7 follow the rule's width and resolution within a few
percent but grow depth more slowly). ``COEFFICIENTS`` holds the published values,
identical to keras.applications and the TensorFlow reference:

| model | width | depth | resolution | dropout |
|-------|-------|-------|------------|---------|
| B0    | 1.0   | 1.0   | 224        | 0.2     |
| B1    | 1.0   | 1.1   | 240        | 0.2     |
| B2    | 1.1   | 1.2   | 260        | 0.3     |
| B3    | 1.2   | 1.4   | 300        | 0.3     |
| B4    | 1.4   | 1.8   | 380        | 0.4     |
| B5    | 1.6   | 2.2   | 456        | 0.4     |
| B6    | 1.8   | 2.6   | 528        | 0.5     |
| B7    | 2.0   | 3.1   | 600        | 0.5     |

Widths are ``make_divisible(channels * width)``; each stage repeats its block
``ceil(repeats * depth)`` times. Drop-connect (stochastic depth) grows
linearly from 0 to ``drop_connect_rate`` (0.2) over the blocks; like the
classifier dropout it is a ``Dropout`` layer, the identity at inference.

Reference: keras.applications ``EfficientNetB0``-``B7``; layer names are
theirs (``block2a_expand_conv``) except the depthwise parts
(``block2a_dw_conv``, ``block2a_dw_bn``), so ImageNet weights transplant
exactly. Parameter counts (BatchNorm statistics excluded) equal torchvision's
``efficientnet_b0``-``b7``.

Input: with ``include_preprocessing=True`` (default) the model takes images
in [0, 1], the package's convention, and normalizes them with the ImageNet
mean and standard deviation in one weightless per-channel ``Rescaling``
layer. keras.applications does the same from [0, 255] pixels, with a
``Rescaling``, a ``Normalization`` whose stored variance is the standard
deviation (tensorflow/tensorflow#49930) and, for ImageNet weights, a
correcting ``Rescaling``: the same arithmetic, but with three non-parameter
weights that we neither count nor copy. With ``False`` the model takes
already normalized images.

Feature levels (``applications.backbone``), as timm's ``feature_info`` for
``efficientnet_b0``: the stem's output, then every block's, a later block
replacing an earlier one at the same stride; the final 1x1 "top" convolution
is not a level. B0 gives ``C1``-``C5`` with 16, 24, 40, 112 and 320 channels.
"""

import math

import keras

from keras_cv_course.applications.classification import common, transplant
from keras_cv_course.applications.classification.mobilenet_blocks import (
    check_pooling,
    conv_bn,
    inverted_residual,
    make_divisible,
)
from keras_cv_course.applications.registry import register_family

# (kernel, repeats, output channels, expansion, stride) per stage of B0, paper Table 1.
STAGES = ((3, 1, 16, 1, 1), (3, 2, 24, 6, 2), (5, 2, 40, 6, 2), (3, 3, 80, 6, 2),
          (5, 3, 112, 6, 1), (5, 4, 192, 6, 2), (3, 1, 320, 6, 1))
STEM_FILTERS = 32
TOP_FILTERS = 1280
SE_RATIO = 0.25  # of the block's input channels
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Published (width, depth, resolution, dropout), paper Table 2 / keras.applications.
COEFFICIENTS = {
    "b0": (1.0, 1.0, 224, 0.2), "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3), "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4), "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5), "b7": (2.0, 3.1, 600, 0.5),
}
PAPER = (
    "Tan, Le. EfficientNet: Rethinking Model Scaling for Convolutional Neural "
    "Networks. ICML 2019. arXiv:1905.11946"
)


def compound_scale(phi, alpha=1.2, beta=1.1, gamma=1.15):
    """The compound scaling rule of the paper (Eq. 3).

    Args:
        phi: compound coefficient (0 is B0).
        alpha, beta, gamma: per-axis bases for depth, width and resolution.

    Returns:
        ``(width, depth, resolution)`` = ``(beta**phi, alpha**phi,
        round(224 * gamma**phi))``. The published variants round these by hand;
        see ``COEFFICIENTS``.

    Example:
        >>> compound_scale(1)
        (1.1, 1.2, 258)
    """
    width, depth = beta ** phi, alpha ** phi
    return round(width, 6), round(depth, 6), int(round(224 * gamma ** phi))


def preprocessing(x):
    """[0, 1] images -> ImageNet-normalized, as one weightless layer."""
    scale = [1.0 / std for std in IMAGENET_STD]
    offset = [-mean / std for mean, std in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    return keras.layers.Rescaling(scale, offset=offset, name="preprocessing")(x)


def stage_blocks(x, stage, kernel, repeats, filters, expansion, strides, activation,
                 drop_rates, bn, pyramid):
    """One stage: ``repeats`` MBConv blocks named ``block{stage}a``, ``b``, ...

    Each block's output is recorded in ``pyramid``.
    """
    for index in range(repeats):
        block_strides = strides if index == 0 else 1
        x = inverted_residual(
            x, filters, x.shape[-1] * expansion, kernel, block_strides,
            activation, f"block{stage}{chr(ord('a') + index)}",
            se_channels=max(1, int(x.shape[-1] * SE_RATIO)), se_activation=activation,
            se_gate="sigmoid", drop_rate=drop_rates.pop(0), **bn,
        )
        pyramid.record(x, strides=block_strides)
    return x


def EfficientNet(
    width_coefficient=1.0,
    depth_coefficient=1.0,
    default_size=224,
    dropout_rate=0.2,
    drop_connect_rate=0.2,
    depth_divisor=8,
    activation="swish",
    include_preprocessing=True,
    bn_momentum=0.99,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="efficientnet",
    keras_application=None,
):
    """Builds an EfficientNet from its scaling coefficients.

    Args:
        width_coefficient: channel multiplier ``w``.
        depth_coefficient: block-repeat multiplier ``d``.
        default_size: input size used when ``input_shape`` is ``None``.
        dropout_rate: dropout before the classifier.
        drop_connect_rate: largest drop-connect rate (of the last block).
        depth_divisor: channel counts are multiples of it.
        activation: activation of the network, ``"swish"`` in the paper.
        include_preprocessing: normalize [0, 1] inputs in the model.
        bn_momentum: BatchNorm moving-average momentum (a training setting;
            keras.applications' 0.99 by default).
        include_top, weights, input_tensor, input_shape, pooling, classes,
            classifier_activation, name: the keras.applications contract.
        keras_application: keras.applications constructor with the same
            architecture, for ``weights="imagenet"`` (set by the variants).

    Returns:
        A ``keras.Model``; ``model.pyramid_outputs`` holds its feature levels.

    Example:
        >>> model = EfficientNet(0.1, 0.1, input_shape=(32, 32, 3), classes=10)
    """
    check_pooling(pooling)
    if width_coefficient <= 0 or depth_coefficient <= 0:
        raise common.KCCError(
            f"width and depth coefficients must be positive, got "
            f"{width_coefficient!r} and {depth_coefficient!r}"
        )

    def width(channels):
        return make_divisible(channels * width_coefficient, depth_divisor)

    def depth(repeats):
        return int(math.ceil(repeats * depth_coefficient))

    image = common.image_input(input_tensor, input_shape, (default_size, default_size, 3), 32)
    if include_preprocessing and image.shape[-1] != 3:
        raise common.KCCError(
            f"include_preprocessing needs 3 RGB channels, got input shape {image.shape[1:]}"
        )
    bn = dict(bn_epsilon=1e-3, bn_momentum=bn_momentum)
    x = preprocessing(image) if include_preprocessing else image
    pyramid = common.FeaturePyramid()
    x = pyramid.record(conv_bn(x, width(STEM_FILTERS), 3, 2, "stem", activation, **bn),
                       strides=2)
    total = sum(depth(stage[1]) for stage in STAGES)
    drop_rates = [drop_connect_rate * index / total for index in range(total)]
    for stage, (kernel, repeats, filters, expansion, strides) in enumerate(STAGES):
        x = stage_blocks(x, stage + 1, kernel, depth(repeats), width(filters), expansion,
                         strides, activation, drop_rates, bn, pyramid)
    x = conv_bn(x, width(TOP_FILTERS), 1, 1, "top", activation, **bn)  # not a level (timm)
    x = common.classifier_head(x, include_top, pooling, classes, classifier_activation,
                               dropout_rate)
    model = keras.Model(common.model_inputs(image, input_tensor), x, name=name)
    loader = None
    if keras_application is not None:
        loader = transplant.imagenet_loader(keras_application, keras_rename)
    return common.load_weights(pyramid.attach(model), weights, loader)


def keras_rename(layer_name):
    """keras.applications EfficientNet layer name -> ours.

    Only the depthwise parts differ (``block2a_dwconv`` -> ``block2a_dw_conv``,
    ``block2a_bn`` -> ``block2a_dw_bn``); keras' input ``Normalization``
    is skipped (our preprocessing is weightless).
    """
    if layer_name.startswith("normalization"):
        return None
    if layer_name.startswith("block") and layer_name.endswith("_dwconv"):
        return layer_name[: -len("dwconv")] + "dw_conv"
    if layer_name.startswith("block") and layer_name.endswith("_bn") and \
            layer_name.count("_") == 1:
        return layer_name[: -len("bn")] + "dw_bn"
    return layer_name


def efficientnet_variant(key, **kwargs):
    """Builds a published variant, ``key`` in ``COEFFICIENTS`` (``"b0"`` ... ``"b7"``).

    Keyword arguments override the published coefficients, e.g. for tests.
    """
    width, depth, size, dropout = COEFFICIENTS[key]
    config = dict(width_coefficient=width, depth_coefficient=depth, default_size=size,
                  dropout_rate=dropout, name=f"efficientnet_{key}",
                  keras_application=f"EfficientNet{key.upper()}")
    return EfficientNet(**{**config, **kwargs})


def efficientnet_from_phi(phi, alpha=1.2, beta=1.1, gamma=1.15, **kwargs):
    """Builds an EfficientNet scaled by the unrounded rule ``compound_scale(phi)``.

    Example:
        >>> model = efficientnet_from_phi(0.5, input_shape=(64, 64, 3), classes=10)
    """
    width, depth, resolution = compound_scale(phi, alpha, beta, gamma)
    config = dict(width_coefficient=width, depth_coefficient=depth, default_size=resolution,
                  name=f"efficientnet_phi{phi:g}")
    return EfficientNet(**{**config, **kwargs})


def EfficientNetB0(**kwargs):
    return efficientnet_variant("b0", **kwargs)


def EfficientNetB1(**kwargs):
    return efficientnet_variant("b1", **kwargs)


def EfficientNetB2(**kwargs):
    return efficientnet_variant("b2", **kwargs)


def EfficientNetB3(**kwargs):
    return efficientnet_variant("b3", **kwargs)


def EfficientNetB4(**kwargs):
    return efficientnet_variant("b4", **kwargs)


def EfficientNetB5(**kwargs):
    return efficientnet_variant("b5", **kwargs)


def EfficientNetB6(**kwargs):
    return efficientnet_variant("b6", **kwargs)


def EfficientNetB7(**kwargs):
    return efficientnet_variant("b7", **kwargs)


# width 0.05 gives 8- and 16-channel stages; depth 0.1 one block per stage: ~18k params.
# Momentum 0.9 lets BatchNorm statistics settle within a short test training. One dropout
# rate makes B0-B7 the same tiny network (their scaling shows in the full-size counts),
# so the test harness trains and exports it once.
TINY = dict(input_shape=(32, 32, 3), classes=10, width_coefficient=0.05, depth_coefficient=0.1,
            bn_momentum=0.9, dropout_rate=0.2)


def _variant(key, builder, reference_params, imagenet_top1):
    """The registry record of a published variant; its description comes from the table."""
    width, depth, size, dropout = COEFFICIENTS[key]
    return dict(
        name=f"efficientnet_{key}", builder=builder, reference_params=reference_params,
        params_source=f"torchvision efficientnet_{key} (= keras.applications "
                      f"EfficientNet{key.upper()} without BatchNorm/Normalization statistics)",
        imagenet_top1=imagenet_top1,
        description=f"EfficientNet-{key.upper()}: width {width}, depth {depth}, "
                    f"{size}x{size}, dropout {dropout}",
    )


# reference_params: torchvision efficientnet_b0 ... b7 (= keras.applications without
# BatchNorm statistics and without its Normalization layer's mean, variance and count).
# imagenet_top1: paper Table 2 (arXiv:1905.11946v5), top-1 %.
VARIANTS = (
    _variant("b0", EfficientNetB0, 5_288_548, 77.1),
    _variant("b1", EfficientNetB1, 7_794_184, 79.1),
    _variant("b2", EfficientNetB2, 9_109_994, 80.1),
    _variant("b3", EfficientNetB3, 12_233_232, 81.6),
    _variant("b4", EfficientNetB4, 19_341_616, 82.9),
    _variant("b5", EfficientNetB5, 30_389_784, 83.6),
    _variant("b6", EfficientNetB6, 43_040_704, 84.0),
    _variant("b7", EfficientNetB7, 66_347_960, 84.3),
)

register_family("efficientnet", VARIANTS, task="classification", paper=PAPER, tiny_config=TINY,
                pretrained=("imagenet",), top1_source="Tan & Le 2019, Table 2 (arXiv:1905.11946v5)",
                feature_levels=common.CNN_FEATURE_LEVELS)
