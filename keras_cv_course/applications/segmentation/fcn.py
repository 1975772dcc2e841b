"""FCN: fully convolutional networks for semantic segmentation.

Paper: Jonathan Long, Evan Shelhamer, Trevor Darrell. "Fully Convolutional
Networks for Semantic Segmentation". CVPR 2015. arXiv:1411.4038.

A classifier becomes a dense predictor: its fully connected layers become
convolutions (fc6 as 7x7, fc7 as 1x1), a 1x1 "score" convolution predicts
class scores on the coarse stride-32 grid, and upsampling brings them back to
the input resolution. Skip connections add finer predictions:

* FCN-32s: score at stride 32, then upsample x32.
* FCN-16s: upsample the stride-32 score x2, add a score from pool4
  (stride 16), upsample x16.
* FCN-8s: as 16s, then x2 again, add a score from pool3 (stride 8),
  upsample x8.

Choices, named: the x2 upsamplings are learned transposed convolutions
initialised to bilinear interpolation, as in the paper; the final upsampling
is fixed bilinear interpolation (``UpSampling2D``), which the paper also
keeps fixed, so it has no parameters. The paper's 100-pixel input padding and
crop are replaced by "same" padding, so inputs must be multiples of 32.

The backbone is the registry's VGG-16 (``applications.backbone_features``):
its pooled maps ``C3``, ``C4`` and ``C5`` are the paper's pool3, pool4 and
pool5, and its widths and convolutions per block are configurable. The full
config is the paper's VGG-16 backbone; the paper reports 134M parameters for
FCN-VGG16, and our three heads count 134.35M (32s), 134.36M (16s) and 134.38M
(8s) for 21 VOC classes, equal at the paper's precision.
"""

import keras

from keras_cv_course.applications.backbones import backbone_features
from keras_cv_course.applications.classification import common
from keras_cv_course.applications.registry import register_family
from keras_cv_course.errors import KCCError
from keras_cv_course.layers.initializers import BilinearUpsampling

VGG16_WIDTHS = (64, 128, 256, 512, 512)
VGG16_CONVS = (2, 2, 3, 3, 3)
# The skip levels each head fuses, coarse to fine: pool4 is C4 (stride 16), pool3 is C3.
HEADS = {"32s": (), "16s": ("pool4",), "8s": ("pool4", "pool3")}
SKIP_LEVELS = {"pool3": "C3", "pool4": "C4", "pool5": "C5"}
PAPER = (
    "Long, Shelhamer, Darrell. Fully Convolutional Networks for Semantic "
    "Segmentation. CVPR 2015. arXiv:1411.4038"
)


def vgg_pools(image, widths, convs_per_stage):
    """pool3, pool4 and pool5 of the registry's VGG-16, built on ``image``."""
    levels = backbone_features("vgg16", image, levels=tuple(SKIP_LEVELS.values()),
                               block_widths=tuple(widths), convs_per_block=tuple(convs_per_stage))
    return {pool: levels[level] for pool, level in SKIP_LEVELS.items()}


def fully_connected_as_conv(x, fc_width, dropout_rate):
    """fc6 (7x7) and fc7 (1x1) of the classifier, rewritten as convolutions."""
    x = keras.layers.Conv2D(fc_width, 7, padding="same", activation="relu", name="fc6")(x)
    x = keras.layers.Dropout(dropout_rate, name="drop6")(x)
    x = keras.layers.Conv2D(fc_width, 1, activation="relu", name="fc7")(x)
    return keras.layers.Dropout(dropout_rate, name="drop7")(x)


def upsample_x2(x, classes, name):
    """Learned x2 upsampling, initialised to bilinear interpolation."""
    return keras.layers.Conv2DTranspose(
        classes, 4, strides=2, padding="same", use_bias=False,
        kernel_initializer=BilinearUpsampling(), name=name,
    )(x)


def FCN(
    head="8s",
    input_shape=(512, 512, 3),
    classes=21,
    input_tensor=None,
    backbone_widths=VGG16_WIDTHS,
    convs_per_stage=VGG16_CONVS,
    fc_width=4096,
    dropout_rate=0.5,
    classifier_activation="softmax",
    name=None,
):
    """Builds FCN-32s, FCN-16s or FCN-8s.

    Args:
        head: ``"32s"``, ``"16s"`` or ``"8s"``.
        input_shape: ``(height, width, channels)``, height and width
            multiples of 32.
        classes: number of segmentation classes (21 for PASCAL VOC).
        input_tensor: optional Keras tensor to build on.
        backbone_widths: channels of the five VGG stages.
        convs_per_stage: 3x3 convolutions in each stage.
        fc_width: channels of fc6 and fc7.
        dropout_rate: dropout after fc6 and fc7.
        classifier_activation: per-pixel activation, ``None`` for logits.
        name: model name.

    Returns:
        A model mapping ``(batch, H, W, C)`` images to ``(batch, H, W,
        classes)`` per-pixel class probabilities.
    """
    if head not in HEADS:
        raise KCCError(f"head must be one of {sorted(HEADS)}, got {head!r}")
    if len(backbone_widths) != 5 or len(convs_per_stage) != 5:
        raise KCCError("backbone_widths and convs_per_stage must each have 5 entries")
    image = common.image_input(input_tensor, input_shape)
    for size in image.shape[1:3]:
        if size is not None and size % 32:
            raise KCCError("FCN input height and width must be multiples of 32, "
                           f"got {tuple(image.shape[1:])}")

    pools = vgg_pools(image, backbone_widths, convs_per_stage)
    x = fully_connected_as_conv(pools["pool5"], fc_width, dropout_rate)
    score = keras.layers.Conv2D(classes, 1, name="score_fr")(x)  # stride 32
    for skip in HEADS[head]:  # each skip halves the stride: 32 -> 16 -> 8
        score = upsample_x2(score, classes, f"upscore_to_{skip}")
        skip_score = keras.layers.Conv2D(classes, 1, kernel_initializer="zeros",
                                         name=f"score_{skip}")(pools[skip])
        score = keras.layers.Add(name=f"fuse_{skip}")([score, skip_score])
    stride = 32 // (2 ** len(HEADS[head]))
    score = keras.layers.UpSampling2D(stride, interpolation="bilinear", name="upscore_final")(score)
    outputs = keras.layers.Activation(classifier_activation or "linear", name="segmentation")(score)
    return keras.Model(common.model_inputs(image, input_tensor), outputs, name=name or f"fcn{head}")


def _variant(head):
    def builder(**kwargs):
        return FCN(head, **kwargs)
    builder.__name__ = f"FCN{head}"
    builder.__doc__ = f"FCN-{head}; see ``FCN``."
    return builder


TINY = dict(input_shape=(32, 32, 3), classes=4, backbone_widths=(4, 8, 8, 16, 16),
            convs_per_stage=(1, 1, 1, 1, 1), fc_width=16)

VARIANTS = tuple(
    dict(name=f"fcn{head}", builder=_variant(head),
         description=f"FCN-{head} on the VGG-16 backbone")
    for head in HEADS
)

register_family("fcn", VARIANTS, task="segmentation", paper=PAPER,
                reference_params=134_000_000, params_precision=1_000_000,
                params_source="paper, Table 1 (FCN-VGG16: 134M)",
                full_config=dict(input_shape=(512, 512, 3), classes=21), tiny_config=TINY)
