"""ResNet: residual networks, v1, v1.5 and v2 (pre-activation).

Papers:
* Kaiming He, Xiangyu Zhang, Shaoqing Ren, Jian Sun. "Deep Residual
  Learning for Image Recognition". CVPR 2016. arXiv:1512.03385.
* Kaiming He, Xiangyu Zhang, Shaoqing Ren, Jian Sun. "Identity Mappings in
  Deep Residual Networks". ECCV 2016. arXiv:1603.05027 (v2).

A residual block learns ``F(x)`` and outputs ``relu(F(x) + shortcut(x))``.
The shortcut is the identity, or a strided 1x1 convolution with BatchNorm
("option B" of the paper) where the shape changes.

Variant choices (named, because implementations differ):
* ``variant="v1.5"`` (default) follows torchvision: convolutions have no
  bias, BatchNorm epsilon is 1e-5, and a bottleneck block strides in its 3x3
  convolution.
* ``variant="v1"`` follows the paper as keras.applications ResNet50/101/152
  builds it: every convolution has a bias, BatchNorm epsilon is 1.001e-5, and
  a bottleneck strides in its first 1x1 convolution. ImageNet weights
  transplant from keras.applications.
* ``variant="v2"`` is the pre-activation network (BN-ReLU before each
  convolution, a final ``post_bn``) as keras.applications ResNet50V2/101V2/
  152V2 builds it. Note keras' choice, kept here so its weights transplant:
  a stage downsamples in its *last* block (strided 3x3, and a 1x1/2 max-pool
  on the identity shortcut), stages 1-3 downsample and stage 4 does not; the
  paper's code downsamples in the first block of stages 2-4. Same parameter
  count, same output resolution.
* Strided convolutions and the stem max-pool pad explicitly and
  symmetrically (``ZeroPadding2D`` then ``"valid"``), as torchvision and
  keras.applications do; TensorFlow's ``"same"`` would pad one pixel less on
  the top and left.

ResNeXt (``groups``, ``width_per_group``) reuses the bottleneck: see
``resnext.py``. Grouped convolutions are Keras' ``Conv2D(groups=...)``.

Parameter counts follow the package convention (BatchNorm running
statistics are not parameters), which is torchvision's. For keras.applications
models the reference is their ``count_params()`` minus the moving statistics.
keras.applications has no ResNet-18/34; ``variant="v1"`` builds them with
convolution biases, and ``"v2"`` needs bottleneck blocks.

| depth | block      | blocks per stage | v1.5 (torchvision) | v1 (keras) | v2 (keras) |
|-------|------------|------------------|--------------------|------------|------------|
| 18    | basic      | 2, 2, 2, 2       | 11,689,512         | -          | -          |
| 34    | basic      | 3, 4, 6, 3       | 21,797,672         | -          | -          |
| 50    | bottleneck | 3, 4, 6, 3       | 25,557,032         | 25,583,592 | 25,568,360 |
| 101   | bottleneck | 3, 4, 23, 3      | 44,549,160         | 44,601,832 | 44,577,896 |
| 152   | bottleneck | 3, 8, 36, 3      | 60,192,808         | 60,268,520 | 60,236,904 |

``norm="frozen"`` replaces every BatchNorm by ``FrozenBatchNormalization``
(fixed scale, shift and statistics, none of them counted as parameters), as
torchvision's detection backbones do; RetinaNet and FCOS build on it.

``stem_type="small"`` replaces the 7x7/2 convolution and max-pool with one 3x3/1
convolution, the usual adaptation for 8x8 to 32x32 images (as in the paper's
CIFAR-10 experiments); ``stage_widths`` and ``blocks_per_stage`` shrink the
network for tests.

Feature levels (``applications.backbone``), as timm's ``feature_info`` for
ResNets: the stem's output after its convolution, BatchNorm and ReLU (``C1``
with the ImageNet stem; a bare convolution in v2), then the output of every
block, a later block replacing an earlier one at the same stride; in v2 the
final ``post_relu`` replaces the last block at the last stride. ResNet-50
gives ``C1``-``C5`` with 64, 256, 512, 1024 and 2048 channels, ResNet-18
``C2``-``C5`` with 64, 128, 256 and 512. The small-image stem does not
downsample, so its stages sit at ``C0``-``C3``.
"""

import re

import keras

