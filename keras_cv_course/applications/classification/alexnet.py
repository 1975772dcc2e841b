"""AlexNet: the deep convolutional network that won ILSVRC 2012.

Paper: Alex Krizhevsky, Ilya Sutskever, Geoffrey E. Hinton. "ImageNet
Classification with Deep Convolutional Neural Networks". NeurIPS 2012.
(No arXiv version.)

Five convolutions (11x11/4, 5x5, then three 3x3), three 3x3/2 overlapping
max-pools, and three fully connected layers with dropout 0.5 and ReLU.

Choices (named, because this is not the paper's exact network):
* One tower, as in torchvision (61,100,840 parameters), not the paper's two
  GPU towers with grouped connections; torchvision's widths 64-192-384-256-256
  follow Krizhevsky's "One weird trick" (arXiv:1404.5997) rather than the
  paper's 96-256-384-384-256.
* No local response normalization (torchvision drops it too).
* torchvision's ``AdaptiveAvgPool2d((6, 6))`` is the identity at 224x224 and
  is left out: the classifier flattens the last map, so ``fc1``'s size
  depends on the input size.
* ``stem_type="small"`` (for 32x32 tests) replaces the 11x11/4 first
  convolution with a 3x3/1 one; an 11x11/4 stem leaves no map to pool on
  inputs below about 63 pixels.

| layer | kernel / stride | width (torchvision) | output at 224 |
|-------|-----------------|---------------------|---------------|
| conv1 | 11 / 4, pad 2   | 64                  | 55            |
| pool1 | 3 / 2           |                     | 27            |
| conv2 | 5 / 1, pad 2    | 192                 | 27            |
| pool2 | 3 / 2           |                     | 13            |
| conv3-5 | 3 / 1, pad 1  | 384, 256, 256       | 13            |
| pool5 | 3 / 2           |                     | 6             |
| fc1, fc2, predictions |  | 4096, 4096, classes |               |

Feature levels (``applications.backbone``): the last convolution or pool at
each stride, as strides change. With the ImageNet stem, ``C2`` is conv1 (64
channels, stride 4), ``C3`` conv2 (192), ``C4`` conv5 (256) and ``C5`` pool5
(256). The pools are "valid" (torchvision's), so a level's size is one less
than the input size over its stride (15 at ``C2`` for a 64x64 input).

No ImageNet weights: keras.applications has no AlexNet, so
``weights="imagenet"`` raises; torchvision's weights are not converted here.
"""

import keras

from keras_cv_course.applications.classification import common
from keras_cv_course.applications.registry import register_family

WIDTHS = (64, 192, 384, 256, 256)
CONVS = ((11, 4, 2), (5, 1, 2), (3, 1, 1), (3, 1, 1), (3, 1, 1))  # kernel, stride, padding
SMALL_STEM = (3, 1, 1)
POOL_AFTER = (1, 2, 5)
FC_UNITS = 4096
PAPER = (
    "Krizhevsky, Sutskever, Hinton. ImageNet Classification with Deep Convolutional "
    "Neural Networks. NeurIPS 2012"
)


def conv_relu(x, filters, kernel_size, strides, padding, name):
    """Zero padding on each side (torchvision's), convolution, ReLU."""
    x = keras.layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(filters, kernel_size, strides=strides, activation="relu",
                               name=name)(x)


def fc_head(x, fc_units, classes, classifier_activation, dropout_rate):
    """Dropout, fully connected, ReLU (twice), then the classifier (torchvision order)."""
    if None in tuple(x.shape[1:]):
        raise common.KCCError(
            f"include_top=True flattens the feature map, so the input needs a fixed "
            f"height and width; got a feature map of shape {tuple(x.shape[1:])}")
    x = keras.layers.Flatten(name="flatten")(x)  # (batch, H * W * C)
    x = keras.layers.Dropout(dropout_rate, name="fc1_dropout")(x)
    x = keras.layers.Dense(fc_units, activation="relu", name="fc1")(x)
    x = keras.layers.Dropout(dropout_rate, name="fc2_dropout")(x)
    x = keras.layers.Dense(fc_units, activation="relu", name="fc2")(x)
    return keras.layers.Dense(classes, activation=classifier_activation, name="predictions",
                           dtype=common.PREDICTION_DTYPE)(x)


def AlexNet(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="alexnet",
    widths=WIDTHS,
    fc_units=FC_UNITS,
    dropout_rate=0.5,
    stem_type="imagenet",
):
    """Builds the one-tower AlexNet of torchvision.

    Args:
        include_top, weights, input_tensor, input_shape, pooling, classes,
            classifier_activation, name: the keras.applications contract.
            With ``include_top`` the input size must be fixed (the head flattens).
        widths: widths of the five convolutions.
        fc_units: width of the two hidden fully connected layers.
        dropout_rate: dropout before each hidden fully connected layer.
        stem_type: ``"imagenet"`` (11x11/4) or ``"small"`` (3x3/1).

    Returns:
        A ``keras.Model``; ``model.pyramid_outputs`` holds its feature levels.

    Example:
        >>> model = AlexNet(input_shape=(32, 32, 3), classes=10, stem_type="small",
        ...                 widths=(4, 8, 8, 8, 8), fc_units=16)
    """
    if stem_type not in ("imagenet", "small"):
        raise common.KCCError(f"stem_type must be 'imagenet' or 'small', got {stem_type!r}")
    if len(widths) != 5:
        raise common.KCCError(f"widths must have 5 entries, got {widths!r}")
    image = common.image_input(input_tensor, input_shape,
                               min_size=63 if stem_type == "imagenet" else 15)
    x = image
    pyramid = common.FeaturePyramid()
    for index, (width, conv) in enumerate(zip(widths, CONVS, strict=True), 1):
        if index == 1 and stem_type == "small":
            conv = SMALL_STEM
        x = pyramid.record(conv_relu(x, width, *conv, name=f"conv{index}"), strides=conv[1])
        if index in POOL_AFTER:
            x = keras.layers.MaxPooling2D(3, strides=2, name=f"pool{index}")(x)
            pyramid.record(x, strides=2)
    if include_top:
        x = fc_head(x, fc_units, classes, classifier_activation, dropout_rate)
    else:
        x = common.classifier_head(x, False, pooling, classes, classifier_activation)
    model = keras.Model(common.model_inputs(image, input_tensor), x, name=name)
    return common.load_weights(pyramid.attach(model), weights)


TINY = dict(input_shape=(32, 32, 3), classes=10, stem_type="small", widths=(4, 8, 8, 8, 8),
            fc_units=16)

VARIANTS = (
    dict(name="alexnet", builder=AlexNet, reference_params=61_100_840,
         params_source="torchvision alexnet (one tower)", imagenet_top1=56.522,
         top1_source="torchvision IMAGENET1K_V1 weights, documented acc@1",
         description="AlexNet, one tower as in torchvision"),
)

register_family("alexnet", VARIANTS, task="classification", paper=PAPER, tiny_config=TINY,
                feature_levels=common.CNN_FEATURE_LEVELS)
