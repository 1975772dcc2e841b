"""GoogLeNet (Inception v1).

Paper: Christian Szegedy, Wei Liu, Yangqing Jia, Pierre Sermanet, Scott Reed,
Dragomir Anguelov, Dumitru Erhan, Vincent Vanhoucke, Andrew Rabinovich.
"Going Deeper with Convolutions". CVPR 2015. arXiv:1409.4842.

An Inception module runs four branches in parallel and concatenates them:
a 1x1 convolution; 1x1 reduce then 3x3; 1x1 reduce then a larger kernel;
3x3 max-pool then a 1x1 projection. The 1x1 reductions keep the cost low.
Two auxiliary classifiers (after 4a and 4d) add gradient signal to the
middle of the network during training; they are dropped at inference.

Choices (named; this is torchvision's GoogLeNet, and its count is the
reference: 6,624,904 parameters without the auxiliary heads, 13,004,888
with them):
* Every convolution is torchvision's ``BasicConv2d``: convolution without
  bias, BatchNorm (epsilon 1e-3), ReLU. The paper (2014) has no BatchNorm and
  uses local response normalization in the stem; neither is followed here.
* The paper's "5x5" branch is a 3x3 convolution in torchvision (a known
  quirk kept for its weights). ``branch3_kernel=5`` builds the paper's 5x5;
  its parameter count then has no published reference.
* Max-pools use torchvision's ``ceil_mode=True`` sizes: TensorFlow's
  "same" max-pool gives the same windows. The pool before stage 5 is 2x2/2,
  as in torchvision (the paper has 3x3/2).
* Auxiliary heads average-pool 5x5/3 (the paper's, 4x4 at 14x14; torchvision
  uses adaptive 4x4 average pooling, whose windows differ by one pixel), then
  a 1x1 convolution (128), fully connected 1024 with ReLU, dropout 0.7 and
  the classifier. With ``aux_logits=True`` the model returns a dict
  ``{"predictions", "aux1", "aux2"}``; train with e.g. loss weights
  ``{"predictions": 1.0, "aux1": 0.3, "aux2": 0.3}`` (the paper's 0.3).

| module | 1x1 | 3x3 reduce | 3x3 | "5x5" reduce | "5x5" | pool proj | out  |
|--------|-----|------------|-----|--------------|-------|-----------|------|
| 3a     | 64  | 96         | 128 | 16           | 32    | 32        | 256  |
| 3b     | 128 | 128        | 192 | 32           | 96    | 64        | 480  |
| 4a     | 192 | 96         | 208 | 16           | 48    | 64        | 512  |
| 4b     | 160 | 112        | 224 | 24           | 64    | 64        | 512  |
| 4c     | 128 | 128        | 256 | 24           | 64    | 64        | 512  |
| 4d     | 112 | 144        | 288 | 32           | 64    | 64        | 528  |
| 4e     | 256 | 160        | 320 | 32           | 128   | 128       | 832  |
| 5a     | 256 | 160        | 320 | 32           | 128   | 128       | 832  |
| 5b     | 384 | 192        | 384 | 48           | 128   | 128       | 1024 |

Feature levels (``applications.backbone``), the last tensor at each stride:
``C1`` conv1 (64 channels), ``C2`` conv3 (192), ``C3`` inception3b (480),
``C4`` inception4e (832) and ``C5`` inception5b (1024), the outputs of the
paper's Table 1 rows before each max-pool.

No ImageNet weights: keras.applications has no GoogLeNet, so
``weights="imagenet"`` raises; torchvision's weights are not converted here.
"""

import keras

from keras_cv_course.applications.classification import common
from keras_cv_course.applications.registry import register_family

BN_EPSILON = 1e-3
BN_MOMENTUM = 0.9
INCEPTION = {  # module: 1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool proj
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}
STAGES = (("3a", "3b"), ("4a", "4b", "4c", "4d", "4e"), ("5a", "5b"))
AUX_AFTER = {"4a": "aux1", "4d": "aux2"}
PAPER = (
    "Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke, Rabinovich. "
    "Going Deeper with Convolutions. CVPR 2015. arXiv:1409.4842"
)


def conv_bn(x, filters, kernel_size, name, strides=1):
    """torchvision's BasicConv2d: convolution (no bias), BatchNorm, ReLU."""
    padding = "same"
    if strides > 1:
        x = keras.layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
        padding = "valid"
    x = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding=padding,
                            use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                        name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def inception_module(x, widths, name, branch3_kernel=3):
    """Four parallel branches, concatenated on channels."""
    w1, w2_reduce, w2, w3_reduce, w3, w4 = widths
    branch1 = conv_bn(x, w1, 1, f"{name}_branch1")
    branch2 = conv_bn(x, w2_reduce, 1, f"{name}_branch2_reduce")
    branch2 = conv_bn(branch2, w2, 3, f"{name}_branch2")
    branch3 = conv_bn(x, w3_reduce, 1, f"{name}_branch3_reduce")
    branch3 = conv_bn(branch3, w3, branch3_kernel, f"{name}_branch3")
    branch4 = keras.layers.MaxPooling2D(3, strides=1, padding="same",
                                        name=f"{name}_branch4_pool")(x)
    branch4 = conv_bn(branch4, w4, 1, f"{name}_branch4")
    return keras.layers.Concatenate(name=f"{name}_concat")([branch1, branch2, branch3, branch4])


