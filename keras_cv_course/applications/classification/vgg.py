"""VGG: very deep networks of 3x3 convolutions.

Paper: Karen Simonyan, Andrew Zisserman. "Very Deep Convolutional Networks
for Large-Scale Image Recognition". ICLR 2015. arXiv:1409.1556.

Five blocks of 3x3 convolutions (stride 1, "same" padding, ReLU), each
followed by a 2x2/2 max-pool, then three fully connected layers (4096, 4096,
classes) with dropout 0.5 before the second and third. Two stacked 3x3
convolutions see a 5x5 window, three see 7x7, with fewer parameters and more
non-linearities than one large kernel.

Choices (named): the network is torchvision's and keras.applications'. The
``_bn`` variants (torchvision; not in the paper, which predates BatchNorm)
put BatchNorm (epsilon 1e-5) between each convolution and its ReLU, and keep
the convolution bias. torchvision's ``AdaptiveAvgPool2d((7, 7))`` is the
identity at 224x224 and is left out: the classifier flattens the last map,
so ``fc1`` depends on the input size (as in keras.applications). Dropout
has no weights, so keras.applications' VGG16/VGG19 weights (which it
trained without listing dropout) transplant by name unchanged.

| config | convs per block  | params (torchvision) | with BN     |
|--------|------------------|----------------------|-------------|
| 11 (A) | 1, 1, 2, 2, 2    | 132,863,336          | 132,868,840 |
| 13 (B) | 2, 2, 2, 2, 2    | 133,047,848          | 133,053,736 |
| 16 (D) | 2, 2, 3, 3, 3    | 138,357,544          | 138,365,992 |
| 19 (E) | 2, 2, 4, 4, 4    | 143,667,240          | 143,678,248 |

``weights="imagenet"`` works for VGG16 and VGG19 without BN, transplanted
from keras.applications; the other variants have torchvision weights only,
which are not converted here. Layer names are keras.applications'
(``block1_conv1``, ``fc1``, ``predictions``).

Feature levels (``applications.backbone``): block ``k``'s max-pool output,
at stride ``2**k``, is level ``C<k>``; for VGG-16 ``C1``-``C5`` have 64, 128,
256, 512 and 512 channels. ``C3``-``C5`` are the pool3, pool4 and pool5 that
FCN (Long et al., arXiv:1411.4038) scores.
"""

import numbers

import keras

from keras_cv_course.applications.classification import common, transplant
from keras_cv_course.applications.registry import register_family

CONVS_PER_BLOCK = {
    11: (1, 1, 2, 2, 2),
    13: (2, 2, 2, 2, 2),
    16: (2, 2, 3, 3, 3),
    19: (2, 2, 4, 4, 4),
}
BLOCK_WIDTHS = (64, 128, 256, 512, 512)
FC_UNITS = 4096
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9
KERAS_APPLICATION = {16: "VGG16", 19: "VGG19"}
PAPER = (
    "Simonyan, Zisserman. Very Deep Convolutional Networks for Large-Scale Image "
    "Recognition. ICLR 2015. arXiv:1409.1556"
)


def conv_block(x, widths, convs, block, batch_norm):
    """``convs`` 3x3 convolutions (with BN if asked), then a 2x2/2 max-pool."""
    for index in range(1, convs + 1):
        name = f"block{block}_conv{index}"
        if batch_norm:
            x = keras.layers.Conv2D(widths, 3, padding="same", name=name)(x)
            x = keras.layers.BatchNormalization(
                epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
            x = keras.layers.ReLU(name=f"{name}_relu")(x)
        else:
            x = keras.layers.Conv2D(widths, 3, padding="same", activation="relu", name=name)(x)
    return keras.layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)


def fc_head(x, fc_units, classes, classifier_activation, dropout_rate):
    """Flatten, two ReLU fully connected layers with dropout, the classifier."""
    if None in tuple(x.shape[1:]):
        raise common.KCCError(
            f"include_top=True flattens the feature map, so the input needs a fixed "
            f"height and width; got a feature map of shape {tuple(x.shape[1:])}")
    x = keras.layers.Flatten(name="flatten")(x)  # (batch, H * W * C)
    x = keras.layers.Dense(fc_units, activation="relu", name="fc1")(x)
    x = keras.layers.Dropout(dropout_rate, name="fc1_dropout")(x)
    x = keras.layers.Dense(fc_units, activation="relu", name="fc2")(x)
    x = keras.layers.Dropout(dropout_rate, name="fc2_dropout")(x)
    return keras.layers.Dense(classes, activation=classifier_activation, name="predictions",
                           dtype=common.PREDICTION_DTYPE)(x)


