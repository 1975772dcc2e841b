"""Tests of the CNN zoo: AlexNet, VGG, GoogLeNet, ResNet v1/v1.5/v2, ResNeXt.

The shared harness (tests/test_models.py) checks every registered model's
tiny config, export and parameter count; this file checks what is particular
to these families: that keras.applications weights transplant exactly into
our VGG16/19, ResNet v1 and ResNet v2 at every depth, that
``weights="imagenet"`` fails with a clear error when it cannot download, the
GoogLeNet auxiliary heads, and the export-friendly grouped convolution.
"""

import os
import socket

import keras
import numpy as np
import pytest

from keras_cv_course import applications
from keras_cv_course.applications.classification import resnet, transplant
from keras_cv_course.errors import KCCError

FAMILIES = ("alexnet", "vgg", "googlenet", "resnet", "resnext")
NAMES = [n for n in applications.list_models(task="classification")
         if applications.get_info(n).family in FAMILIES]
SHAPE = (32, 32, 3)  # the smallest input keras.applications VGG and ResNet accept

# (keras.applications constructor, our registry name). ResNet-152 v1/v2 are left
# out for time (~16 s each on the CI machine): they differ from 101 only in blocks
# per stage, and 101 already has two-digit block names (conv4_block23).
TRANSPLANTS = [
    ("VGG16", "vgg16"),
    ("VGG19", "vgg19"),
    ("ResNet50", "resnet50_v1"),
    ("ResNet101", "resnet101_v1"),
    ("ResNet50V2", "resnet50_v2"),
    ("ResNet101V2", "resnet101_v2"),
]


def _images(shape=SHAPE, batch=2, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, *shape)).astype("float32")


def _randomize(model, seed=0):
    """Random weights everywhere, including BatchNorm statistics and biases.

    keras' initial BatchNorm (gamma 1, beta 0, mean 0, variance 1) and zero
    biases would hide a transplant that swapped or dropped them.
    """
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        value = keras.ops.convert_to_numpy(weight)
        leaf = weight.path.split("/")[-1]
        if leaf in ("gamma", "moving_variance"):
            value = rng.uniform(0.5, 1.5, value.shape)
        elif leaf in ("beta", "moving_mean", "bias"):
            value = rng.normal(0.0, 0.1, value.shape)
        weight.assign(value.astype("float32"))


@pytest.mark.parametrize("name", NAMES)
def test_tiny_config_builds_and_classifies(name):
    model = applications.build_tiny(name)
    info = applications.get_info(name)
    images = _images(info.tiny_config["input_shape"])
    probabilities = keras.ops.convert_to_numpy(model(images, training=False))
    assert probabilities.shape == (2, info.tiny_config["classes"])
    assert np.all(np.isfinite(probabilities))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("application,name", TRANSPLANTS)
def test_keras_applications_weights_transplant_exactly(application, name):
    # Logits (no softmax) so that a difference cannot hide in saturated probabilities.
    kwargs = dict(input_shape=SHAPE, classes=10, classifier_activation=None)
    source = getattr(keras.applications, application)(weights=None, **kwargs)
    _randomize(source)
    ours = applications.build(name, **kwargs)
    transplant.transplant(source, ours, _rename_for(name))
    images = _images()
    expected = keras.ops.convert_to_numpy(source(images, training=False))
    received = keras.ops.convert_to_numpy(ours(images, training=False))
    scale = max(1.0, float(np.abs(expected).max()))
    assert np.abs(expected - received).max() <= 1e-5 * scale


def _rename_for(name):
    return (lambda layer: layer) if name.startswith("vgg") else resnet.keras_layer_name


@pytest.mark.parametrize("name", ["vgg16", "resnet50_v1"])
def test_imagenet_weights_without_internet_raise_a_clear_error(name):
    cached = os.path.expanduser("~/.keras/models")
    if os.path.isdir(cached) and os.listdir(cached):
        pytest.skip("keras.applications weights are cached here; the download is not tried")
    socket.setdefaulttimeout(10.0)  # never hang on a network that drops packets
    try:
        with pytest.raises(KCCError, match="could not get ImageNet weights"):
            applications.build(name, weights="imagenet", include_top=False, input_shape=SHAPE)
    finally:
        socket.setdefaulttimeout(None)


@pytest.mark.parametrize("name", ["alexnet", "vgg11", "googlenet", "resnet50",
                                  "resnext50_32x4d"])
def test_imagenet_weights_of_torchvision_only_models_are_refused(name):
    with pytest.raises(KCCError, match="no ImageNet weights"):
        applications.build_tiny(name, weights="imagenet")


def test_googlenet_auxiliary_heads():
    model = applications.build_tiny("googlenet", aux_logits=True)
    outputs = model(_images(), training=False)
    assert sorted(outputs) == ["aux1", "aux2", "predictions"]
    for value in outputs.values():
        assert tuple(value.shape) == (2, 10)
    with pytest.raises(KCCError, match="aux_logits"):
        applications.build_tiny("googlenet", aux_logits=True, include_top=False)


def test_googlenet_auxiliary_heads_add_torchvision_count():
    # torchvision's googlenet(aux_logits=True) has 13,004,888 parameters.
    model = applications.build("googlenet", aux_logits=True)
    assert applications.parameter_count(model) == 13_004_888


def test_resnet_variant_structure():
    # v1 strides in the first 1x1, v1.5 in the 3x3; v2 downsamples in a stage's last block.
    v1 = applications.build_tiny("resnet50_v1")
    v15 = applications.build_tiny("resnet50")
    v2 = applications.build_tiny("resnet50_v2")
    assert v1.get_layer("stage2_block1_1_conv").strides == (2, 2)
    assert v15.get_layer("stage2_block1_2_conv").strides == (2, 2)
    assert v1.get_layer("stage2_block1_1_conv").use_bias
    assert not v15.get_layer("stage2_block1_1_conv").use_bias
    assert v2.get_layer("stage1_block2_2_conv").strides == (2, 2)
    assert v2.get_layer("stage1_block2_proj_pool").strides == (2, 2)
    with pytest.raises(KCCError, match="variant"):
        applications.build_tiny("resnet50", variant="v3")