def aux_head(x, classes, classifier_activation, name, conv_width=128, fc_units=1024):
    """Auxiliary classifier: 5x5/3 average pool, 1x1 conv, FC, dropout 0.7, FC."""
    height, width = x.shape[1], x.shape[2]
    if height is None or width is None:
        raise common.KCCError("aux_logits=True needs a fixed input height and width")
    pool = 5 if min(height, width) >= 5 else (height, width)
    x = keras.layers.AveragePooling2D(pool, strides=3, name=f"{name}_pool")(x)  # 4x4 at 14x14
    x = conv_bn(x, conv_width, 1, f"{name}_proj")
    x = keras.layers.Flatten(name=f"{name}_flatten")(x)
    x = keras.layers.Dense(fc_units, activation="relu", name=f"{name}_fc1")(x)
    x = keras.layers.Dropout(0.7, name=f"{name}_dropout")(x)
    return keras.layers.Dense(classes, activation=classifier_activation,
                              name=f"{name}_predictions", dtype=common.PREDICTION_DTYPE)(x)


def stem(x, scale, pyramid):
    """7x7/2 conv, 3x3/2 max-pool, 1x1 conv, 3x3 conv, 3x3/2 max-pool.

    Records conv1 (stride 2) and conv3 (stride 4) in ``pyramid``; pool2
    (stride 8) is recorded too and replaced by inception3b later.
    """
    x = pyramid.record(conv_bn(x, scale(64), 7, "conv1", strides=2), strides=2)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    x = conv_bn(x, scale(64), 1, "conv2")
    x = pyramid.record(conv_bn(x, scale(192), 3, "conv3"), strides=2)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
    return pyramid.record(x, strides=2)


def GoogLeNet(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="googlenet",
    aux_logits=False,
    branch3_kernel=3,
    width_scale=1.0,
    dropout_rate=0.2,
):
    """Builds GoogLeNet (torchvision's Inception v1).

    Args:
        include_top, weights, input_tensor, input_shape, pooling, classes,
            classifier_activation, name: the keras.applications contract.
        aux_logits: add the two auxiliary classifiers (needs ``include_top``);
            the model then returns a dict of three outputs.
        branch3_kernel: kernel of the third branch: 3 (torchvision) or 5 (paper).
        width_scale: multiplies every width (rounded, at least 1); for tests.
        dropout_rate: dropout before the main classifier (torchvision's 0.2).

    Returns:
        A ``keras.Model``; ``model.pyramid_outputs`` holds its feature levels.

    Example:
        >>> model = GoogLeNet(input_shape=(32, 32, 3), classes=10, width_scale=1 / 16)
    """
    if branch3_kernel not in (3, 5):
        raise common.KCCError(f"branch3_kernel must be 3 or 5, got {branch3_kernel!r}")
    if aux_logits and not include_top:
        raise common.KCCError("aux_logits=True needs include_top=True")

    def scale(width):
        return max(1, round(width * width_scale))

    image = common.image_input(input_tensor, input_shape)
    pyramid = common.FeaturePyramid()
    x = stem(image, scale, pyramid)
    aux = {}
    for stage, modules in enumerate(STAGES):
        if stage > 0:
            pool = 3 if stage == 1 else 2
            x = keras.layers.MaxPooling2D(pool, strides=2, padding="same",
                                          name=f"pool{stage + 2}")(x)
            pyramid.record(x, strides=2)
        for module in modules:
            widths = tuple(scale(w) for w in INCEPTION[module])
            x = inception_module(x, widths, f"inception{module}", branch3_kernel)
            pyramid.record(x)
            if aux_logits and module in AUX_AFTER:
                aux[AUX_AFTER[module]] = aux_head(
                    x, classes, classifier_activation, AUX_AFTER[module],
                    scale(128), scale(1024))
    x = common.classifier_head(x, include_top, pooling, classes, classifier_activation,
                               dropout_rate=dropout_rate)
    outputs = {"predictions": x, **aux} if aux_logits else x
    model = keras.Model(common.model_inputs(image, input_tensor), outputs, name=name)
    return common.load_weights(pyramid.attach(model), weights)


TINY = dict(input_shape=(32, 32, 3), classes=10, width_scale=1 / 16)

VARIANTS = (
    dict(name="googlenet", builder=GoogLeNet, reference_params=6_624_904,
         params_source="torchvision googlenet (BN-conv, 3x3 '5x5' branch, no aux heads)",
         imagenet_top1=69.778, top1_source="torchvision IMAGENET1K_V1 weights, documented acc@1",
         description="GoogLeNet / Inception v1 as in torchvision"),
)

# Measured: LiteRT's default XNNPACK delegate fails to prepare the full-integer graph
# ("failed to create XNNPACK runtime"), so a phone's default interpreter would refuse it.
INT8_REFUSED = "XNNPACK, LiteRT's default CPU delegate, cannot prepare its full-integer graph"

register_family("googlenet", VARIANTS, task="classification", paper=PAPER, tiny_config=TINY,
                feature_levels=common.CNN_FEATURE_LEVELS,
                unsupported_quantize={"int8": INT8_REFUSED, "int8-io": INT8_REFUSED})
