"""Feature pyramids of the classifiers: ``applications.backbone`` and friends.

Each CNN family and ViT records the last tensor at each stride while it
builds (``C<k>`` at stride ``2**k``). These tests build every family's
full-size network once, at 64x64 (full widths; a small image keeps it fast),
and compare each level's channels with the literature: timm's
``feature_info``, torchvision's layers or the paper's table, cited per row.
The expected channels are written out here, never computed with the
package's own code.
"""

import keras
import numpy as np
import pytest

from keras_cv_course import applications
from keras_cv_course.applications.classification import vgg, vit
from keras_cv_course.errors import KCCError

SIZE = 64
SHAPE = (SIZE, SIZE, 3)

# name: {level: channels} at the full config, the levels ``backbone`` returns by
# default (stride 4 and coarser), finest first.
EXPECTED = {
    # torchvision alexnet ``features``: conv1 64 (stride 4), conv2 192, conv5 256, pool5 256.
    "alexnet": {"C2": 64, "C3": 192, "C4": 256, "C5": 256},
    # Simonyan & Zisserman 2015, Table 1, configuration D: blocks of 128, 256, 512, 512.
    "vgg16": {"C2": 128, "C3": 256, "C4": 512, "C5": 512},
    # Szegedy et al. 2015, Table 1: conv 3x3 192, inception (3b) 480, (4e) 832, (5b) 1024.
    "googlenet": {"C2": 192, "C3": 480, "C4": 832, "C5": 1024},
    # timm resnet18 feature_info: 64, 64, 128, 256, 512.
    "resnet18": {"C2": 64, "C3": 128, "C4": 256, "C5": 512},
    # timm resnet50 feature_info: 64, 256, 512, 1024, 2048.
    "resnet50": {"C2": 256, "C3": 512, "C4": 1024, "C5": 2048},
    # keras.applications ResNet50: conv2_block3_out 256 ... conv5_block3_out 2048.
    "resnet50_v1": {"C2": 256, "C3": 512, "C4": 1024, "C5": 2048},
    # keras.applications ResNet50V2: conv2 ... conv4 stage outputs 256, 512, 1024; post_relu 2048.
    "resnet50_v2": {"C2": 256, "C3": 512, "C4": 1024, "C5": 2048},
    # timm resnext50_32x4d feature_info: 64, 256, 512, 1024, 2048.
    "resnext50_32x4d": {"C2": 256, "C3": 512, "C4": 1024, "C5": 2048},
    # Howard et al. 2017, Table 1: 64 (112x112), 128 (56), 256 (28), 512 (14), 1024 (7).
    "mobilenet_v1": {"C2": 128, "C3": 256, "C4": 512, "C5": 1024},
    # timm mobilenetv2_100 feature_info: 16, 24, 32, 96, 320.
    "mobilenet_v2": {"C2": 24, "C3": 32, "C4": 96, "C5": 320},
    # timm mobilenetv3_small_100 feature_info: 16, 16, 24, 48, 576.
    "mobilenet_v3_small": {"C2": 16, "C3": 24, "C4": 48, "C5": 576},
    # timm mobilenetv3_large_100 feature_info: 16, 24, 40, 112, 960.
    "mobilenet_v3_large": {"C2": 24, "C3": 40, "C4": 112, "C5": 960},
    # timm efficientnet_b0 feature_info: 16, 24, 40, 112, 320.
    "efficientnet_b0": {"C2": 24, "C3": 40, "C4": 112, "C5": 320},
    # torchvision regnet_x_400mf stages: 32, 64, 160, 400 (its fc has 400 inputs; timm's
    # regnetx_004 rounds the last stage as pycls does, to 384).
    "regnet_x_400mf": {"C2": 32, "C3": 64, "C4": 160, "C5": 400},
    # timm regnety_004 feature_info: 32, 48, 104, 208, 440 (torchvision's fc: 440 inputs).
    "regnet_y_400mf": {"C2": 48, "C3": 104, "C4": 208, "C5": 440},
    # Dosovitskiy et al. 2021, Table 1: ViT-Base hidden size 768; one level at the patch stride.
    "vit_base_16": {"C4": 768},
    "vit_base_32": {"C5": 768},
}
# AlexNet's 11x11/4 convolution and 3x3/2 pools are "valid" (torchvision's), so its
# maps are one pixel smaller than 64 / stride: (64 + 4 - 11) // 4 + 1 = 15, then 7, 3, 1.
SPATIAL_SIZES = {"alexnet": {"C2": 15, "C3": 7, "C4": 3, "C5": 1}}
CNN_FAMILIES = ("alexnet", "vgg", "googlenet", "resnet", "resnext", "mobilenet_v1",
                "mobilenet_v2", "mobilenet_v3", "efficientnet", "regnet")