def VGG(
    depth=16,
    batch_norm=False,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    block_widths=BLOCK_WIDTHS,
    fc_units=FC_UNITS,
    dropout_rate=0.5,
    convs_per_block=None,
):
    """Builds a VGG network.

    Args:
        depth: 11, 13, 16 or 19 (configurations A, B, D, E of the paper).
        batch_norm: add BatchNorm after every convolution (torchvision ``_bn``).
        include_top, weights, input_tensor, input_shape, pooling, classes,
            classifier_activation, name: the keras.applications contract.
            With ``include_top`` the input size must be fixed (the head flattens).
        block_widths: the five blocks' widths; shrink them for tests.
        fc_units: width of the two hidden fully connected layers.
        dropout_rate: dropout after each hidden fully connected layer.
        convs_per_block: five convolution counts, one per block; overrides
            the depth's (``CONVS_PER_BLOCK``), e.g. ``(1, 1, 1, 1, 1)`` for tests.

    Returns:
        A ``keras.Model``; ``model.pyramid_outputs`` holds each block's
        pooled map as level ``C1``-``C5`` (see the module docstring).

    Example:
        >>> model = VGG(11, input_shape=(32, 32, 3), classes=10,
        ...             block_widths=(4, 8, 8, 16, 16), fc_units=16)
    """
    if depth not in CONVS_PER_BLOCK:
        raise common.KCCError(f"depth must be one of {sorted(CONVS_PER_BLOCK)}, got {depth!r}")
    if len(block_widths) != 5:
        raise common.KCCError(f"block_widths must have 5 entries, got {block_widths!r}")
    convs_per_block = _check_convs_per_block(convs_per_block) or CONVS_PER_BLOCK[depth]
    image = common.image_input(input_tensor, input_shape, min_size=32)
    x = image
    pyramid = common.FeaturePyramid()
    blocks = zip(block_widths, convs_per_block, strict=True)
    for block, (width, convs) in enumerate(blocks, 1):
        x = pyramid.record(conv_block(x, width, convs, block, batch_norm), strides=2)
    if include_top:
        x = fc_head(x, fc_units, classes, classifier_activation, dropout_rate)
    else:
        x = common.classifier_head(x, False, pooling, classes, classifier_activation)
    suffix = "_bn" if batch_norm else ""
    model = keras.Model(common.model_inputs(image, input_tensor), x,
                        name=name or f"vgg{depth}{suffix}")
    application = None if batch_norm else KERAS_APPLICATION.get(depth)
    loader = application and transplant.imagenet_loader(application, lambda n: n)
    return common.load_weights(pyramid.attach(model), weights, loader)


def _check_convs_per_block(convs_per_block):
    """``None``, or five positive convolution counts as a tuple."""
    if convs_per_block is None:
        return None
    counts = tuple(convs_per_block)
    if len(counts) != 5 or not all(isinstance(c, numbers.Integral) and c > 0 for c in counts):
        raise common.KCCError(
            f"convs_per_block must be 5 positive integers, got {convs_per_block!r}")
    return counts


def VGG11(**kwargs):
    return VGG(11, **kwargs)


def VGG11BN(**kwargs):
    return VGG(11, batch_norm=True, **kwargs)


def VGG13(**kwargs):
    return VGG(13, **kwargs)


def VGG13BN(**kwargs):
    return VGG(13, batch_norm=True, **kwargs)


def VGG16(**kwargs):
    return VGG(16, **kwargs)


def VGG16BN(**kwargs):
    return VGG(16, batch_norm=True, **kwargs)


def VGG19(**kwargs):
    return VGG(19, **kwargs)


def VGG19BN(**kwargs):
    return VGG(19, batch_norm=True, **kwargs)


TINY = dict(input_shape=(32, 32, 3), classes=10, block_widths=(4, 8, 8, 16, 16), fc_units=16)
TOP1_SOURCE = "torchvision IMAGENET1K_V1 weights, documented acc@1"
KERAS_WEIGHTS = ("imagenet",)  # keras.applications VGG16 and VGG19, without BatchNorm

# reference_params: torchvision's count; imagenet_top1: torchvision's acc@1.
VARIANTS = (
    dict(name="vgg11", builder=VGG11, reference_params=132_863_336,
         params_source="torchvision vgg11", imagenet_top1=69.020, description="VGG-11"),
    dict(name="vgg11_bn", builder=VGG11BN, reference_params=132_868_840,
         params_source="torchvision vgg11_bn", imagenet_top1=70.370,
         description="VGG-11 with BatchNorm"),
    dict(name="vgg13", builder=VGG13, reference_params=133_047_848,
         params_source="torchvision vgg13", imagenet_top1=69.928, description="VGG-13"),
    dict(name="vgg13_bn", builder=VGG13BN, reference_params=133_053_736,
         params_source="torchvision vgg13_bn", imagenet_top1=71.586,
         description="VGG-13 with BatchNorm"),
    dict(name="vgg16", builder=VGG16, reference_params=138_357_544,
         params_source="torchvision vgg16", imagenet_top1=71.592, pretrained=KERAS_WEIGHTS,
         description="VGG-16"),
    dict(name="vgg16_bn", builder=VGG16BN, reference_params=138_365_992,
         params_source="torchvision vgg16_bn", imagenet_top1=73.360,
         description="VGG-16 with BatchNorm"),
    dict(name="vgg19", builder=VGG19, reference_params=143_667_240,
         params_source="torchvision vgg19", imagenet_top1=72.376, pretrained=KERAS_WEIGHTS,
         description="VGG-19"),
    dict(name="vgg19_bn", builder=VGG19BN, reference_params=143_678_248,
         params_source="torchvision vgg19_bn", imagenet_top1=74.218,
         description="VGG-19 with BatchNorm"),
)

register_family("vgg", VARIANTS, task="classification", paper=PAPER, tiny_config=TINY,
                top1_source=TOP1_SOURCE, pretrained=(),
                feature_levels=common.CNN_FEATURE_LEVELS)
