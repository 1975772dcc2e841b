"""MobileNetV2: inverted residuals and linear bottlenecks.

Paper: Mark Sandler, Andrew Howard, Menglong Zhu, Andrey Zhmoginov,
Liang-Chieh Chen. "MobileNetV2: Inverted Residuals and Linear Bottlenecks".
CVPR 2018. arXiv:1801.04381.

Each block expands a thin input ``t`` times with a 1x1 convolution, filters
it with a depthwise 3x3, and projects it back with a *linear* 1x1 (no ReLU:
a ReLU in the thin bottleneck would destroy information). The residual joins
the thin ends. The stages follow paper Table 2, where each row repeats a
block ``n`` times and the first block of a row has stride ``s``:

| stage | t | c   | n | s |
|-------|---|-----|---|---|
| 1     | 1 | 16  | 1 | 1 |
| 2     | 6 | 24  | 2 | 2 |
| 3     | 6 | 32  | 3 | 2 |
| 4     | 6 | 64  | 4 | 2 |
| 5     | 6 | 96  | 3 | 1 |
| 6     | 6 | 160 | 3 | 2 |
| 7     | 6 | 320 | 1 | 1 |

A 3x3/2 stem with 32 channels comes first, and a 1x1 convolution to 1280
channels, global pooling and the classifier come last. Layers are named
``stage{row}_block{i}_*``.

Reference: keras.applications ``MobileNetV2`` (ImageNet weights transplant
exactly; BatchNorm epsilon 1e-3) and torchvision ``mobilenet_v2``, which has
the same 3,504,872 parameters.

Input: images in [0, 1], rescaled in the model to the [-1, 1] of the ImageNet
weights (``include_preprocessing=True``). keras.applications has no such
layer and expects [-1, 1] (``keras.applications.mobilenet_v2.preprocess_input``);
``include_preprocessing=False`` gives that contract.

Feature levels (``applications.backbone``), as timm's ``feature_info`` for
``mobilenetv2_100``: the stem's output, then every block's, a later block
replacing an earlier one at the same stride; the final 1x1 "top" convolution
is not a level. At alpha 1.0 ``C1``-``C5`` have 16, 24, 32, 96 and 320
channels.
"""

import re

import keras

from keras_cv_course.applications.classification import common, transplant
from keras_cv_course.applications.classification.mobilenet_blocks import (
    check_pooling,
    conv_bn,
    inverted_residual,
    make_divisible,
    rescale_to_symmetric,
)
from keras_cv_course.applications.registry import register_family