from keras_cv_course.applications.classification import common, transplant
from keras_cv_course.applications.registry import register_family
from keras_cv_course.layers.frozen_batch_norm import FrozenBatchNormalization

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5  # torchvision; kept as a module constant for callers
EPSILON = {"v1.5": 1e-5, "v1": 1.001e-5, "v2": 1.001e-5}
CONV_BIAS = {"v1.5": False, "v1": True, "v2": False}
NORMS = ("batch", "frozen")  # BatchNorm, or FrozenBatchNormalization under a detector
STAGE_WIDTHS = (64, 128, 256, 512)
BLOCKS_PER_STAGE = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
BLOCK_TYPE = {18: "basic", 34: "basic", 50: "bottleneck", 101: "bottleneck",
              152: "bottleneck"}
KERAS_APPLICATION = {  # (depth, variant) -> keras.applications constructor
    (50, "v1"): "ResNet50", (101, "v1"): "ResNet101", (152, "v1"): "ResNet152",
    (50, "v2"): "ResNet50V2", (101, "v2"): "ResNet101V2", (152, "v2"): "ResNet152V2",
}
PAPER = (
    "He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. "
    "CVPR 2016. arXiv:1512.03385"
)
PAPER_V2 = (
    "He, Zhang, Ren, Sun. Identity Mappings in Deep Residual Networks. "
    "ECCV 2016. arXiv:1603.05027"
)


def conv(x, filters, kernel_size, strides, name, use_bias=False, groups=1):
    """A convolution named ``name_conv``; strided ones pad explicitly (``name_pad``)."""
    padding = "same"
    if strides > 1 and kernel_size > 1:
        x = keras.layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
        padding = "valid"
    return keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=use_bias,
        groups=groups, kernel_initializer="he_normal", name=f"{name}_conv",
    )(x)


def batch_norm(x, name, epsilon=BN_EPSILON, norm="batch"):
    """BatchNorm, or with ``norm="frozen"`` its fixed form (``FrozenBatchNormalization``)."""
    if norm == "frozen":
        return FrozenBatchNormalization(epsilon=epsilon, name=name)(x)
    return keras.layers.BatchNormalization(
        epsilon=epsilon, momentum=BN_MOMENTUM, name=name
    )(x)


def conv_bn(x, filters, kernel_size, strides, name, activation=True, variant="v1.5",
            groups=1, norm="batch"):
    """Convolution, BatchNorm and (optionally) ReLU, named ``name_conv`` etc."""
    x = conv(x, filters, kernel_size, strides, name, CONV_BIAS[variant], groups)
    x = batch_norm(x, f"{name}_bn", EPSILON[variant], norm)
    if activation:
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return x


def shortcut(x, filters, strides, name, variant="v1.5", norm="batch"):
    """Identity, or a projection when the shape changes (paper option B)."""
    if strides == 1 and x.shape[-1] == filters:
        return x
    return conv_bn(x, filters, 1, strides, f"{name}_proj", activation=False, variant=variant,
                   norm=norm)


def basic_block(x, filters, strides, name, variant="v1.5", groups=1, width_per_group=64,
                norm="batch"):
    """Two 3x3 convolutions; output has ``filters`` channels."""
    if groups != 1 or width_per_group != 64:
        raise common.KCCError("the basic block supports groups=1, width_per_group=64 only")
    residual = conv_bn(x, filters, 3, strides, f"{name}_1", variant=variant, norm=norm)
    residual = conv_bn(residual, filters, 3, 1, f"{name}_2", activation=False, variant=variant,
                       norm=norm)
    projected = shortcut(x, filters, strides, name, variant, norm)
    x = keras.layers.Add(name=f"{name}_add")([projected, residual])
    return keras.layers.ReLU(name=f"{name}_out")(x)


def bottleneck_width(filters, groups, width_per_group):
    """Width of the 3x3 convolution: ``filters`` for ResNet, wider for ResNeXt."""
    return int(filters * width_per_group / 64) * groups


