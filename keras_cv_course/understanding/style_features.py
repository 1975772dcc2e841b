"""Perceptual features: the VGG-16 activations that style transfer compares.

Gatys, Ecker and Bethge ("Image Style Transfer Using Convolutional Neural
Networks", CVPR 2016) and Johnson, Alahi and Fei-Fei ("Perceptual Losses for
Real-Time Style Transfer and Super-Resolution", ECCV 2016, arXiv:1603.08155)
measure images by the activations of a fixed VGG network. Johnson et al. use
VGG-16's ``relu1_2``, ``relu2_2``, ``relu3_3`` and ``relu4_3`` (style at all
four, content at ``relu2_2``); in the registry's VGG-16 (keras.applications
names) these are the outputs of ``block1_conv2``, ``block2_conv2``,
``block3_conv3`` and ``block4_conv3``, whose ReLU is fused into the
convolution.

Weights (named): the papers use ImageNet weights, which cannot be downloaded
everywhere. ``weights="auto"`` (the default) takes them from the Keras
cache when they are there, and otherwise weights this project trains on its
embedded ``shapes`` images (``perceptual_weights``). ``weights`` also takes
``"imagenet"`` (keras.applications' VGG16, transplanted; may download),
``"project"``, a path to a ``.weights.h5`` file of the registry's VGG-16
built with ``include_top=False``, or ``None``: a randomly initialised
VGG-16, whose convolutional features still carry texture statistics
(Ulyanov, Vedaldi and Lempitsky, "Deep Image Prior", CVPR 2018; He, Wang
and Hopcroft, "A Powerful Generative Model Using Random Weights for the
Deep Image Representation", NeurIPS 2016). ``perceptual_extractor`` returns
a one-line statement of the weights for callers to print.

Images are floats in ``[0, 1]``; the model applies keras.applications' VGG
("caffe") preprocessing itself: scale to 0..255, RGB to BGR, subtract the
ImageNet channel means.
"""

import keras
from keras import ops

from keras_cv_course import applications
from keras_cv_course.errors import KCCError
from keras_cv_course.understanding import perceptual_weights

JOHNSON_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
CONTENT_LAYER = "relu2_2"  # Johnson et al.'s content layer
VGG16_RELU_LAYERS = {
    "relu1_1": "block1_conv1", "relu1_2": "block1_conv2",
    "relu2_1": "block2_conv1", "relu2_2": "block2_conv2",
    "relu3_1": "block3_conv1", "relu3_2": "block3_conv2", "relu3_3": "block3_conv3",
    "relu4_1": "block4_conv1", "relu4_2": "block4_conv2", "relu4_3": "block4_conv3",
    "relu5_1": "block5_conv1", "relu5_2": "block5_conv2", "relu5_3": "block5_conv3",
}
IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)  # keras.applications.vgg16.preprocess_input


def vgg_preprocess(images):
    """``[0, 1]`` RGB images -> VGG ("caffe") inputs: 0..255, BGR, mean subtracted."""
    bgr = ops.flip(images * 255.0, axis=-1)
    return bgr - ops.convert_to_tensor(IMAGENET_MEAN_BGR, dtype=bgr.dtype)


def perceptual_extractor(weights="auto", input_shape=(None, None, 3), layers=JOHNSON_LAYERS,
                         **vgg_options):
    """A frozen VGG-16 that maps ``[0, 1]`` images to ``{layer: activations}``.

    Args:
        weights: ``"auto"``, ``"project"``, ``"imagenet"``, ``None`` (random
            initialisation), or a path to a ``.weights.h5`` file of the
            registry's ``vgg16`` without its top (``perceptual_weights``).
        input_shape: ``(height, width, 3)``; ``None`` sizes take any image of
            at least 32 pixels.
        layers: names from ``VGG16_RELU_LAYERS``; Johnson et al.'s by default.
        **vgg_options: passed to the VGG builder, e.g. ``block_widths`` to
            shrink it for tests (then ``weights`` must match).

    Returns:
        ``(model, description)``: a ``keras.Model`` whose output is a dict
        ``{layer name: (batch, h, w, channels)}``, and the
        line (``perceptual_weights.describe``), for callers to print.

    Raises:
        KCCError: an unknown layer name.
    """
    unknown = [name for name in layers if name not in VGG16_RELU_LAYERS]
    if unknown or not layers:
        raise KCCError(f"layers must be some of {sorted(VGG16_RELU_LAYERS)}, got {layers!r}")
    weights = perceptual_weights.resolve(weights)
    description = perceptual_weights.describe(weights)  # fails on a missing file
    vgg = applications.build("vgg16", include_top=False, weights=weights,
                             input_shape=input_shape, **vgg_options)
    vgg.trainable = False
    images = keras.Input(shape=input_shape, name="images")
    probe = keras.Model(vgg.inputs, {name: vgg.get_layer(VGG16_RELU_LAYERS[name]).output
                                     for name in layers})
    model = keras.Model(images, probe(vgg_preprocess(images)), name="perceptual_vgg16")
    model.trainable = False
    return model, description
