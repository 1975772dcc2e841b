"""ResNet: residual networks.

Paper: Kaiming He, Xiangyu Zhang, Shaoqing Ren, Jian Sun. "Deep Residual
Learning for Image Recognition". CVPR 2016. arXiv:1512.03385.

A residual block learns ``F(x)`` and outputs ``relu(F(x) + shortcut(x))``.
The shortcut is the identity, or a strided 1x1 convolution with BatchNorm
("option B" of the paper) where the shape changes.

Variant choices (named, because implementations differ):
* ``variant="v1.5"`` (default) follows torchvision: convolutions have no bias
  and a bottleneck block strides in its 3x3 convolution.
* ``variant="v1"`` follows the paper and keras.applications: the bottleneck
  strides in its first 1x1 convolution. For the basic block (ResNet-18/34)
  the two variants are the same network.
* BatchNorm uses epsilon 1e-5 and momentum 0.9, torchvision's values.

Parameter counts follow the package convention (BatchNorm running
statistics are not parameters), which is torchvision's.

| depth | block      | blocks per stage | params (torchvision) |
|-------|------------|------------------|----------------------|
| 18    | basic      | 2, 2, 2, 2       | 11,689,512           |
| 34    | basic      | 3, 4, 6, 3       | 21,797,672           |
| 50    | bottleneck | 3, 4, 6, 3       | 25,557,032           |

``stem="small"`` replaces the 7x7/2 convolution and max-pool with one 3x3/1
convolution, the usual adaptation for 8x8 to 32x32 images (as in the paper's
CIFAR-10 experiments); ``stage_widths`` shrinks the network for tests.
"""

import keras

from keras_cv_course.applications.classification import common
from keras_cv_course.applications.registry import register

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9
STAGE_WIDTHS = (64, 128, 256, 512)
BLOCKS_PER_STAGE = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
}
BLOCK_TYPE = {18: "basic", 34: "basic", 50: "bottleneck"}
PAPER = (
    "He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. "
    "CVPR 2016. arXiv:1512.03385"
)


def conv_bn(x, filters, kernel_size, strides, name, activation=True):
    """Convolution, BatchNorm and (optionally) ReLU, named ``name_conv`` etc."""
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False,
        kernel_initializer="he_normal", name=f"{name}_conv",
    )(x)
    x = keras.layers.BatchNormalization(
        epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_bn"
    )(x)
    if activation:
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return x


def shortcut(x, filters, strides, name):
    """Identity, or a projection when the shape changes (paper option B)."""
    if strides == 1 and x.shape[-1] == filters:
        return x
    return conv_bn(x, filters, 1, strides, f"{name}_proj", activation=False)


def basic_block(x, filters, strides, name, variant="v1.5"):
    """Two 3x3 convolutions; output has ``filters`` channels."""
    residual = conv_bn(x, filters, 3, strides, f"{name}_1")
    residual = conv_bn(residual, filters, 3, 1, f"{name}_2", activation=False)
    x = keras.layers.Add(name=f"{name}_add")([shortcut(x, filters, strides, name), residual])
    return keras.layers.ReLU(name=f"{name}_out")(x)


def bottleneck_block(x, filters, strides, name, variant="v1.5"):
    """1x1 reduce, 3x3, 1x1 expand (x4); output has ``4 * filters`` channels."""
    stride_1x1, stride_3x3 = (strides, 1) if variant == "v1" else (1, strides)
    residual = conv_bn(x, filters, 1, stride_1x1, f"{name}_1")
    residual = conv_bn(residual, filters, 3, stride_3x3, f"{name}_2")
    residual = conv_bn(residual, 4 * filters, 1, 1, f"{name}_3", activation=False)
    projected = shortcut(x, 4 * filters, strides, name)
    x = keras.layers.Add(name=f"{name}_add")([projected, residual])
    return keras.layers.ReLU(name=f"{name}_out")(x)


BLOCKS = {"basic": basic_block, "bottleneck": bottleneck_block}


def stem(x, width, kind):
    """The ImageNet stem (7x7/2 conv, 3x3/2 max-pool) or a small-image stem."""
    if kind == "small":
        return conv_bn(x, width, 3, 1, "stem")
    x = conv_bn(x, width, 7, 2, "stem")
    return keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)


def ResNet(
    depth=50,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    stage_widths=STAGE_WIDTHS,
    blocks_per_stage=None,
    block_type=None,
    variant="v1.5",
    stem_type="imagenet",
):
    """Builds a ResNet.

    Args:
        depth: 18, 34 or 50; picks ``blocks_per_stage`` and ``block_type``.
        include_top, weights, input_tensor, input_shape, pooling, classes,
            classifier_activation, name: the keras.applications contract.
        stage_widths: base width of each stage (bottlenecks expand it x4).
        blocks_per_stage: overrides the depth's block counts.
        block_type: ``"basic"`` or ``"bottleneck"``; overrides the depth's.
        variant: ``"v1.5"`` (torchvision) or ``"v1"`` (paper); see module doc.
        stem_type: ``"imagenet"`` or ``"small"``.

    Returns:
        A ``keras.Model``.

    Example:
        >>> model = ResNet(18, input_shape=(32, 32, 3), classes=10,
        ...                stem_type="small", stage_widths=(8, 16, 16, 32))
    """
    if depth not in BLOCKS_PER_STAGE:
        raise common.KCCError(f"depth must be one of {sorted(BLOCKS_PER_STAGE)}, got {depth!r}")
    if variant not in ("v1", "v1.5"):
        raise common.KCCError(f"variant must be 'v1' or 'v1.5', got {variant!r}")
    if stem_type not in ("imagenet", "small"):
        raise common.KCCError(f"stem_type must be 'imagenet' or 'small', got {stem_type!r}")
    blocks_per_stage = blocks_per_stage or BLOCKS_PER_STAGE[depth]
    block = BLOCKS[block_type or BLOCK_TYPE[depth]]

    image = common.image_input(input_tensor, input_shape)
    x = stem(image, stage_widths[0], stem_type)
    for stage, (width, blocks) in enumerate(zip(stage_widths, blocks_per_stage)):
        for index in range(blocks):
            strides = 2 if stage > 0 and index == 0 else 1
            x = block(x, width, strides, f"stage{stage + 1}_block{index + 1}", variant)
    x = common.classifier_head(x, include_top, pooling, classes, classifier_activation)
    model = keras.Model(common.model_inputs(image, input_tensor), x, name=name or f"resnet{depth}")
    return common.load_weights(model, weights)


def ResNet18(**kwargs):
    return ResNet(18, **kwargs)


def ResNet34(**kwargs):
    return ResNet(34, **kwargs)


TINY = dict(input_shape=(32, 32, 3), classes=10, stage_widths=(8, 16, 16, 32),
            stem_type="small")

register("resnet18", ResNet18, task="classification", family="resnet", paper=PAPER,
         reference_params=11_689_512, params_source="torchvision resnet18",
         tiny_config=TINY, description="ResNet-18, basic blocks")
register("resnet34", ResNet34, task="classification", family="resnet", paper=PAPER,
         reference_params=21_797_672, params_source="torchvision resnet34",
         tiny_config=TINY, description="ResNet-34, basic blocks")
