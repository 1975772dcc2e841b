"""MobileNet (v1): depthwise separable convolutions.

Paper: Andrew G. Howard, Menglong Zhu, Bo Chen, Dmitry Kalenichenko, Weijun
Wang, Tobias Weyand, Marco Andreetto, Hartwig Adam. "MobileNets: Efficient
Convolutional Neural Networks for Mobile Vision Applications". arXiv 2017.
arXiv:1704.04861.

A standard KxK convolution is factored into a depthwise KxK convolution (one
filter per channel) and a pointwise 1x1 convolution that mixes channels,
cutting the cost by about ``1/N + 1/K^2``. The network is a 3x3/2 stem and
13 depthwise separable blocks (paper Table 1). The width multiplier
``alpha`` scales every layer's channels; the resolution multiplier is the
input size.

| block | 1  | 2   | 3   | 4   | 5   | 6   | 7-11  | 12   | 13   |
|-------|----|-----|-----|-----|-----|-----|-------|------|------|
| width | 64 | 128 | 128 | 256 | 256 | 512 | 512   | 1024 | 1024 |
| stride| 1  | 2   | 1   | 2   | 1   | 2   | 1     | 2    | 1    |

Reference: keras.applications ``MobileNet`` (its ImageNet weights transplant
exactly). Like keras.applications and the TF-slim checkpoints, the
classifier is a 1x1 convolution on the pooled map (equal to a fully
connected layer), preceded by dropout 0.001. Parameters (BatchNorm statistics
excluded): 4,231,976 at alpha 1.0 and 1,331,592 at alpha 0.5.

Input: images in [0, 1], rescaled in the model to the [-1, 1] of the ImageNet
weights (``include_preprocessing=True``). keras.applications has no such
layer and expects ``keras.applications.mobilenet.preprocess_input``'s [-1, 1];
``include_preprocessing=False`` gives that contract.

Feature levels (``applications.backbone``): the stem's output, then every
block's, a later block replacing an earlier one at the same stride; at alpha
1.0 ``C1``-``C5`` have 64, 128, 256, 512 and 1024 channels (paper Table 1).
"""

import re

import keras

from keras_cv_course.applications.classification import common, transplant
from keras_cv_course.applications.classification.mobilenet_blocks import (
    check_pooling,
    conv_bn,
    conv_classifier,
    rescale_to_symmetric,
)
from keras_cv_course.applications.registry import register_family

# (pointwise filters, depthwise stride) of the 13 depthwise separable blocks.
BLOCKS = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)
STEM_FILTERS = 32
PAPER = (
    "Howard et al. MobileNets: Efficient Convolutional Neural Networks for Mobile "
    "Vision Applications. arXiv 2017. arXiv:1704.04861"
)


def separable_block(x, filters, strides, name, depth_multiplier=1, bn_momentum=0.99):
    """Depthwise 3x3 then pointwise 1x1, each with BatchNorm and ReLU6."""
    x = conv_bn(x, None, 3, strides, f"{name}_dw", "relu6", depthwise=True,
                depth_multiplier=depth_multiplier, bn_momentum=bn_momentum)
    return conv_bn(x, filters, 1, 1, f"{name}_pw", "relu6", bn_momentum=bn_momentum)


