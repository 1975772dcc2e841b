"""RegNet: networks generated from a design space.

Paper: Ilija Radosavovic, Raj Prateek Kosaraju, Ross Girshick, Kaiming He,
Piotr Dollar. "Designing Network Design Spaces". CVPR 2020. arXiv:2003.13678.

A RegNet is not a table of stages but six numbers: depth ``d``, initial
width ``w0``, slope ``wa``, multiplier ``wm``, group width ``g`` and
bottleneck ratio ``b``. ``regnet_widths`` turns them into stages with the
paper's quantized linear rule (section 3.3):

1. a linear width per block, ``u_j = w0 + wa * j`` for ``j < d``;
2. quantize in log space: ``s_j = round(log(u_j / w0) / log(wm))`` and
   ``w_j = w0 * wm ** s_j``, rounded to a multiple of 8;
3. consecutive blocks of equal width form a stage;
4. make each stage's bottleneck width ``w * b`` a multiple of its group
   width (the group width is first capped at the bottleneck width).

Step 4 rounds differently in the two reference codes, and it matters:
torchvision rounds halves up and never loses more than 10% (its
``_make_divisible``); pycls rounds halves to even. For RegNetX-400MF the
last stage's quantized width 392 is 24.5 groups of 16, so torchvision builds
400 channels and pycls 384. ``rounding="torchvision"`` (the default, whose
parameter counts are the references here) or ``"pycls"`` picks one.

Every block is the ResNeXt-style bottleneck "X block": 1x1 conv, 3x3 group
conv (stride 2 in a stage's first block), 1x1 conv, each with BatchNorm, and
a residual shortcut (a strided 1x1 projection when the shape changes).
RegNetY adds squeeze-and-excitation after the 3x3 conv, squeezing to
``round(0.25 * block input width)`` channels, as pycls and torchvision do.
The stem is a 3x3/2 convolution to 32 channels. BatchNorm epsilon is 1e-5
and momentum 0.9 (torchvision's 0.1). Convolutions have no bias.

| model          | d  | w0  | wa    | wm   | g  | SE   | params (torchvision) |
|----------------|----|-----|-------|------|----|------|----------------------|
| regnet_x_400mf | 22 | 24  | 24.48 | 2.54 | 16 | -    | 5,495,976            |
| regnet_x_800mf | 16 | 56  | 35.73 | 2.28 | 16 | -    | 7,259,656            |
| regnet_x_1_6gf | 18 | 80  | 34.01 | 2.25 | 24 | -    | 9,190,136            |
| regnet_x_3_2gf | 25 | 88  | 26.31 | 2.25 | 48 | -    | 15,296,552           |
| regnet_y_400mf | 16 | 48  | 27.89 | 2.09 | 8  | 0.25 | 4,344,144            |
| regnet_y_800mf | 14 | 56  | 38.84 | 2.4  | 16 | 0.25 | 6,432,512            |
| regnet_y_1_6gf | 27 | 48  | 20.71 | 2.65 | 24 | 0.25 | 11,202,430           |
| regnet_y_3_2gf | 21 | 80  | 42.63 | 2.66 | 24 | 0.25 | 19,436,338           |

Feature levels (``applications.backbone``): the stem's output (``C1``), then
every block's, a later block replacing an earlier one at the same stride, so
each stage's output is a level: ``C2``-``C5`` have the four stage widths of
``regnet_widths`` (32, 64, 160, 400 for RegNetX-400MF), as in timm's
``feature_info``.

Pretrained weights: none. keras.applications' RegNets are pycls ports with
different layer structure and names; they are not transplanted here, so
``weights="imagenet"`` raises a clear error. ``weights=`` a ``.weights.h5``
path loads your own.
"""

import functools
import math

import keras
import numpy as np

from keras_cv_course.applications.classification import common
from keras_cv_course.applications.registry import register_family
from keras_cv_course.errors import KCCError, unknown_name_error

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9
WIDTH_QUANTUM = 8
PAPER = (
    "Radosavovic, Kosaraju, Girshick, He, Dollar. Designing Network Design Spaces. "
    "CVPR 2020. arXiv:2003.13678"
)
DESIGNS = {  # name: design-space parameters (torchvision's, pycls' settings)
    "regnet_x_400mf": dict(depth=22, w0=24, wa=24.48, wm=2.54, group_width=16),
    "regnet_x_800mf": dict(depth=16, w0=56, wa=35.73, wm=2.28, group_width=16),
    "regnet_x_1_6gf": dict(depth=18, w0=80, wa=34.01, wm=2.25, group_width=24),
    "regnet_x_3_2gf": dict(depth=25, w0=88, wa=26.31, wm=2.25, group_width=48),
    "regnet_y_400mf": dict(depth=16, w0=48, wa=27.89, wm=2.09, group_width=8, se_ratio=0.25),
    "regnet_y_800mf": dict(depth=14, w0=56, wa=38.84, wm=2.4, group_width=16, se_ratio=0.25),
    "regnet_y_1_6gf": dict(depth=27, w0=48, wa=20.71, wm=2.65, group_width=24, se_ratio=0.25),
    "regnet_y_3_2gf": dict(depth=21, w0=80, wa=42.63, wm=2.66, group_width=24, se_ratio=0.25),
}


