"""The ResNet-50-FPN trunk and the dense head towers shared by RetinaNet and FCOS.

Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017,
arXiv:1612.03144, on He et al.'s ResNet-50 (CVPR 2016, arXiv:1512.03385), as
torchvision's ``_resnet_fpn_extractor`` builds it for ``retinanet_resnet50_fpn``
and ``fcos_resnet50_fpn``:

* pixels in [0, 1] are normalised with the ImageNet mean and standard
  deviation inside the model (torchvision's ``GeneralizedRCNNTransform``);
* the backbone is the registry's ``resnet50`` (v1.5) with every BatchNorm
  frozen (``norm="frozen"``: ``FrozenBatchNormalization``), its levels C3-C5
  taken through ``applications.backbone_features``. Frozen statistics only
  make sense for pretrained weights: the tiny test configs, trained from
  scratch, keep ordinary BatchNorm (``backbone_norm="batch"``);
* the FPN (``detection.feature_pyramid``) has 256 channels and P6, P7 from P5
  (torchvision's ``LastLevelP6P7(256, 256)``);
* a head is two towers of 3x3 convolutions shared by every level, each
  convolution initialised from N(0, 0.01) with zero bias (torchvision's
  heads); the classification output's bias is ``-log((1 - pi) / pi)`` with the
  prior ``pi = 0.01``, so that every anchor starts at probability 0.01
  (RetinaNet paper, section 4.1).

Grids are ``ceil(image / stride)`` at every level (explicitly padded strided
convolutions), which ``detection.feature_sizes`` also computes, so a head's
anchors are constants of the static input size.
"""

import math

import keras

from keras_cv_course.applications.backbones import backbone_features
from keras_cv_course.applications.classification import common
from keras_cv_course.detection import feature_pyramid, feature_sizes
from keras_cv_course.errors import KCCError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESNET50_WIDTHS = (64, 128, 256, 512)
RESNET50_BLOCKS = (3, 4, 6, 3)
RESNET_LEVELS = ("C3", "C4", "C5")
PRIOR_PROBABILITY = 0.01
HEAD_INIT_STD = 0.01


def normalize_pixels(image):
    """``(x - mean) / std`` with ImageNet's statistics: a ``Rescaling`` layer, no weights."""
    scale = [1.0 / std for std in IMAGENET_STD]
    offset = [-mean / std for mean, std in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    return keras.layers.Rescaling(scale, offset=offset, name="preprocessing")(image)


def resnet_fpn(image, levels=RESNET_LEVELS, stage_widths=RESNET50_WIDTHS,
               blocks_per_stage=RESNET50_BLOCKS, stem_type="imagenet", fpn_channels=256,
               extra_levels="p5", backbone_norm="frozen"):
    """A frozen-BatchNorm ResNet and its FPN on ``image``; returns ``{"P3": t, ...}``.

    Args:
        image: the model's image input, pixels in [0, 1].
        levels: the backbone levels the FPN takes, consecutive, finest first.
        stage_widths, blocks_per_stage, stem_type: the ResNet's (see ``resnet.py``).
        fpn_channels: the width of every pyramid level.
        extra_levels: ``"p5"`` (P6/P7 from the last FPN output), ``"c5"`` or None.
        backbone_norm: ``"frozen"`` for a backbone to fine-tune from pretrained
            weights; ``"batch"`` for one trained from scratch (the tiny configs:
            there are no statistics to freeze).
    """
    x = normalize_pixels(image)
    features = backbone_features("resnet50", x, levels=tuple(levels), norm=backbone_norm,
                                 stage_widths=tuple(stage_widths),
                                 blocks_per_stage=tuple(blocks_per_stage), stem_type=stem_type)
    return feature_pyramid(features, channels=fpn_channels, extra_levels=extra_levels)


def image_and_pyramid(input_shape, backbone_levels=RESNET_LEVELS,
                      stage_widths=RESNET50_WIDTHS, blocks_per_stage=RESNET50_BLOCKS,
                      stem_type="imagenet", backbone_norm="frozen", fpn_channels=256,
                      extra_levels="p5"):
    """A detector's static image input and its ResNet-FPN, as RetinaNet and FCOS share them.

    Args:
        input_shape: static ``(height, width, 3)``; pixels in [0, 1].
        backbone_levels: ResNet levels under the FPN, finest first.
        stage_widths, blocks_per_stage, stem_type: the ResNet's (``resnet.py``).
        backbone_norm: ``"frozen"`` (pretrained backbones, torchvision) or ``"batch"``
            (trained from scratch).
        fpn_channels: width of the pyramid and of the head towers.
        extra_levels: ``"p5"``, ``"c5"`` or None (no P6/P7).

    Returns:
        ``(image, image_size, pyramid, strides)``: the input tensor, its static
        ``(height, width)``, ``{"P3": tensor, ...}`` and each level's stride.
    """
    image = common.image_input(None, static_input(input_shape))
    image_size = tuple(int(s) for s in image.shape[1:3])
    pyramid = resnet_fpn(image, backbone_levels, stage_widths, blocks_per_stage, stem_type,
                         fpn_channels, extra_levels, backbone_norm)
    return image, image_size, pyramid, level_strides(pyramid, image_size)


def level_strides(pyramid, image_size):
    """Each level's stride ``2**k`` (from its name ``P<k>``), its grid checked against
    ``detection.feature_sizes``."""
    strides = [2 ** int(key[1:]) for key in pyramid]
    grids = [tuple(int(size) for size in t.shape[1:3]) for t in pyramid.values()]
    expected = [tuple(grid) for grid in feature_sizes(image_size, strides)]
    if grids != expected:
        raise KCCError(f"pyramid grids {grids} differ from {expected}, the grids of an "
                       f"image of {tuple(image_size)} at strides {strides}")
    return strides


def static_input(input_shape):
    """The static ``(height, width, channels)`` input a detector needs (anchors depend on it)."""
    shape = common.check_image_shape(input_shape)
    if None in shape[:2]:
        raise KCCError(f"a detector needs a static input size (its anchors depend on it), "
                       f"got input_shape {tuple(input_shape)!r}")
    return shape


def head_conv(filters, name, bias=0.0):
    """A 3x3 convolution of a head, N(0, 0.01) weights and constant bias."""
    return keras.layers.Conv2D(
        filters, 3, padding="same", name=name,
        kernel_initializer=keras.initializers.RandomNormal(stddev=HEAD_INIT_STD),
        bias_initializer=keras.initializers.Constant(bias))


def prior_bias(prior_probability=PRIOR_PROBABILITY):
    """The logit of the prior: ``-log((1 - pi) / pi)``, -4.595 for ``pi = 0.01``."""
    return -math.log((1.0 - prior_probability) / prior_probability)


def tower(width, depth, name, norm_groups=None):
    """The layers of one head tower (shared across levels): conv, [GroupNorm], ReLU."""
    layers = []
    for index in range(1, depth + 1):
        layers.append(head_conv(width, f"{name}{index}_conv"))
        if norm_groups:
            layers.append(keras.layers.GroupNormalization(norm_groups, epsilon=1e-5,
                                                          name=f"{name}{index}_gn"))
        layers.append(keras.layers.ReLU(name=f"{name}{index}_relu"))
    return layers


def apply(layers, x):
    """Calls ``layers`` in order on ``x``."""
    for layer in layers:
        x = layer(x)
    return x
