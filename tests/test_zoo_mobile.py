"""MobileNet v1/v2/v3 and EfficientNet B0-B7: structure, scaling rule, weight transplant.

The transplant tests build each keras.applications model with random weights
(no download), randomize its BatchNorm statistics so that nothing hides
behind identity-like defaults, copy the weights into our model by layer name
and require equal logits.
"""

import inspect
import math
import re

import keras
import numpy as np
import pytest

from keras_cv_course import applications
from keras_cv_course.applications.classification import (
    efficientnet,
    mobilenet_blocks,
    mobilenet_v1,
    mobilenet_v2,
    mobilenet_v3,
    transplant,
)
from keras_cv_course.errors import KCCError

SIZE = 32  # the smallest input keras.applications accepts; every stride still fits
RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def seeded():
    keras.utils.set_random_seed(0)


def randomize_statistics(model):
    """Gives every BatchNorm and bias a non-trivial value, deterministically.

    Each BatchNorm shrinks its input a little (gamma <= 1, variance >= 1), so
    float32 round-off (about 1e-7 relative, from a different but equal order
    of operations) is not amplified through EfficientNet-B7's 55 blocks.
    """
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.get_weights()[0].shape
            layer.set_weights([
                RNG.uniform(0.5, 1.0, shape), RNG.normal(0, 0.1, shape),
                RNG.normal(0, 0.1, shape), RNG.uniform(1.0, 2.0, shape),
            ])
        elif isinstance(layer, keras.layers.Conv2D) and layer.use_bias:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, RNG.normal(0, 0.2, bias.shape)])


def imagenet_normalization(source):
    """Puts what keras' ImageNet files hold into keras' Normalization layer.

    With ``weights=None`` keras.applications' EfficientNet normalizes with mean 0
    and variance 1. Its ImageNet path computes ``(x / 255 - mean) / std``; with
    variance ``std**2`` the random-init model computes the same, so the test
    compares what users of the pretrained model get.
    """
    for layer in source.layers:
        if isinstance(layer, keras.layers.Normalization):
            count = layer.get_weights()[2]
            layer.set_weights([np.array(efficientnet.IMAGENET_MEAN),
                               np.square(efficientnet.IMAGENET_STD), count])
            layer.finalize_state()


def assert_transplant_exact(source, target, rename, pixels=False):
    """Same weights, same image: keras gets its input range, ours gets [0, 1].

    ``pixels``: keras' model takes [0, 255] (MobileNetV3, EfficientNet), else
    [-1, 1] (MobileNet v1/v2, which have no in-model preprocessing).
    """
    randomize_statistics(source)
    imagenet_normalization(source)
    transplant.transplant(source, target, rename)
    images = RNG.uniform(0, 1, (2, SIZE, SIZE, 3)).astype("float32")
    keras_images = images * 255.0 if pixels else images * 2.0 - 1.0
    expected = keras.ops.convert_to_numpy(source(keras_images, training=False))
    received = keras.ops.convert_to_numpy(target(images, training=False))
    assert expected.shape == received.shape
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(received, expected, rtol=0, atol=1e-5 * scale)


SHAPE = dict(input_shape=(SIZE, SIZE, 3), classifier_activation=None)


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_mobilenet_v1_transplant_exact(alpha):
    source = keras.applications.MobileNet(weights=None, alpha=alpha, **SHAPE)
    target = mobilenet_v1.MobileNetV1(alpha=alpha, **SHAPE)
    assert_transplant_exact(source, target, mobilenet_v1.keras_rename)


def test_mobilenet_v2_transplant_exact():
    source = keras.applications.MobileNetV2(weights=None, **SHAPE)
    target = mobilenet_v2.MobileNetV2(**SHAPE)
    assert_transplant_exact(source, target, mobilenet_v2.keras_rename)