def bottleneck_block(x, filters, strides, name, variant="v1.5", groups=1,
                     width_per_group=64, norm="batch"):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand; ``4 * filters`` channels out."""
    width = bottleneck_width(filters, groups, width_per_group)
    stride_1x1, stride_3x3 = (strides, 1) if variant == "v1" else (1, strides)
    residual = conv_bn(x, width, 1, stride_1x1, f"{name}_1", variant=variant, norm=norm)
    residual = conv_bn(residual, width, 3, stride_3x3, f"{name}_2", variant=variant,
                       groups=groups, norm=norm)
    residual = conv_bn(residual, 4 * filters, 1, 1, f"{name}_3", activation=False,
                       variant=variant, norm=norm)
    projected = shortcut(x, 4 * filters, strides, name, variant, norm)
    x = keras.layers.Add(name=f"{name}_add")([projected, residual])
    return keras.layers.ReLU(name=f"{name}_out")(x)


def preact_bottleneck_block(x, filters, strides, name, variant="v2", groups=1,
                            width_per_group=64, norm="batch"):
    """BN-ReLU first, then 1x1, 3x3 (strided), 1x1 with bias; nothing after the add.

    The shortcut is a 1x1 convolution of the pre-activation where the width
    changes, a 1x1/``strides`` max-pool of ``x`` where only the size does,
    and ``x`` itself otherwise (keras.applications ResNetV2).
    """
    width = bottleneck_width(filters, groups, width_per_group)
    epsilon = EPSILON["v2"]
    preact = batch_norm(x, f"{name}_preact_bn", epsilon, norm)
    preact = keras.layers.ReLU(name=f"{name}_preact_relu")(preact)
    if x.shape[-1] != 4 * filters:
        projected = conv(preact, 4 * filters, 1, strides, f"{name}_proj", use_bias=True)
    elif strides > 1:
        projected = keras.layers.MaxPooling2D(1, strides, name=f"{name}_proj_pool")(x)
    else:
        projected = x
    residual = conv_bn(preact, width, 1, 1, f"{name}_1", variant="v2", norm=norm)
    residual = conv_bn(residual, width, 3, strides, f"{name}_2", variant="v2", groups=groups,
                       norm=norm)
    residual = conv(residual, 4 * filters, 1, 1, f"{name}_3", use_bias=True)
    return keras.layers.Add(name=f"{name}_add")([projected, residual])


BLOCKS = {"basic": basic_block, "bottleneck": bottleneck_block}


def block_strides(stage, index, blocks, stages, variant):
    """Where each stage downsamples (see the module docstring for v2)."""
    if variant == "v2":
        return 2 if stage < stages - 1 and index == blocks - 1 else 1
    return 2 if stage > 0 and index == 0 else 1


def stem(x, width, kind, variant, pyramid, norm="batch"):
    """The ImageNet stem (7x7/2 conv, 3x3/2 max-pool) or a small-image stem.

    In v2 the stem is a bare convolution with bias: the first block's
    pre-activation normalizes it. The convolution's output is recorded in
    ``pyramid`` (``C1`` for the ImageNet stem, ``C0`` for the small one).
    """
    kernel_size, strides = (3, 1) if kind == "small" else (7, 2)
    if variant == "v2":
        x = conv(x, width, kernel_size, strides, "stem", use_bias=True)
    else:
        x = conv_bn(x, width, kernel_size, strides, "stem", variant=variant, norm=norm)
    x = pyramid.record(x, strides=strides)
    if kind == "small":
        return x
    x = keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    return pyramid.record(x, strides=2)  # replaced by the first block's output


def residual_stages(x, stage_widths, blocks_per_stage, block, pyramid, variant="v1.5",
                    groups=1, width_per_group=64, norm="batch"):
    """The stages of residual blocks, each block's output recorded in ``pyramid``."""
    stages = len(stage_widths)
    for stage, (width, blocks) in enumerate(zip(stage_widths, blocks_per_stage, strict=True)):
        for index in range(blocks):
            strides = block_strides(stage, index, blocks, stages, variant)
            x = block(x, width, strides, f"stage{stage + 1}_block{index + 1}", variant,
                      groups, width_per_group, norm)
            pyramid.record(x, strides=strides)
    return x


