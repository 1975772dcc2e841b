"""Building blocks of the mobile networks: MobileNet v1/v2/v3 and EfficientNet.

The families share four ideas, each a tensor-in/tensor-out function here:

* ``conv_bn``: a convolution (or depthwise convolution) without bias, then
  BatchNorm, then an optional activation.
* ``inverted_residual``: MobileNetV2's block (Sandler et al., CVPR 2018,
  arXiv:1801.04381): a 1x1 expansion, a depthwise convolution, an optional
  squeeze-and-excitation, a linear 1x1 projection, and a residual connection
  when the shape allows. MobileNetV3 and EfficientNet's MBConv are the same
  block with other activations and SE settings.
* ``squeeze_excite``: channel attention from "Squeeze-and-Excitation
  Networks" (Hu, Shen, Sun, CVPR 2018, arXiv:1709.01507).
* ``make_divisible``: channel rounding to a multiple of 8, as the TensorFlow
  reference implementations (and hence keras.applications) do it.

Padding: every convolution uses ``padding="same"``. keras.applications pads
strided depthwise convolutions explicitly (``correct_pad``) and convolves with
``"valid"``; for inputs of known size that is exactly TensorFlow's ``"same"``
(the extra row and column go at the bottom and right), so the pretrained
weights see the same pixels. torchvision pads symmetrically instead.

Input range: the package's images are float32 in [0, 1]. With
``include_preprocessing=True`` (the default) each model maps them in-graph to
the range its ImageNet weights were trained on ([-1, 1] for MobileNets,
ImageNet mean/std normalization for EfficientNet). keras.applications takes
[0, 255] pixels instead (or [-1, 1] for MobileNet v1/v2); the transplant
tests feed both models the same image in their own range.

Activations are strings, so they serialize and export without custom layers:
``"relu"``, ``"relu6"``, ``"swish"`` (x * sigmoid(x)), ``"hard_swish"``
(x * relu6(x + 3) / 6) and ``"hard_sigmoid"`` (relu6(x + 3) / 6). All lower
to TFLite built-ins and ONNX operators.
"""

import keras

from keras_cv_course.applications.classification import common
from keras_cv_course.errors import KCCError


def rescale_to_symmetric(x, include_preprocessing):
    """[0, 1] images -> [-1, 1], the range MobileNet's ImageNet weights expect.

    A weightless ``Rescaling`` named ``preprocessing``; skipped (identity)
    when ``include_preprocessing`` is False and inputs are already in [-1, 1].
    """
    if not include_preprocessing:
        return x
    return keras.layers.Rescaling(2.0, offset=-1.0, name="preprocessing")(x)


