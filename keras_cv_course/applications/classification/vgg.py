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
"""

import keras

from keras_cv_course.applications.classification import common, transplant
from keras_cv_course.applications.registry import register

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
    return keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)


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

    Returns:
        A ``keras.Model``.

    Example:
        >>> model = VGG(11, input_shape=(32, 32, 3), classes=10,
        ...             block_widths=(4, 8, 8, 16, 16), fc_units=16)
    """
    if depth not in CONVS_PER_BLOCK:
        raise common.KCCError(f"depth must be one of {sorted(CONVS_PER_BLOCK)}, got {depth!r}")
    if len(block_widths) != 5:
        raise common.KCCError(f"block_widths must have 5 entries, got {block_widths!r}")
    image = common.image_input(input_tensor, input_shape, min_size=32)
    x = image
    blocks = zip(block_widths, CONVS_PER_BLOCK[depth], strict=True)
    for block, (width, convs) in enumerate(blocks, 1):
        x = conv_block(x, width, convs, block, batch_norm)
    if include_top:
        x = fc_head(x, fc_units, classes, classifier_activation, dropout_rate)
    else:
        x = common.classifier_head(x, False, pooling, classes, classifier_activation)
    suffix = "_bn" if batch_norm else ""
    model = keras.Model(common.model_inputs(image, input_tensor), x,
                        name=name or f"vgg{depth}{suffix}")
    application = None if batch_norm else KERAS_APPLICATION.get(depth)
    loader = application and transplant.imagenet_loader(application, lambda n: n)
    return common.load_weights(model, weights, loader)


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

_VARIANTS = (  # name, builder, torchvision params, torchvision acc@1
    ("vgg11", VGG11, 132_863_336, 69.020),
    ("vgg11_bn", VGG11BN, 132_868_840, 70.370),
    ("vgg13", VGG13, 133_047_848, 69.928),
    ("vgg13_bn", VGG13BN, 133_053_736, 71.586),
    ("vgg16", VGG16, 138_357_544, 71.592),
    ("vgg16_bn", VGG16BN, 138_365_992, 73.360),
    ("vgg19", VGG19, 143_667_240, 72.376),
    ("vgg19_bn", VGG19BN, 143_678_248, 74.218),
)

for _name, _builder, _params, _top1 in _VARIANTS:
    _depth = int(_name[3:5])
    _bn = _name.endswith("_bn")
    register(
        _name, _builder, task="classification", family="vgg", paper=PAPER,
        reference_params=_params, params_source=f"torchvision {_name}",
        tiny_config=TINY, imagenet_top1=_top1, top1_source=TOP1_SOURCE,
        pretrained=("imagenet",) if _depth in KERAS_APPLICATION and not _bn else (),
        description=f"VGG-{_depth}{' with BatchNorm' if _bn else ''}",
    )
