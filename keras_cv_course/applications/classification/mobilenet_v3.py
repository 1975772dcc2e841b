"""MobileNetV3: Small and Large, found by architecture search.

Paper: Andrew Howard, Mark Sandler, Grace Chu, Liang-Chieh Chen, Bo Chen,
Mingxing Tan, Weijun Wang, Yukun Zhu, Ruoming Pang, Vijay Vasudevan, Quoc V.
Le, Hartwig Adam. "Searching for MobileNetV3". ICCV 2019. arXiv:1905.02244.

MobileNetV2's inverted residual block, with three changes found by search
and by hand: squeeze-and-excitation in some blocks (gated by a hard sigmoid,
squeezing to a quarter of the expanded width), the hard-swish activation
``x * relu6(x + 3) / 6`` in the deeper half, and a cheaper head whose
1x1 convolution to 960 (Large) or 576 (Small) channels runs before global
pooling, followed by a 1x1 convolution to 1280 or 1024 channels on the pooled
vector. The block tables are the paper's Tables 1 (Large) and 2 (Small):

| column | meaning                                             |
|--------|-----------------------------------------------------|
| k      | depthwise kernel size                               |
| t      | expansion; expanded width = make_divisible(in * t)  |
| c      | output channels (times ``alpha``, made divisible)   |
| se     | squeeze-and-excitation                              |
| act    | ``"relu"`` or ``"hard_swish"``                      |
| s      | stride                                              |

Reference choice: we match **keras.applications** ``MobileNetV3Small`` and
``MobileNetV3Large`` exactly, so their ImageNet weights transplant exactly.
They differ from torchvision only in form, not in parameters: the last two
layers are 1x1 convolutions on the pooled map (torchvision: ``Linear``; the
same weights in another shape), padding is TensorFlow's ``"same"`` (torchvision:
symmetric), and the input is rescaled inside the model. Parameter counts
(BatchNorm statistics excluded) equal torchvision's ``mobilenet_v3_large``
(5,483,032) and ``mobilenet_v3_small`` (2,542,856), which keras.applications
also has.

Input: with ``include_preprocessing=True`` (the default) the model takes
images in [0, 1], the package's convention, and rescales them to [-1, 1] with
a weightless ``Rescaling`` layer. keras.applications' layer does the same
from [0, 255]. With ``False`` the model takes [-1, 1] inputs.

Feature levels (``applications.backbone``), as timm's ``feature_info`` for
``mobilenetv3_large_100`` and ``mobilenetv3_small_100``: the stem's output,
then every block's, a later block replacing an earlier one at the same
stride, and the 1x1 "top" convolution before pooling last (960 or 576
channels at ``C5``). ``C1``-``C5`` have 16, 24, 40, 112, 960 channels (Large)
and 16, 16, 24, 48, 576 (Small).
"""

import re

import keras

from keras_cv_course.applications.classification import common, transplant
from keras_cv_course.applications.classification.mobilenet_blocks import (
    check_pooling,
    conv_bn,
    conv_classifier,
    inverted_residual,
    make_divisible,
    rescale_to_symmetric,
)
from keras_cv_course.applications.registry import register_family

HS, RE = "hard_swish", "relu"
# (k, t, c, se, act, s) per block; paper Table 1 (Large) and Table 2 (Small).
LARGE = ((3, 1, 16, False, RE, 1), (3, 4, 24, False, RE, 2), (3, 3, 24, False, RE, 1),
         (5, 3, 40, True, RE, 2), (5, 3, 40, True, RE, 1), (5, 3, 40, True, RE, 1),
         (3, 6, 80, False, HS, 2), (3, 2.5, 80, False, HS, 1), (3, 2.3, 80, False, HS, 1),
         (3, 2.3, 80, False, HS, 1), (3, 6, 112, True, HS, 1), (3, 6, 112, True, HS, 1),
         (5, 6, 160, True, HS, 2), (5, 6, 160, True, HS, 1), (5, 6, 160, True, HS, 1))