def _check_choices(depth, variant, stem_type, block_type, norm="batch"):
    if depth not in BLOCKS_PER_STAGE:
        raise common.KCCError(f"depth must be one of {sorted(BLOCKS_PER_STAGE)}, got {depth!r}")
    if variant not in EPSILON:
        raise common.KCCError(f"variant must be one of {sorted(EPSILON)}, got {variant!r}")
    if stem_type not in ("imagenet", "small"):
        raise common.KCCError(f"stem_type must be 'imagenet' or 'small', got {stem_type!r}")
    if norm not in NORMS:
        raise common.KCCError(f"norm must be one of {NORMS}, got {norm!r}")
    if variant == "v2" and block_type != "bottleneck":
        raise common.KCCError(f"variant 'v2' needs bottleneck blocks, got {block_type!r}")


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
    groups=1,
    width_per_group=64,
    norm="batch",
):
    """Builds a ResNet (or, with ``groups > 1``, a ResNeXt).

    Args:
        depth: 18, 34, 50, 101 or 152; picks ``blocks_per_stage`` and ``block_type``.
        include_top, weights, input_tensor, input_shape, pooling, classes,
            classifier_activation, name: the keras.applications contract.
            ``weights="imagenet"`` works for depths 50/101/152 in variants
            ``"v1"`` and ``"v2"`` (transplanted from keras.applications).
        stage_widths: base width of each stage (bottlenecks expand it x4).
        blocks_per_stage: overrides the depth's block counts.
        block_type: ``"basic"`` or ``"bottleneck"``; overrides the depth's.
        variant: ``"v1.5"`` (torchvision), ``"v1"`` or ``"v2"``
            (keras.applications); see the module docstring.
        stem_type: ``"imagenet"`` or ``"small"``.
        groups: groups of the bottleneck's 3x3 convolution (ResNeXt cardinality).
        width_per_group: channels per group at stage width 64 (ResNeXt's ``d``).
        norm: ``"batch"`` (BatchNorm) or ``"frozen"`` (``FrozenBatchNormalization``:
            fixed scale, shift and statistics, as torchvision's detection backbones).

    Returns:
        A ``keras.Model``; ``model.pyramid_outputs`` holds its feature levels.

    Example:
        >>> model = ResNet(18, input_shape=(32, 32, 3), classes=10,
        ...                stem_type="small", stage_widths=(8, 16, 16, 32))
    """
    block_type = block_type or BLOCK_TYPE.get(depth)
    _check_choices(depth, variant, stem_type, block_type, norm)
    blocks_per_stage = blocks_per_stage or BLOCKS_PER_STAGE[depth]
    if len(blocks_per_stage) != len(stage_widths):
        raise common.KCCError(
            f"blocks_per_stage {tuple(blocks_per_stage)} and stage_widths "
            f"{tuple(stage_widths)} must have the same length")
    block = preact_bottleneck_block if variant == "v2" else BLOCKS[block_type]

    image = common.image_input(input_tensor, input_shape)
    pyramid = common.FeaturePyramid()
    x = stem(image, stage_widths[0], stem_type, variant, pyramid, norm)
    x = residual_stages(x, stage_widths, blocks_per_stage, block, pyramid, variant, groups,
                        width_per_group, norm)
    if variant == "v2":
        x = batch_norm(x, "post_bn", EPSILON["v2"], norm)
        x = pyramid.record(keras.layers.ReLU(name="post_relu")(x))
    x = common.classifier_head(x, include_top, pooling, classes, classifier_activation)
    model = keras.Model(common.model_inputs(image, input_tensor), x, name=name or f"resnet{depth}")
    application = KERAS_APPLICATION.get((depth, variant)) if groups == 1 else None
    loader = application and transplant.imagenet_loader(application, keras_layer_name)
    return common.load_weights(pyramid.attach(model), weights, loader)


_KERAS_BLOCK_LAYER = re.compile(r"conv(\d+)_block(\d+)_(\d)_(conv|bn)")


def keras_layer_name(name):
    """Maps a keras.applications ResNet/ResNetV2 layer name to ours.

    ``conv1_*`` -> ``stem_*``; ``conv{s}_block{b}_0_*`` (the shortcut) ->
    ``stage{s-1}_block{b}_proj_*``; ``conv{s}_block{b}_{k}_*`` ->
    ``stage{s-1}_block{b}_{k}_*``; ``..._preact_bn``, ``post_bn`` and
    ``predictions`` keep their meaning.
    """
    if name.startswith("conv1_"):
        return "stem_" + name[len("conv1_"):]
    match = _KERAS_BLOCK_LAYER.fullmatch(name)
    if match:
        stage, block, index, kind = match.groups()
        part = "proj" if index == "0" else index
        return f"stage{int(stage) - 1}_block{block}_{part}_{kind}"
    preact = re.fullmatch(r"conv(\d+)_block(\d+)_preact_bn", name)
    if preact:
        return f"stage{int(preact.group(1)) - 1}_block{preact.group(2)}_preact_bn"
    return name


def ResNet18(**kwargs):
    return ResNet(18, **kwargs)


def ResNet34(**kwargs):
    return ResNet(34, **kwargs)


def ResNet50(**kwargs):
    return ResNet(50, **kwargs)


def ResNet101(**kwargs):
    return ResNet(101, **kwargs)


def ResNet152(**kwargs):
    return ResNet(152, **kwargs)


def ResNet50V1(**kwargs):
    return ResNet(50, variant="v1", **kwargs)


def ResNet101V1(**kwargs):
    return ResNet(101, variant="v1", **kwargs)


def ResNet152V1(**kwargs):
    return ResNet(152, variant="v1", **kwargs)


def ResNet50V2(**kwargs):
    return ResNet(50, variant="v2", **kwargs)


def ResNet101V2(**kwargs):
    return ResNet(101, variant="v2", **kwargs)


