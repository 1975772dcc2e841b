"""RegNet's design-space generator and the Vision Transformer's pieces.

Parameter counts of the full models are checked by the shared registry test;
forward, fit, save/load and export by the shared harness. This file checks
what is specific to these two families.
"""

import keras
import numpy as np
import pytest

from keras_cv_course import applications
from keras_cv_course.applications.classification import regnet, vit
from keras_cv_course.errors import KCCError
from keras_cv_course.layers.vit_layers import GELU, ClassToken, PositionEmbedding

# (name, widths, depths): torchvision's stages, printed by torchvision's own
# BlockParams for these settings; they give its exact parameter counts.
KNOWN_STAGES = [
    ("regnet_x_400mf", [32, 64, 160, 400], [1, 2, 7, 12]),
    ("regnet_x_800mf", [64, 128, 288, 672], [1, 3, 7, 5]),
    ("regnet_y_400mf", [48, 104, 208, 440], [1, 3, 6, 6]),
    ("regnet_y_800mf", [64, 144, 320, 784], [1, 3, 8, 2]),
]


@pytest.mark.parametrize("name, widths, depths", KNOWN_STAGES)
def test_generator_reproduces_known_stages(name, widths, depths):
    params = {k: v for k, v in regnet.DESIGNS[name].items() if k != "se_ratio"}
    stages = regnet.regnet_widths(**params)
    assert stages["widths"] == widths
    assert stages["depths"] == depths
    assert sum(stages["depths"]) == params["depth"]
    assert all(w % params["group_width"] == 0 for w in stages["widths"])


def test_pycls_rounding_differs_where_a_half_group_is_rounded():
    # 392 channels are 24.5 groups of 16: pycls rounds to even (384),
    # torchvision rounds up (400).
    params = {k: v for k, v in regnet.DESIGNS["regnet_x_400mf"].items()}
    assert regnet.regnet_widths(**params, rounding="pycls")["widths"][-1] == 384
    assert regnet.regnet_widths(**params)["block_widths"][-1] == 392


def test_quantized_linear_rule_step_by_step():
    # u_j = 8 + 8j = 8, 16, 24, 32; s_j = round(log2(u_j / 8)) = 0, 1, 2, 2.
    stages = regnet.regnet_widths(depth=4, w0=8, wa=8, wm=2, group_width=8)
    assert stages["block_widths"] == [8, 16, 32, 32]
    assert stages["widths"] == [8, 16, 32] and stages["depths"] == [1, 1, 2]


@pytest.mark.parametrize("bad", [dict(w0=12), dict(wm=1.0), dict(wa=-1.0)])
def test_invalid_design_space_is_a_clear_error(bad):
    params = {**dict(depth=4, w0=8, wa=8, wm=2, group_width=8), **bad}
    with pytest.raises(KCCError):
        regnet.regnet_widths(**params)


def test_describe_prints_the_stages(capsys):
    stages = regnet.describe("regnet_x_400mf")
    assert "widths=[32, 64, 160, 400]" in capsys.readouterr().out
    assert stages["group_widths"] == [16, 16, 16, 16]
    with pytest.raises(KCCError, match="closest"):
        regnet.describe("regnet_x_401mf")


def test_regnet_y_has_squeeze_excitation_sized_from_the_block_input():
    x_model = applications.build_tiny("regnet_x_400mf")
    y_model = applications.build_tiny("regnet_y_400mf")
    assert not any("_se_" in layer.name for layer in x_model.layers)
    # stage2_block1 takes the 8-channel stage-1 output: round(0.25 * 8) = 2.
    reduce = y_model.get_layer("stage2_block1_se_reduce")
    assert reduce.filters == 2
    assert y_model.get_layer("stage2_block1_b_conv").groups == 16 // 8


def test_regnet_without_top_and_imagenet_weights_error():
    model = applications.build_tiny("regnet_y_400mf", include_top=False, pooling="avg")
    assert model.output_shape == (None, 32)
    with pytest.raises(KCCError, match="no ImageNet weights"):
        applications.build_tiny("regnet_x_400mf", weights="imagenet")


def test_vit_layers_round_trip_and_shapes():
    tokens = np.arange(2 * 3 * 4, dtype="float32").reshape(2, 3, 4)
    token = ClassToken(name="cls")
    out = keras.ops.convert_to_numpy(token(tokens))
    assert out.shape == (2, 4, 4)
    np.testing.assert_array_equal(out[:, 0], 0.0)  # zero-initialised token first
    np.testing.assert_array_equal(out[:, 1:], tokens)
    embed = PositionEmbedding()
    assert keras.ops.convert_to_numpy(embed(tokens)).shape == (2, 3, 4)
    assert embed.embedding.shape == (1, 3, 4)
    for layer in (token, embed, GELU()):
        clone = layer.__class__.from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()


def test_gelu_is_the_tanh_approximation():
    x = np.linspace(-4, 4, 17).astype("float32")
    expected = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(GELU()(x)), expected, atol=1e-6)


@pytest.mark.parametrize("pooling, shape", [
    (None, (None, 17, 16)), ("token", (None, 16)), ("avg", (None, 16)), ("max", (None, 16)),
])
def test_vit_poolings(pooling, shape):
    model = applications.build_tiny("vit_tiny_16", include_top=False, pooling=pooling)
    assert model.output_shape == shape


def test_vit_layer_names_and_layernorm_epsilon():
    model = applications.build_tiny("vit_base_16")
    assert model.get_layer("encoder2_attn").num_heads == 2
    assert model.get_layer("encoder_norm").epsilon == 1e-6
    assert model.get_layer("pos_embed").embedding.shape == (1, 1 + (32 // 8) ** 2, 16)


def test_vit_rejects_sizes_the_patches_do_not_tile():
    with pytest.raises(KCCError, match="multiples of patch_size"):
        vit.VisionTransformer(input_shape=(30, 30, 3), patch_size=8, hidden_size=16,
                              num_layers=1, num_heads=2, mlp_size=32)
    with pytest.raises(KCCError, match="divisible by num_heads"):
        vit.VisionTransformer(input_shape=(32, 32, 3), patch_size=8, hidden_size=15,
                              num_layers=1, num_heads=2, mlp_size=32)
