"""ResNeXt: aggregated residual transformations.

Paper: Saining Xie, Ross Girshick, Piotr Dollar, Zhuowen Tu, Kaiming He.
"Aggregated Residual Transformations for Deep Neural Networks". CVPR 2017.
arXiv:1611.05431.

A ResNeXt bottleneck splits its 3x3 convolution into ``C`` groups (the
cardinality) of ``d`` channels each: the paper's form (c) of the block, a
grouped convolution. "50 32x4d" means depth 50, ``C = 32`` and ``d = 4`` at
the first stage, so the 3x3 convolution has ``32 * 4 = 128`` channels where
ResNet-50 has 64; the width doubles with each stage, as in ResNet.

Choices: the network is torchvision's (v1.5: the stride sits in the grouped
3x3 convolution; no convolution bias; BatchNorm epsilon 1e-5). It is built by
``resnet.ResNet`` with ``groups`` and ``width_per_group``. The grouped
convolution is Keras' ``Conv2D(groups=32)``; the export path turns it into
one grouped ``Conv`` in ONNX and ``CONV_2D`` in TFLite (see
``export/converters.py`` for the one step that takes).

| variant   | blocks per stage | C  | d | params (torchvision) | top-1 (torchvision) |
|-----------|------------------|----|---|----------------------|---------------------|
| 50 32x4d  | 3, 4, 6, 3       | 32 | 4 | 25,028,904           | 77.618              |
| 101 32x8d | 3, 4, 23, 3      | 32 | 8 | 88,791,336           | 79.312              |

Feature levels are ResNet's (``resnet.py``): ResNeXt-50 gives ``C1``-``C5``
with 64, 256, 512, 1024 and 2048 channels.

No ImageNet weights: keras.applications does not ship ResNeXt, so
``weights="imagenet"`` raises; torchvision's weights are not converted here.
"""

from keras_cv_course.applications.classification.common import CNN_FEATURE_LEVELS
from keras_cv_course.applications.classification.resnet import ResNet
from keras_cv_course.applications.registry import register_family

PAPER = (
    "Xie, Girshick, Dollar, Tu, He. Aggregated Residual Transformations for Deep "
    "Neural Networks. CVPR 2017. arXiv:1611.05431"
)


def ResNeXt50_32x4d(**kwargs):
    return ResNet(50, **{"groups": 32, "width_per_group": 4, **kwargs})


def ResNeXt101_32x8d(**kwargs):
    return ResNet(101, **{"groups": 32, "width_per_group": 8, **kwargs})


# Tiny: 4 groups of 2 channels in the first stage (bottleneck width 8).
TINY = dict(input_shape=(32, 32, 3), classes=10, stage_widths=(8, 8, 16, 16),
            blocks_per_stage=(1, 1, 1, 1), stem_type="small", groups=4, width_per_group=16)
TOP1_SOURCE = "torchvision IMAGENET1K_V1 weights, documented acc@1"

VARIANTS = (
    dict(name="resnext50_32x4d", builder=ResNeXt50_32x4d, reference_params=25_028_904,
         params_source="torchvision resnext50_32x4d", imagenet_top1=77.618,
         description="ResNeXt-50, cardinality 32, 4 channels per group"),
    dict(name="resnext101_32x8d", builder=ResNeXt101_32x8d, reference_params=88_791_336,
         params_source="torchvision resnext101_32x8d", imagenet_top1=79.312,
         description="ResNeXt-101, cardinality 32, 8 channels per group"),
)

register_family("resnext", VARIANTS, task="classification", paper=PAPER, tiny_config=TINY,
                top1_source=TOP1_SOURCE, feature_levels=CNN_FEATURE_LEVELS)