@pytest.mark.parametrize("size", ["small", "large"])
def test_mobilenet_v3_transplant_exact(size):
    constructor = getattr(keras.applications, f"MobileNetV3{size.capitalize()}")
    source = constructor(weights=None, **SHAPE)
    target = mobilenet_v3.MobileNetV3(size, **SHAPE)
    assert_transplant_exact(source, target, mobilenet_v3.keras_rename, pixels=True)


def test_mobilenet_v3_minimalistic_transplant_exact():
    source = keras.applications.MobileNetV3Small(weights=None, minimalistic=True, **SHAPE)
    target = mobilenet_v3.MobileNetV3("small", minimalistic=True, **SHAPE)
    assert not any("_se_" in layer.name for layer in target.layers)
    assert_transplant_exact(source, target, mobilenet_v3.keras_rename, pixels=True)


def test_mobilenet_v3_feature_extractor_transplant_exact():
    source = keras.applications.MobileNetV3Small(weights=None, include_top=False,
                                                 pooling="avg", input_shape=(SIZE, SIZE, 3))
    target = mobilenet_v3.MobileNetV3("small", include_top=False, pooling="avg",
                                      input_shape=(SIZE, SIZE, 3))
    assert_transplant_exact(source, target, mobilenet_v3.keras_rename, pixels=True)


# All eight transplant exactly (checked by hand: b0-b7 pass), but b4-b6 add ~60 s
# of model building on a 2-core machine; b0, b3 and b7 cover the smallest, a
# middle and the largest coefficients. The other variants run the same code with
# other coefficients, which the next test checks against keras.applications.
@pytest.mark.parametrize("key", ["b0", "b3", "b7"])
def test_efficientnet_transplant_exact(key):
    """Exact transplant also proves equal widths and depths; dropout is compared too."""
    source = getattr(keras.applications, f"EfficientNet{key.upper()}")(weights=None, **SHAPE)
    target = efficientnet.efficientnet_variant(key, **SHAPE)
    assert_transplant_exact(source, target, efficientnet.keras_rename, pixels=True)
    assert target.get_layer("top_dropout").rate == source.get_layer("top_dropout").rate


@pytest.mark.parametrize("key", sorted(efficientnet.COEFFICIENTS))
def test_efficientnet_published_coefficients_match_keras(key):
    """(width, depth, resolution, dropout) equal the arguments keras.applications passes."""
    constructor = getattr(keras.applications, f"EfficientNet{key.upper()}")
    source = inspect.getsource(inspect.unwrap(constructor))
    number = r"\s*([0-9.]+),"
    match = re.search(r"return EfficientNet\(" + number * 4, source)
    assert match is not None, "keras.applications source changed shape"
    assert tuple(float(v) for v in match.groups()) == efficientnet.COEFFICIENTS[key]
    # The default input size comes from the table (a tiny width keeps this fast).
    size = efficientnet.COEFFICIENTS[key][2]
    ours = efficientnet.efficientnet_variant(key, width_coefficient=0.05, depth_coefficient=0.1)
    assert ours.input_shape == (None, size, size, 3)
    assert ours.get_layer("top_dropout").rate == efficientnet.COEFFICIENTS[key][3]


def test_efficientnet_b3_structure_matches_keras():
    """Same default input, top dropout, blocks and parameter count as keras' B3."""
    source = keras.applications.EfficientNetB3(weights=None)
    ours = applications.build_full("efficientnet_b3")
    assert ours.input_shape == source.input_shape == (None, 300, 300, 3)
    assert ours.get_layer("top_dropout").rate == source.get_layer("top_dropout").rate == 0.3
    ours_blocks = sorted(layer.name for layer in ours.layers if layer.name.endswith("_add"))
    keras_blocks = sorted(layer.name for layer in source.layers if layer.name.endswith("_add"))
    assert ours_blocks == keras_blocks
    keras_stats = sum(int(np.prod(w.shape)) for w in source.weights
                      if w.path.split("/")[-1] in ("moving_mean", "moving_variance",
                                                    "mean", "variance", "count"))
    assert applications.parameter_count(ours) == source.count_params() - keras_stats