SMALL = ((3, 1, 16, True, RE, 2), (3, 72 / 16, 24, False, RE, 2), (3, 88 / 24, 24, False, RE, 1),
         (5, 4, 40, True, HS, 2), (5, 6, 40, True, HS, 1), (5, 6, 40, True, HS, 1),
         (5, 3, 48, True, HS, 1), (5, 3, 48, True, HS, 1), (5, 6, 96, True, HS, 2),
         (5, 6, 96, True, HS, 1), (5, 6, 96, True, HS, 1))
CONFIGS = {"large": (LARGE, 1280), "small": (SMALL, 1024)}
STEM_FILTERS = 16
SE_RATIO = 0.25
PAPER = (
    "Howard et al. Searching for MobileNetV3. ICCV 2019. arXiv:1905.02244"
)


def minimal_block(kernel):
    """The "minimalistic" variant's block: 3x3 kernels, ReLU, no SE."""
    return (3 if kernel == 5 else kernel), RE, False


def inverted_residuals(x, blocks, alpha, minimalistic, bn, pyramid):
    """The table's blocks, each block's output recorded in ``pyramid``."""
    for index, (kernel, expansion, channels, se, block_activation, strides) in enumerate(blocks):
        if minimalistic:
            kernel, block_activation, se = minimal_block(kernel)
        expanded = make_divisible(x.shape[-1] * expansion)
        x = inverted_residual(
            x, make_divisible(channels * alpha), expanded, kernel, strides, block_activation,
            f"block{index + 1}", se_channels=make_divisible(expanded * SE_RATIO) if se else 0,
            se_activation="relu", se_gate="hard_sigmoid", **bn,
        )
        pyramid.record(x, strides=strides)
    return x


def MobileNetV3(
    size="large",
    alpha=1.0,
    minimalistic=False,
    last_point_channels=None,
    blocks=None,
    dropout_rate=0.2,
    include_preprocessing=True,
    bn_momentum=0.999,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
):
    """Builds MobileNetV3.

    Args:
        size: ``"large"`` or ``"small"``.
        alpha: width multiplier of the blocks (the stem stays at 16).
        minimalistic: keras.applications' variant without SE, hard-swish or
            5x5 kernels.
        last_point_channels: width of the pooled head convolution; ``None``
            uses 1280 (Large) or 1024 (Small), scaled when ``alpha > 1``.
        blocks: the ``(k, t, c, se, act, s)`` table; ``None`` uses the size's
            table. Shorter tables make test models.
        dropout_rate: dropout before the classifier.
        include_preprocessing: rescale [0, 1] inputs to [-1, 1] in the model.
        bn_momentum: BatchNorm moving-average momentum (a training setting;
            keras.applications' 0.999 by default).
        include_top, weights, input_tensor, input_shape, pooling, classes,
            classifier_activation, name: the keras.applications contract.

    Returns:
        A ``keras.Model``; ``model.pyramid_outputs`` holds its feature levels.

    Example:
        >>> model = MobileNetV3("small", alpha=0.25, last_point_channels=32,
        ...                     input_shape=(32, 32, 3), classes=10)
    """
    if size not in CONFIGS:
        raise common.KCCError(f"size must be one of {sorted(CONFIGS)}, got {size!r}")
    if alpha <= 0:
        raise common.KCCError(f"alpha must be positive, got {alpha!r}")
    check_pooling(pooling)
    size_blocks, last_point = CONFIGS[size]
    blocks = size_blocks if blocks is None else blocks
    if last_point_channels is None:
        last_point_channels = make_divisible(last_point * alpha) if alpha > 1 else last_point
    activation = RE if minimalistic else HS

    bn = dict(bn_epsilon=1e-3, bn_momentum=bn_momentum)
    image = common.image_input(input_tensor, input_shape, min_size=32)
    x = rescale_to_symmetric(image, include_preprocessing)
    pyramid = common.FeaturePyramid()
    x = pyramid.record(conv_bn(x, STEM_FILTERS, 3, 2, "stem", activation, **bn), strides=2)
    x = inverted_residuals(x, blocks, alpha, minimalistic, bn, pyramid)
    x = conv_bn(x, make_divisible(x.shape[-1] * 6), 1, 1, "top", activation, **bn)
    pyramid.record(x)  # a level in MobileNetV3 (timm), unlike V2 and EfficientNet
    if include_top:
        x = conv_classifier(x, classes, classifier_activation, dropout_rate,
                            last_point_channels, activation)
    else:
        x = common.classifier_head(x, False, pooling, classes, classifier_activation)
    model = keras.Model(common.model_inputs(image, input_tensor), x,
                        name=name or f"mobilenet_v3_{size}")
    loader = transplant.imagenet_loader(
        f"MobileNetV3{size.capitalize()}", keras_rename, alpha=alpha,
        minimalistic=minimalistic, include_preprocessing=include_preprocessing,
    )
    return common.load_weights(pyramid.attach(model), weights, loader)