def ResNet152V2(**kwargs):
    return ResNet(152, variant="v2", **kwargs)


TINY = dict(input_shape=(32, 32, 3), classes=10, stage_widths=(8, 16, 16, 32),
            stem_type="small")
# Bottlenecks: two blocks in stage 1 so that both shortcut kinds are exercised.
TINY_BOTTLENECK = dict(input_shape=(32, 32, 3), classes=10, stage_widths=(4, 4, 8, 8),
                       blocks_per_stage=(2, 1, 1, 1), stem_type="small")
TORCHVISION_TOP1 = "torchvision IMAGENET1K_V1 weights, documented acc@1"
KERAS_TOP1 = "keras.applications documentation table (top-1)"
KERAS_WEIGHTS = ("imagenet",)  # transplanted from keras.applications (v1 and v2)

VARIANTS = (
    dict(name="resnet18", builder=ResNet18, reference_params=11_689_512,
         params_source="torchvision resnet18", imagenet_top1=69.758,
         top1_source=TORCHVISION_TOP1, tiny_config=TINY, description="ResNet-18, basic blocks"),
    dict(name="resnet34", builder=ResNet34, reference_params=21_797_672,
         params_source="torchvision resnet34", imagenet_top1=73.314,
         top1_source=TORCHVISION_TOP1, tiny_config=TINY, description="ResNet-34, basic blocks"),
    dict(name="resnet50", builder=ResNet50, reference_params=25_557_032,
         params_source="torchvision resnet50", imagenet_top1=76.130,
         top1_source=TORCHVISION_TOP1,
         description="ResNet-50 v1.5 (torchvision: stride in the 3x3)"),
    dict(name="resnet101", builder=ResNet101, reference_params=44_549_160,
         params_source="torchvision resnet101", imagenet_top1=77.374,
         top1_source=TORCHVISION_TOP1,
         description="ResNet-101 v1.5 (torchvision: stride in the 3x3)"),
    dict(name="resnet152", builder=ResNet152, reference_params=60_192_808,
         params_source="torchvision resnet152", imagenet_top1=78.312,
         top1_source=TORCHVISION_TOP1,
         description="ResNet-152 v1.5 (torchvision: stride in the 3x3)"),
    dict(name="resnet50_v1", builder=ResNet50V1, reference_params=25_583_592,
         params_source="keras.applications ResNet50", imagenet_top1=74.9,
         top1_source=KERAS_TOP1, pretrained=KERAS_WEIGHTS,
         description="ResNet-50 v1 (keras.applications: stride in the first 1x1, conv bias)"),
    dict(name="resnet101_v1", builder=ResNet101V1, reference_params=44_601_832,
         params_source="keras.applications ResNet101", imagenet_top1=76.4,
         top1_source=KERAS_TOP1, pretrained=KERAS_WEIGHTS,
         description="ResNet-101 v1 (keras.applications: stride in the first 1x1, conv bias)"),
    dict(name="resnet152_v1", builder=ResNet152V1, reference_params=60_268_520,
         params_source="keras.applications ResNet152", imagenet_top1=76.6,
         top1_source=KERAS_TOP1, pretrained=KERAS_WEIGHTS,
         description="ResNet-152 v1 (keras.applications: stride in the first 1x1, conv bias)"),
    dict(name="resnet50_v2", builder=ResNet50V2, reference_params=25_568_360,
         params_source="keras.applications ResNet50V2", imagenet_top1=76.0,
         top1_source=KERAS_TOP1, pretrained=KERAS_WEIGHTS, paper=PAPER_V2,
         description="ResNet-50 v2, pre-activation (keras.applications)"),
    dict(name="resnet101_v2", builder=ResNet101V2, reference_params=44_577_896,
         params_source="keras.applications ResNet101V2", imagenet_top1=77.2,
         top1_source=KERAS_TOP1, pretrained=KERAS_WEIGHTS, paper=PAPER_V2,
         description="ResNet-101 v2, pre-activation (keras.applications)"),
    dict(name="resnet152_v2", builder=ResNet152V2, reference_params=60_236_904,
         params_source="keras.applications ResNet152V2", imagenet_top1=78.0,
         top1_source=KERAS_TOP1, pretrained=KERAS_WEIGHTS, paper=PAPER_V2,
         description="ResNet-152 v2, pre-activation (keras.applications)"),
)

# Shared fields; a record's own (tiny_config, paper, pretrained) win.
register_family("resnet", VARIANTS, task="classification", paper=PAPER,
                tiny_config=TINY_BOTTLENECK, pretrained=(),
                feature_levels=common.CNN_FEATURE_LEVELS)