def make_divisible(value, divisor=8, min_value=None):
    """Rounds a channel count to the nearest multiple of ``divisor``.

    Never returns less than ``min_value`` (default ``divisor``) and never
    rounds down by more than 10%, as in the TensorFlow reference code.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return int(rounded)


def conv_bn(x, filters, kernel_size, strides, name, activation=None, depthwise=False,
            bn_epsilon=1e-3, bn_momentum=0.99, depth_multiplier=1):
    """Convolution without bias, BatchNorm, optional activation.

    Layers are named ``{name}_conv``, ``{name}_bn`` and ``{name}_act``.
    ``filters`` is ignored for a depthwise convolution, whose output has
    ``depth_multiplier`` times the input channels.
    """
    if depthwise:
        x = keras.layers.DepthwiseConv2D(
            kernel_size, strides=strides, padding="same", use_bias=False,
            depth_multiplier=depth_multiplier, name=f"{name}_conv",
        )(x)
    else:
        x = keras.layers.Conv2D(
            filters, kernel_size, strides=strides, padding="same", use_bias=False,
            name=f"{name}_conv",
        )(x)
    x = keras.layers.BatchNormalization(
        epsilon=bn_epsilon, momentum=bn_momentum, name=f"{name}_bn"
    )(x)
    if activation is not None:
        x = keras.layers.Activation(activation, name=f"{name}_act")(x)
    return x


def squeeze_excite(x, squeeze_channels, name, activation="relu", gate="hard_sigmoid"):
    """Squeeze-and-excitation: rescale each channel by a learned gate in (0, 1).

    Global average pooling "squeezes" each channel to one number; two 1x1
    convolutions (with bias) compute one gate per channel; the input is
    multiplied by the gates.
    """
    channels = x.shape[-1]
    se = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_squeeze")(x)
    se = keras.layers.Conv2D(
        squeeze_channels, 1, activation=activation, name=f"{name}_se_reduce"
    )(se)  # (batch, 1, 1, squeeze_channels)
    se = keras.layers.Conv2D(channels, 1, activation=gate, name=f"{name}_se_expand")(se)
    return keras.layers.Multiply(name=f"{name}_se_excite")([x, se])


def inverted_residual(x, filters, expanded_channels, kernel_size, strides, activation, name,
                      se_channels=0, se_activation="relu", se_gate="hard_sigmoid",
                      drop_rate=0.0, bn_epsilon=1e-3, bn_momentum=0.999):
    """The inverted residual (MBConv) block of MobileNetV2, V3 and EfficientNet.

    Args:
        x: input, ``(batch, height, width, in_channels)``.
        filters: output channels of the linear projection.
        expanded_channels: channels of the depthwise stage; equal to
            ``in_channels`` means no expansion convolution.
        kernel_size: depthwise kernel size.
        strides: depthwise stride.
        activation: activation after expansion and depthwise convolution.
        name: layer-name prefix, e.g. ``"block2a"``.
        se_channels: squeeze width of the SE module; 0 for none.
        se_activation, se_gate: SE activations.
        drop_rate: drop-connect (stochastic depth) rate of the residual branch;
            a ``Dropout`` with one mask value per sample, identity at inference.
        bn_epsilon, bn_momentum: BatchNorm settings.

    Returns:
        ``(batch, height / strides, width / strides, filters)``.
    """
    inputs = x
    bn = dict(bn_epsilon=bn_epsilon, bn_momentum=bn_momentum)
    if expanded_channels != x.shape[-1]:
        x = conv_bn(x, expanded_channels, 1, 1, f"{name}_expand", activation, **bn)
    x = conv_bn(x, None, kernel_size, strides, f"{name}_dw", activation, depthwise=True, **bn)
    if se_channels:
        x = squeeze_excite(x, se_channels, name, se_activation, se_gate)
    x = conv_bn(x, filters, 1, 1, f"{name}_project", None, **bn)  # linear bottleneck
    if strides != 1 or inputs.shape[-1] != filters:
        return x
    if drop_rate > 0:
        x = keras.layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(x)
    return keras.layers.Add(name=f"{name}_add")([inputs, x])


def conv_classifier(x, classes, classifier_activation, dropout_rate, hidden_channels=0,
                    hidden_activation=None):
    """The 1x1-convolution classifier of MobileNet v1 and v3.

    keras.applications (and the TF-slim checkpoints it ships) classify the
    pooled ``(batch, 1, 1, channels)`` map with 1x1 convolutions. On a 1x1 map
    that is exactly a fully connected layer; keeping the convolution keeps
    the weight shapes of the pretrained checkpoints.
    """
    if int(classes) < 1:
        raise KCCError(f"classes must be a positive integer, got {classes!r}")
    x = keras.layers.GlobalAveragePooling2D(keepdims=True, name="avg_pool")(x)
    if hidden_channels:
        x = keras.layers.Conv2D(hidden_channels, 1, name="head_conv")(x)
        x = keras.layers.Activation(hidden_activation, name="head_act")(x)
    if dropout_rate:
        x = keras.layers.Dropout(dropout_rate, name="top_dropout")(x)
    x = keras.layers.Conv2D(classes, 1, name="logits")(x)  # (batch, 1, 1, classes)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.layers.Activation(classifier_activation, name="predictions",
                                   dtype=common.PREDICTION_DTYPE)(x)


def check_pooling(pooling):
    """Validates ``pooling`` as ``common.classifier_head`` does."""
    if pooling not in common.POOLINGS:
        raise KCCError(f"pooling must be one of {common.POOLINGS}, got {pooling!r}")