# (expansion t, channels c, repeats n, stride s), paper Table 2.
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
          (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
STEM_FILTERS = 32
LAST_CHANNELS = 1280
PAPER = (
    "Sandler, Howard, Zhu, Zhmoginov, Chen. MobileNetV2: Inverted Residuals and "
    "Linear Bottlenecks. CVPR 2018. arXiv:1801.04381"
)


def MobileNetV2(
    alpha=1.0,
    last_channels=None,
    stages=STAGES,
    include_preprocessing=True,
    bn_momentum=0.999,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="mobilenet_v2",
):
    """Builds MobileNetV2.

    Args:
        alpha: width multiplier; block widths are ``make_divisible(c * alpha)``.
        last_channels: width of the final 1x1 convolution; ``None`` uses the
            reference rule (1280, scaled only when ``alpha > 1``).
        stages: the ``(t, c, n, s)`` table; shorter tables make test models.
        include_preprocessing: rescale [0, 1] inputs to [-1, 1] in the model.
        bn_momentum: BatchNorm moving-average momentum (a training setting;
            keras.applications' 0.999 by default).
        include_top, weights, input_tensor, input_shape, pooling, classes,
            classifier_activation, name: the keras.applications contract.

    Returns:
        A ``keras.Model``; ``model.pyramid_outputs`` holds its feature levels.

    Example:
        >>> model = MobileNetV2(alpha=0.25, last_channels=64,
        ...                     input_shape=(32, 32, 3), classes=10)
    """
    check_pooling(pooling)
    if alpha <= 0:
        raise common.KCCError(f"alpha must be positive, got {alpha!r}")
    if last_channels is None:
        last_channels = make_divisible(LAST_CHANNELS * alpha) if alpha > 1 else LAST_CHANNELS
    bn = dict(bn_epsilon=1e-3, bn_momentum=bn_momentum)
    image = common.image_input(input_tensor, input_shape, min_size=32)
    x = rescale_to_symmetric(image, include_preprocessing)
    pyramid = common.FeaturePyramid()
    x = conv_bn(x, make_divisible(STEM_FILTERS * alpha), 3, 2, "stem", "relu6", **bn)
    pyramid.record(x, strides=2)
    for stage, (expansion, channels, repeats, first_stride) in enumerate(stages):
        filters = make_divisible(int(channels * alpha))
        for index in range(repeats):
            strides = first_stride if index == 0 else 1
            x = inverted_residual(x, filters, x.shape[-1] * expansion, 3, strides, "relu6",
                                  f"stage{stage + 1}_block{index + 1}", **bn)
            pyramid.record(x, strides=strides)
    x = conv_bn(x, last_channels, 1, 1, "top", "relu6", **bn)  # not a level (timm)
    x = common.classifier_head(x, include_top, pooling, classes, classifier_activation)
    model = keras.Model(common.model_inputs(image, input_tensor), x, name=name)
    loader = transplant.imagenet_loader("MobileNetV2", keras_rename, alpha=alpha)
    return common.load_weights(pyramid.attach(model), weights, loader)


def _keras_block_names():
    """keras.applications block prefix (``block_3``) -> ours (``stage3_block1``)."""
    names, block_id = {}, 0
    for stage, (_, _, repeats, _) in enumerate(STAGES):
        for index in range(repeats):
            keras_prefix = f"block_{block_id}" if block_id else "expanded_conv"
            names[keras_prefix] = f"stage{stage + 1}_block{index + 1}"
            block_id += 1
    return names


_BLOCK_NAMES = _keras_block_names()
_KERAS_BLOCK = re.compile(r"^(expanded_conv|block_\d+)_(expand|depthwise|project)(_BN)?$")
_PART = {"expand": "expand", "depthwise": "dw", "project": "project"}
_KERAS_FIXED = {"Conv1": "stem_conv", "bn_Conv1": "stem_bn", "Conv_1": "top_conv",
                "Conv_1_bn": "top_bn"}


def keras_rename(layer_name):
    """keras.applications MobileNetV2 layer name -> ours.

    ``block_4_expand_BN`` -> ``stage3_block2_expand_bn``.
    """
    if layer_name in _KERAS_FIXED:
        return _KERAS_FIXED[layer_name]
    match = _KERAS_BLOCK.match(layer_name)
    if match is None:
        return layer_name
    prefix, part, bn = match.groups()
    return f"{_BLOCK_NAMES[prefix]}_{_PART[part]}_{'bn' if bn else 'conv'}"


# alpha 0.1 gives widths 8 ... 32, one block per stage, a last convolution of 32: ~18k
# params. Momentum 0.9 lets BatchNorm statistics settle within a short test training.
TINY = dict(input_shape=(32, 32, 3), classes=10, alpha=0.1, last_channels=32,
            stages=tuple((t, c, 1, s) for t, c, _, s in STAGES), bn_momentum=0.9)

VARIANTS = (
    dict(name="mobilenet_v2", builder=MobileNetV2, reference_params=3_504_872,
         params_source="torchvision mobilenet_v2 (= keras.applications MobileNetV2 without "
                       "BatchNorm statistics)",
         imagenet_top1=72.0, top1_source="Sandler et al. 2018, Table 4 (MobileNetV2 1.0)",
         description="MobileNetV2 1.0, inverted residuals with linear bottlenecks"),
)

register_family("mobilenet_v2", VARIANTS, task="classification", paper=PAPER,
                tiny_config=TINY, pretrained=("imagenet",),
                feature_levels=common.CNN_FEATURE_LEVELS,
                unsupported_quantize={"16x8": common.INT16_CONV_REFUSED})
