"""The MAC counter: hand-computed rules, and published GMACs within 2%."""

import keras
import pytest

from keras_cv_course import applications
from keras_cv_course.applications import flops
from keras_cv_course.errors import KCCError


def _macs(inputs, outputs):
    return flops(keras.Model(inputs, outputs)).macs


def test_conv_rules_match_hand_counts():
    x = keras.Input((8, 8, 4))
    # 8x8 outputs x (3*3*4) inputs each x 6 filters.
    assert _macs(x, keras.layers.Conv2D(6, 3, padding="same")(x)) == 8 * 8 * 3 * 3 * 4 * 6
    # Two groups: each filter sees 4 / 2 input channels.
    assert _macs(x, keras.layers.Conv2D(6, 3, padding="same", groups=2)(x)) == (
        8 * 8 * 3 * 3 * 2 * 6
    )
    # Stride 2 halves each side of the output.
    assert _macs(x, keras.layers.Conv2D(6, 1, strides=2)(x)) == 4 * 4 * 4 * 6
    assert _macs(x, keras.layers.DepthwiseConv2D(3, padding="same")(x)) == 8 * 8 * 3 * 3 * 4
    assert _macs(x, keras.layers.SeparableConv2D(6, 3, padding="same")(x)) == (
        8 * 8 * (3 * 3 * 4 + 4 * 6)
    )
    # Transposed: every input pixel scatters a 2x2x4->6 kernel.
    assert _macs(x, keras.layers.Conv2DTranspose(6, 2, strides=2)(x)) == 8 * 8 * 2 * 2 * 4 * 6


def test_dense_einsum_attention_and_matmul_rules():
    tokens = keras.Input((5, 8))
    assert _macs(tokens, keras.layers.Dense(3)(tokens)) == 5 * 8 * 3
    einsum = keras.layers.EinsumDense("abc,cde->abde", output_shape=(5, 2, 4))
    assert _macs(tokens, einsum(tokens)) == 5 * 8 * 2 * 4
    per_head = keras.layers.EinsumDense("...c,cd->...d", output_shape=(3,))
    assert _macs(tokens, per_head(tokens)) == 5 * 8 * 3
    attention = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    projections = 4 * 5 * 8 * (2 * 4)  # q, k, v and output projections
    products = 2 * (2 * 5 * 5 * 4)  # Q K^T and A V, two heads
    assert _macs(tokens, attention(tokens, tokens)) == projections + products
    other = keras.Input((8, 7))
    assert flops(keras.Model([tokens, other], keras.ops.matmul(tokens, other))).macs == (
        5 * 7 * 8
    )
    product = keras.ops.einsum("btc,bcd->btd", tokens, other)
    assert flops(keras.Model([tokens, other], product)).macs == 5 * 8 * 7


def test_nested_and_sequential_models_are_counted():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    x = keras.Input((4,))
    outer = keras.Model(x, keras.layers.Dense(5)(inner(x)))
    report = flops(outer)
    assert report.macs == 4 * 3 + 3 * 2 + 2 * 5
    assert report.flops == 2 * report.macs
    assert any(path.startswith(f"{inner.name}/") for path in report.per_layer)


def test_undefined_input_shape_is_a_clear_error():
    x = keras.Input((None, None, 3))
    with pytest.raises(KCCError, match="fully defined input shape"):
        flops(keras.Model(x, keras.layers.Conv2D(2, 3)(x)))


@pytest.mark.parametrize(
    "build, published",
    [
        # He et al. 2016, Table 1: ResNet-50 v1 (stride in the first 1x1) "3.8 x 10^9".
        (lambda: keras.applications.ResNet50(weights=None), 3.8),
        (lambda: keras.applications.MobileNetV2(weights=None), 0.30),  # paper: 300M
        (lambda: keras.applications.EfficientNetB0(weights=None), 0.39),  # paper: 0.39B
        (lambda: applications.build_full("vit_base_16"), 17.58),  # timm / torchvision
    ],
    ids=["keras_resnet50_v1", "keras_mobilenet_v2", "keras_efficientnet_b0", "vit_base_16"],
)
def test_published_gmacs_within_two_percent(build, published):
    report = flops(build())
    assert not report.uncounted
    assert report.gmacs == pytest.approx(published, rel=0.02)


def test_resnet50_v1_5_matches_torchvision_gmacs():
    # torchvision's ResNet-50 (v1.5: stride in the 3x3) is the 4.11 GMACs model.
    if "resnet50" not in applications.list_models():
        pytest.skip("resnet50 is not registered")
    model = applications.build_full("resnet50")
    assert flops(model).gmacs == pytest.approx(4.11, rel=0.02)