def MobileNetV1(
    alpha=1.0,
    blocks=BLOCKS,
    depth_multiplier=1,
    dropout_rate=1e-3,
    include_preprocessing=True,
    bn_momentum=0.99,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
):
    """Builds MobileNet v1.

    Args:
        alpha: width multiplier; each layer has ``int(width * alpha)`` channels.
        blocks: the ``(filters, stride)`` table; shorter tables make test models.
        depth_multiplier: channel multiplier of the depthwise convolutions
            (keras.applications' argument; 1 in the paper).
        dropout_rate: dropout before the classifier.
        include_preprocessing: rescale [0, 1] inputs to [-1, 1] in the model.
        bn_momentum: BatchNorm moving-average momentum (a training setting;
            keras.applications' 0.99 by default).
        include_top, weights, input_tensor, input_shape, pooling, classes,
            classifier_activation, name: the keras.applications contract.
            ``weights="imagenet"`` needs alpha in (0.25, 0.5, 0.75, 1.0) and
            a 128, 160, 192 or 224 square input.

    Returns:
        A ``keras.Model``; ``model.pyramid_outputs`` holds its feature levels.

    Example:
        >>> model = MobileNetV1(alpha=0.25, input_shape=(32, 32, 3), classes=10)
    """
    check_pooling(pooling)
    if alpha <= 0:
        raise common.KCCError(f"alpha must be positive, got {alpha!r}")
    image = common.image_input(input_tensor, input_shape, min_size=32)
    x = rescale_to_symmetric(image, include_preprocessing)
    pyramid = common.FeaturePyramid()
    x = conv_bn(x, int(STEM_FILTERS * alpha), 3, 2, "stem", "relu6", bn_momentum=bn_momentum)
    pyramid.record(x, strides=2)
    for index, (filters, strides) in enumerate(blocks):
        x = separable_block(x, int(filters * alpha), strides, f"block{index + 1}",
                            depth_multiplier, bn_momentum)
        pyramid.record(x, strides=strides)
    if include_top:
        x = conv_classifier(x, classes, classifier_activation, dropout_rate)
    else:
        x = common.classifier_head(x, False, pooling, classes, classifier_activation)
    model = keras.Model(common.model_inputs(image, input_tensor), x,
                        name=name or f"mobilenet_v1_{alpha:g}")
    loader = transplant.imagenet_loader("MobileNet", keras_rename, alpha=alpha,
                                        depth_multiplier=depth_multiplier)
    return common.load_weights(pyramid.attach(model), weights, loader)


_KERAS_BLOCK = re.compile(r"^conv_(dw|pw)_(\d+)(_bn)?$")
_KERAS_FIXED = {"conv1": "stem_conv", "conv1_bn": "stem_bn", "conv_preds": "logits"}


def keras_rename(layer_name):
    """keras.applications MobileNet layer name -> ours (``conv_dw_3_bn`` -> ``block3_dw_bn``)."""
    if layer_name in _KERAS_FIXED:
        return _KERAS_FIXED[layer_name]
    match = _KERAS_BLOCK.match(layer_name)
    if match is None:
        return layer_name
    kind, block, bn = match.groups()
    return f"block{block}_{kind}_{'bn' if bn else 'conv'}"


def MobileNetV1_050(alpha=0.5, **kwargs):
    return MobileNetV1(alpha=alpha, **kwargs)


# alpha 1/8 and one block per width (widths 8 ... 128): ~13k parameters. Momentum 0.9
# lets BatchNorm's moving statistics settle within a short test training.
TINY = dict(input_shape=(32, 32, 3), classes=10, alpha=0.125, bn_momentum=0.9,
            blocks=((64, 1), (128, 2), (256, 2), (512, 2), (1024, 2)))
VARIANTS = (
    dict(name="mobilenet_v1", builder=MobileNetV1, reference_params=4_231_976,
         params_source="keras.applications MobileNet(alpha=1.0), BatchNorm statistics excluded",
         imagenet_top1=70.6, top1_source="Howard et al. 2017, Table 8 (1.0 MobileNet-224)",
         description="MobileNet v1, alpha 1.0, depthwise separable convolutions"),
    dict(name="mobilenet_v1_050", builder=MobileNetV1_050, reference_params=1_331_592,
         params_source="keras.applications MobileNet(alpha=0.5), BatchNorm statistics excluded",
         imagenet_top1=63.7, top1_source="Howard et al. 2017, Table 6 (0.50 MobileNet-224)",
         description="MobileNet v1, width multiplier alpha 0.5"),
)

register_family("mobilenet_v1", VARIANTS, task="classification", paper=PAPER,
                tiny_config=TINY, pretrained=("imagenet",),
                feature_levels=common.CNN_FEATURE_LEVELS,
                unsupported_quantize={"16x8": common.INT16_CONV_REFUSED})