def test_compound_scale_rule():
    assert efficientnet.compound_scale(0) == (1.0, 1.0, 224)
    for phi in (1, 2.5, 7):
        width, depth, resolution = efficientnet.compound_scale(phi)
        assert width == pytest.approx(1.1 ** phi)
        assert depth == pytest.approx(1.2 ** phi)
        assert resolution == round(224 * 1.15 ** phi)
    # alpha * beta^2 * gamma^2 ~ 2: FLOPs roughly double per unit of phi.
    assert 1.2 * 1.1 ** 2 * 1.15 ** 2 == pytest.approx(2, rel=0.05)


def test_published_variants_round_the_rule():
    """B4-B7 follow the rule's width and resolution only approximately; depth grows slower."""
    for phi in (4, 5, 6, 7):
        width, depth, resolution = efficientnet.compound_scale(phi)
        published_width, published_depth, published_size, _ = efficientnet.COEFFICIENTS[f"b{phi}"]
        assert published_width == pytest.approx(width, rel=0.06)
        assert published_size == pytest.approx(resolution, rel=0.04)
        assert published_depth < depth
        assert (published_width, published_size) != (width, resolution)
    assert efficientnet.COEFFICIENTS["b1"][:3] != efficientnet.compound_scale(1)


def test_efficientnet_from_phi_builds_custom_size():
    model = efficientnet.efficientnet_from_phi(0.5, include_top=False, pooling="avg")
    width, depth, resolution = efficientnet.compound_scale(0.5)
    assert model.input_shape == (None, resolution, resolution, 3)
    assert model.output_shape == (None, mobilenet_blocks.make_divisible(1280 * width))
    blocks = [layer.name for layer in model.layers if layer.name.endswith("_project_bn")]
    assert len(blocks) == sum(math.ceil(n * depth) for _, n, *_ in efficientnet.STAGES)


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small",
                                  "efficientnet_b0"])
def test_imagenet_weights_fail_clearly_offline(name, monkeypatch):
    """Offline, weights="imagenet" raises KCCError (simulated, so the test is the same
    with or without internet; the real offline call fails the same way in ~2 s)."""

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr("keras.src.utils.file_utils.get_file", offline)
    with pytest.raises(KCCError, match="ImageNet weights"):
        applications.build_full(name, weights="imagenet")


def test_tiny_models_run_and_are_small():
    for name in applications.list_models(pattern="mobilenet*") + ["efficientnet_b0"]:
        model = applications.build_tiny(name)
        assert applications.parameter_count(model) < 30_000, name
        out = model(np.zeros((1, 32, 32, 3), "float32"), training=False)
        assert out.shape == (1, 10)


def test_dropout_and_drop_connect_are_inference_identity():
    dropping = applications.build_tiny("efficientnet_b0", drop_connect_rate=0.5,
                                       dropout_rate=0.5)
    plain = applications.build_tiny("efficientnet_b0", drop_connect_rate=0.0, dropout_rate=0.0)
    assert any(layer.name.endswith("_drop") for layer in dropping.layers)
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in plain.layers)
    plain.set_weights(dropping.get_weights())
    images = RNG.uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(dropping(images, training=False)),
                               keras.ops.convert_to_numpy(plain(images, training=False)),
                               atol=1e-6)


def test_bad_arguments_raise_kccerror():
    with pytest.raises(KCCError, match="size"):
        mobilenet_v3.MobileNetV3("medium")
    with pytest.raises(KCCError, match="pooling"):
        mobilenet_v2.MobileNetV2(include_top=False, pooling="sum")
    with pytest.raises(KCCError, match="RGB"):
        efficientnet.EfficientNet(input_shape=(32, 32, 1))
    with pytest.raises(KCCError, match="alpha"):
        mobilenet_v1.MobileNetV1(alpha=0)