def make_divisible(value, divisor):
    """Rounds ``value`` to the nearest multiple of ``divisor``, losing < 10%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def round_to_group(value, group_width, rounding="torchvision"):
    """Rounds a bottleneck width to a multiple of the group width (step 4)."""
    if rounding == "pycls":
        return int(round(value / group_width) * group_width)  # halves to even
    return make_divisible(value, group_width)


def regnet_widths(depth, w0, wa, wm, group_width, bottleneck_ratio=1.0,
                  rounding="torchvision"):
    """Generates the stages of a RegNet from its design-space parameters.

    Args:
        depth: total number of blocks ``d``.
        w0: initial width, a positive multiple of 8.
        wa: width slope, ``>= 0``.
        wm: width multiplier, ``> 1``.
        group_width: channels per group of the 3x3 convolutions.
        bottleneck_ratio: ``b``; the bottleneck width is ``w * b``.
        rounding: ``"torchvision"`` or ``"pycls"``; see the module docstring.

    Returns:
        A dict with ``widths``, ``depths`` and ``group_widths`` (one entry per
        stage) and ``block_widths`` (one per block, before the group fix).

    Example:
        >>> regnet_widths(22, 24, 24.48, 2.54, 16)["widths"]  # RegNetX-400MF
        [32, 64, 160, 400]
    """
    if rounding not in ("torchvision", "pycls"):
        raise KCCError(f"rounding must be 'torchvision' or 'pycls', got {rounding!r}")
    if wa < 0 or w0 <= 0 or wm <= 1 or w0 % WIDTH_QUANTUM:
        raise KCCError(
            "RegNet needs wa >= 0, wm > 1 and w0 a positive multiple of 8, "
            f"got w0={w0!r}, wa={wa!r}, wm={wm!r}"
        )
    linear = np.arange(depth) * wa + w0  # u_j
    steps = np.round(np.log(linear / w0) / math.log(wm))  # s_j
    block_widths = (np.round(w0 * np.power(wm, steps) / WIDTH_QUANTUM) * WIDTH_QUANTUM)
    block_widths = [int(w) for w in block_widths]
    widths, depths = [], []
    for width in block_widths:  # runs of equal width are stages
        if widths and widths[-1] == width:
            depths[-1] += 1
        else:
            widths.append(width)
            depths.append(1)
    bottlenecks = [int(w * bottleneck_ratio) for w in widths]
    group_widths = [min(group_width, w) for w in bottlenecks]
    bottlenecks = [
        round_to_group(w, g, rounding) for w, g in zip(bottlenecks, group_widths, strict=True)
    ]
    widths = [int(w / bottleneck_ratio) for w in bottlenecks]
    return dict(widths=widths, depths=depths, group_widths=group_widths,
                block_widths=block_widths)


def conv_bn(x, filters, kernel_size, strides, name, groups=1, activation=True):
    """Convolution (no bias), BatchNorm and optionally ReLU."""
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", groups=groups,
        use_bias=False, kernel_initializer="he_normal", name=f"{name}_conv",
    )(x)
    x = keras.layers.BatchNormalization(
        epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_bn"
    )(x)
    if activation:
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return x


def squeeze_excite(x, squeeze_channels, name):
    """Channel gating: global pool, 1x1 reduce + ReLU, 1x1 expand + sigmoid."""
    channels = x.shape[-1]
    s = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_squeeze")(x)
    s = keras.layers.Conv2D(squeeze_channels, 1, activation="relu", name=f"{name}_reduce")(s)
    s = keras.layers.Conv2D(channels, 1, activation="sigmoid", name=f"{name}_expand")(s)
    return keras.layers.Multiply(name=f"{name}_scale")([x, s])


def x_block(x, width, strides, group_width, bottleneck_ratio, se_ratio, name):
    """Residual bottleneck with a group conv (X block); SE makes it a Y block."""
    width_in = x.shape[-1]
    bottleneck = int(round(width * bottleneck_ratio))
    residual = conv_bn(x, bottleneck, 1, 1, f"{name}_a")
    residual = conv_bn(residual, bottleneck, 3, strides, f"{name}_b",
                       groups=bottleneck // group_width)
    if se_ratio:
        # The SE width is relative to the block's input, as in pycls.
        residual = squeeze_excite(residual, int(round(se_ratio * width_in)), f"{name}_se")
    residual = conv_bn(residual, width, 1, 1, f"{name}_c", activation=False)
    if strides != 1 or width_in != width:
        x = conv_bn(x, width, 1, strides, f"{name}_proj", activation=False)
    x = keras.layers.Add(name=f"{name}_add")([x, residual])
    return keras.layers.ReLU(name=f"{name}_out")(x)


def RegNet(
    depth,
    w0,
    wa,
    wm,
    group_width,
    bottleneck_ratio=1.0,
    se_ratio=None,
    stem_width=32,
    rounding="torchvision",
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
):
    """Builds a RegNet from its design-space parameters.

    Args:
        depth, w0, wa, wm, group_width, bottleneck_ratio: the design-space
            parameters; see ``regnet_widths``.
        se_ratio: ``None`` for RegNetX, ``0.25`` for RegNetY.
        stem_width: channels of the 3x3/2 stem convolution.
        rounding: ``"torchvision"`` or ``"pycls"`` group-width rounding.
        include_top, weights, input_tensor, input_shape, pooling, classes,
            classifier_activation, name: the keras.applications contract.
            ``weights`` is ``None`` or a ``.weights.h5`` path.

    Returns:
        A ``keras.Model``; ``model.pyramid_outputs`` holds its feature levels.

    Example:
        >>> model = RegNet(depth=4, w0=8, wa=8, wm=2, group_width=8,
        ...                stem_width=8, input_shape=(32, 32, 3), classes=10)
    """
    stages = regnet_widths(depth, w0, wa, wm, group_width, bottleneck_ratio, rounding)
    image = common.image_input(input_tensor, input_shape)
    pyramid = common.FeaturePyramid()
    x = pyramid.record(conv_bn(image, stem_width, 3, 2, "stem"), strides=2)
    plan = zip(stages["widths"], stages["depths"], stages["group_widths"], strict=True)
    for stage, (width, blocks, groups_width) in enumerate(plan):
        for index in range(blocks):
            strides = 2 if index == 0 else 1
            x = x_block(x, width, strides, groups_width, bottleneck_ratio,
                        se_ratio, f"stage{stage + 1}_block{index + 1}")
            pyramid.record(x, strides=strides)
    x = common.classifier_head(x, include_top, pooling, classes, classifier_activation)
    model = keras.Model(common.model_inputs(image, input_tensor), x, name=name or "regnet")
    return common.load_weights(pyramid.attach(model), weights)


def describe(name, rounding="torchvision"):
    """Returns (and prints) the generated stages of a registered RegNet variant.

    Example:
        >>> stages = describe("regnet_x_400mf")  # prints widths, depths, groups
        >>> stages["widths"], stages["depths"]
        ([32, 64, 160, 400], [1, 2, 7, 12])
    """
    if name not in DESIGNS:
        raise unknown_name_error("RegNet variant", name, DESIGNS)
    params = {k: v for k, v in DESIGNS[name].items() if k != "se_ratio"}
    stages = regnet_widths(**params, rounding=rounding)
    print(f"{name}: widths={stages['widths']} depths={stages['depths']} "
          f"group_widths={stages['group_widths']}")
    return stages


TINY = dict(input_shape=(32, 32, 3), classes=10, depth=4, w0=8, wa=8, wm=2,
            group_width=8, stem_width=8)
TOP1_SOURCE = "torchvision {} IMAGENET1K_V1 acc@1 (reproduces the paper's recipe)"


def _variant(name, reference_params, imagenet_top1):
    """The registry record of a variant of ``DESIGNS``; its description comes from the design."""
    design = DESIGNS[name]
    kind = "RegNetY" if "se_ratio" in design else "RegNetX"
    return dict(
        name=name, builder=functools.partial(RegNet, **design),
        reference_params=reference_params, params_source=f"torchvision {name}",
        tiny_config={**TINY, "se_ratio": design.get("se_ratio")},
        imagenet_top1=imagenet_top1, top1_source=TOP1_SOURCE.format(name),
        description=f"{kind}-{name.split('_', 2)[2].upper().replace('_', '.')}, "
                    f"generated from d={design['depth']}, w0={design['w0']}, "
                    f"wa={design['wa']}, wm={design['wm']}, g={design['group_width']}",
    )


# reference_params: torchvision's count; imagenet_top1: torchvision IMAGENET1K_V1 acc@1.
VARIANTS = (
    _variant("regnet_x_400mf", 5_495_976, 72.834),
    _variant("regnet_x_800mf", 7_259_656, 75.212),
    _variant("regnet_x_1_6gf", 9_190_136, 77.040),
    _variant("regnet_x_3_2gf", 15_296_552, 78.364),
    _variant("regnet_y_400mf", 4_344_144, 74.046),
    _variant("regnet_y_800mf", 6_432_512, 76.420),
    _variant("regnet_y_1_6gf", 11_202_430, 77.950),
    _variant("regnet_y_3_2gf", 19_436_338, 78.948),
)

register_family("regnet", VARIANTS, task="classification", paper=PAPER,
                feature_levels=common.CNN_FEATURE_LEVELS)