_KERAS_BLOCK = re.compile(
    r"^expanded_conv_(?:(\d+)_)?(expand|depthwise|project|squeeze_excite_conv)(_1|_bn)?$"
)
_PART = {"expand": "expand", "depthwise": "dw", "project": "project"}
_KERAS_FIXED = {"conv": "stem_conv", "conv_bn": "stem_bn", "conv_1": "top_conv",
                "conv_1_bn": "top_bn", "conv_2": "head_conv"}


def keras_rename(layer_name):
    """keras.applications MobileNetV3 layer name -> ours.

    ``expanded_conv_3_squeeze_excite_conv_1`` -> ``block4_se_expand``;
    ``expanded_conv_depthwise_bn`` -> ``block1_dw_bn``.
    """
    if layer_name in _KERAS_FIXED:
        return _KERAS_FIXED[layer_name]
    match = _KERAS_BLOCK.match(layer_name)
    if match is None:
        return layer_name
    block_id, part, suffix = match.groups()
    block = f"block{int(block_id or 0) + 1}"
    if part == "squeeze_excite_conv":
        return f"{block}_se_{'expand' if suffix == '_1' else 'reduce'}"
    return f"{block}_{_PART[part]}_{'bn' if suffix == '_bn' else 'conv'}"


def MobileNetV3Small(**kwargs):
    return MobileNetV3("small", **kwargs)


def MobileNetV3Large(**kwargs):
    return MobileNetV3("large", **kwargs)


# alpha 0.1, a head of 32 channels and the strided blocks plus the first (expansion 1):
# every kind of block (SE or not, ReLU or hard-swish) at 14k-24k parameters. Momentum
# 0.9 lets BatchNorm statistics settle within a short test training.
TINY_SMALL = dict(input_shape=(32, 32, 3), classes=10, alpha=0.1, last_point_channels=32,
                  blocks=tuple(SMALL[i] for i in (0, 1, 3, 8)), bn_momentum=0.9)
TINY_LARGE = dict(input_shape=(32, 32, 3), classes=10, alpha=0.1, last_point_channels=32,
                  blocks=tuple(LARGE[i] for i in (0, 1, 3, 6, 10, 12)), bn_momentum=0.9)
VARIANTS = (
    dict(name="mobilenet_v3_small", builder=MobileNetV3Small, reference_params=2_542_856,
         params_source="torchvision mobilenet_v3_small (= keras.applications MobileNetV3Small "
                       "without BatchNorm statistics; architecture matches keras.applications)",
         imagenet_top1=67.4, top1_source="Howard et al. 2019, Table 3 (MobileNetV3-Small 1.0)",
         description="MobileNetV3-Small 1.0 (keras.applications form), SE and hard-swish",
         tiny_config=TINY_SMALL),
    dict(name="mobilenet_v3_large", builder=MobileNetV3Large, reference_params=5_483_032,
         params_source="torchvision mobilenet_v3_large (= keras.applications MobileNetV3Large "
                       "without BatchNorm statistics; architecture matches keras.applications)",
         imagenet_top1=75.2, top1_source="Howard et al. 2019, Table 3 (MobileNetV3-Large 1.0)",
         description="MobileNetV3-Large 1.0 (keras.applications form), SE and hard-swish",
         tiny_config=TINY_LARGE),
)

register_family("mobilenet_v3", VARIANTS, task="classification", paper=PAPER,
                pretrained=("imagenet",), feature_levels=common.CNN_FEATURE_LEVELS,
                unsupported_quantize={"16x8": "the converter has no 16x8 kernel for 'HARD_SWISH'"})