NOT_BACKBONES = ("linear_softmax", "linear_svm", "mlp", "knn")


def _stride(level):
    return 2 ** int(level[1:])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_full_config_levels_match_the_literature(name):
    extractor = applications.backbone(name, input_shape=SHAPE)
    expected = EXPECTED[name]
    info = {row["level"]: row for row in extractor.feature_info}
    # The default levels are exactly the registered fact: what the full config records.
    assert tuple(info) == tuple(expected) == applications.get_info(name).fact("feature_levels")
    for level, channels in expected.items():
        tensor = extractor.output[level]
        size = SPATIAL_SIZES.get(name, {}).get(level, SIZE // _stride(level))
        assert tuple(tensor.shape[1:]) == (size, size, channels), level
        assert info[level]["stride"] == _stride(level)
        assert info[level]["channels"] == channels
    keras.backend.clear_session()


def test_every_cnn_and_vit_registers_its_feature_levels():
    families = {applications.get_info(n).family for n in EXPECTED}
    assert families == {*CNN_FAMILIES, "vit"}
    for name in applications.list_models(task="classification"):
        info = applications.get_info(name)
        if info.family in CNN_FAMILIES:
            assert info.fact("feature_levels") == ("C2", "C3", "C4", "C5"), name
        elif info.family == "vit":
            patch = name.rsplit("_", 1)[1]  # vit_base_16: patches of 16 pixels
            assert info.fact("feature_levels") == ({"16": "C4", "32": "C5"}[patch],), name
        else:
            assert name in NOT_BACKBONES
    for name in NOT_BACKBONES:
        assert applications.get_info(name).fact("feature_levels") is None
        assert not applications.has_backbone(name)


def test_selected_levels_are_vgg_pools():
    extractor = applications.backbone("vgg16", levels=("C3", "C5"), input_shape=SHAPE)
    assert list(extractor.output) == ["C3", "C5"]
    assert [(row["level"], row["stride"], row["layer"]) for row in extractor.feature_info] == [
        ("C3", 8, "block3_pool"), ("C5", 32, "block5_pool")]
    assert tuple(extractor.output["C5"].shape) == (None, 2, 2, 512)


def test_finer_level_is_the_last_tensor_at_its_stride():
    # MobileNetV2's stem has 32 channels at stride 2; its first block (stride 1) ends at 16,
    # timm mobilenetv2_100's first feature_info entry.
    extractor = applications.backbone("mobilenet_v2", levels=("C1",), input_shape=SHAPE)
    assert tuple(extractor.output["C1"].shape) == (None, 32, 32, 16)


def test_unknown_level_is_a_one_line_error_naming_the_available_ones():
    with pytest.raises(KCCError) as error:
        applications.backbone("vgg16", levels=("C3", "C6"), **_tiny("vgg16"))
    message = str(error.value)
    assert "\n" not in message
    assert "C6" in message and "['C1', 'C2', 'C3', 'C4', 'C5']" in message


def test_models_without_levels_are_refused():
    with pytest.raises(KCCError, match="records no feature levels"):
        applications.backbone("mlp")


# name: {level: spatial size} of the tiny config at 32x32; these stems do not downsample,
# so the first stage sits at stride 1 (C0).
TINY_LEVELS = {
    # 3x3/1 stem (C0), then 3x3/2 "valid" pools: 15, 7, 3.
    "alexnet": {"C0": 32, "C1": 15, "C2": 7, "C3": 3},
    "resnet18": {"C0": 32, "C1": 16, "C2": 8, "C3": 4},
    "resnext50_32x4d": {"C0": 32, "C1": 16, "C2": 8, "C3": 4},
    # patch 8: one level at stride 8.
    "vit_base_16": {"C3": 4},
}


@pytest.mark.parametrize("name", sorted(TINY_LEVELS))
def test_tiny_configs_name_levels_by_their_real_stride(name):
    model = applications.build_tiny(name, include_top=False)
    sizes = {level: tensor.shape[1] for level, tensor in model.pyramid_outputs.items()}
    assert sizes == TINY_LEVELS[name]
    extractor = applications.backbone(name, **_tiny(name))
    assert list(extractor.output) == [level for level in TINY_LEVELS[name] if _stride(level) >= 4]


ONE_PER_FAMILY = ("alexnet", "vgg16", "googlenet", "resnet50_v2", "resnext50_32x4d",
                  "mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0",
                  "regnet_y_400mf", "vit_base_32")


@pytest.mark.parametrize("name", ONE_PER_FAMILY)
def test_backbone_features_build_on_an_input_tensor(name):
    config = _tiny(name)
    image = keras.Input(config.pop("input_shape"), name="image")
    features = applications.backbone_features(name, image, **config)
    assert features and all(_stride(level) >= 4 for level in features)
    model = keras.Model(image, features)
    outputs = model(np.zeros((2, *image.shape[1:]), "float32"), training=False)
    for level, tensor in features.items():
        assert tuple(outputs[level].shape) == (2, *tensor.shape[1:])


def test_vit_grid_is_the_normed_patch_tokens_in_place_and_off_the_classifier():
    config = dict(input_shape=(32, 32, 3), patch_size=8, hidden_size=16, num_layers=1,
                  num_heads=2, mlp_size=32)
    model = vit.VisionTransformer(include_top=False, pooling=None, **config)
    grid = model.pyramid_outputs["C3"]
    both = keras.Model(model.input, [model.output, grid])
    images = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
    tokens, grid_values = (keras.ops.convert_to_numpy(t) for t in both(images))
    np.testing.assert_array_equal(grid_values, tokens[:, 1:].reshape(2, 4, 4, 16))
    classifier = vit.VisionTransformer(classes=10, **config)
    names = {layer.name for layer in classifier.layers}
    assert not names & {"grid_patch_tokens", "grid"}
    assert "grid" in {layer.name for layer in both.layers}


def test_vgg_convs_per_block_overrides_the_depth():
    widths = (4, 8, 8, 16, 16)
    model = vgg.VGG(16, include_top=False, input_shape=(32, 32, 3), block_widths=widths,
                    convs_per_block=(1, 2, 1, 1, 3))
    convs = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs == ["block1_conv1", "block2_conv1", "block2_conv2", "block3_conv1",
                     "block4_conv1", "block5_conv1", "block5_conv2", "block5_conv3"]
    assert model.name == "vgg16"
    for bad in [(1, 1, 1, 1), (1, 0, 1, 1, 1), (1, 1.5, 1, 1, 1)]:
        with pytest.raises(KCCError, match="convs_per_block must be 5 positive integers"):
            vgg.VGG(16, include_top=False, input_shape=(32, 32, 3), block_widths=widths,
                    convs_per_block=bad)


def _tiny(name):
    """The tiny config's builder arguments without the classifier's."""
    config = applications.get_info(name).config("tiny")
    config.pop("classes", None)
    return config
