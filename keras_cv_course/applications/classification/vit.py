"""ViT: the Vision Transformer.

Paper: Alexey Dosovitskiy, Lucas Beyer, Alexander Kolesnikov, Dirk
Weissenborn, Xiaohua Zhai, Thomas Unterthiner, Mostafa Dehghani, Matthias
Minderer, Georg Heigold, Sylvain Gelly, Jakob Uszkoreit, Neil Houlsby. "An
Image is Worth 16x16 Words: Transformers for Image Recognition at Scale".
ICLR 2021. arXiv:2010.11929.

The image is cut into ``patch x patch`` patches, each linearly embedded (a
strided convolution), a learnable ``[class]`` token is prepended and a
learnable position embedding added (equation 1). A stack of pre-norm
Transformer encoder blocks follows (equations 2-3): ``x + MSA(LN(x))``, then
``x + MLP(LN(x))`` with a two-layer GELU MLP. The final LayerNorm of the
class token feeds the linear classifier (equation 4).

Choices, named because implementations differ:
* LayerNorm epsilon 1e-6, as in the paper's code, timm and torchvision.
* GELU is the tanh approximation (``GELU(approximate=True)``): exact GELU
  lowers to ``Erfc``, which tf2onnx cannot convert (it logs that and writes
  a broken file). The two differ by at most about 1e-3; weights trained with
  the exact form still work.
* Attention is ``keras.layers.MultiHeadAttention`` (separate query, key and
  value projections with biases); it has the same parameters as
  torchvision's fused ``in_proj``.
* No pre-logits ("representation") layer: torchvision and timm drop it for
  ImageNet-1k models.

| name     | width | depth | heads | MLP  | params /16  | params /32  |
|----------|-------|-------|-------|------|-------------|-------------|
| Ti       | 192   | 12    | 3     | 768  | 5,717,416   | 6,131,560   |
| S        | 384   | 12    | 6     | 1536 | 22,050,664  | 22,878,952  |
| B        | 768   | 12    | 12    | 3072 | 86,567,656  | 88,224,232  |
| L        | 1024  | 24    | 16    | 4096 | 304,326,632 | 306,535,400 |

Counts are at 224x224 with 1000 classes, from torchvision (B, L) and timm
(Ti/16, S/16, S/32). timm and torchvision have no Ti/32; its count is the
same architecture's formula and is labelled so in the registry.

Feature level (``applications.backbone``): one, the final ``encoder_norm``
patch tokens without the class token, reshaped to their grid
``(batch, H / p, W / p, hidden)`` at stride ``p`` (timm's ``feature_info``
gives a ViT's blocks the patch size as their reduction): ``C4`` for /16,
``C5`` for /32. The grid is a weightless side branch (``grid_patch_tokens``,
``grid``) that the classifier's outputs do not use, so the classifier is
unchanged.

Pretrained weights: none. keras.applications ships no ViT, so
``weights="imagenet"`` raises a clear error; ``weights=`` a ``.weights.h5``
path loads your own. The torchvision/timm checkpoints are not converted here.
"""

import functools

import keras

from keras_cv_course.applications.backbones import level_name, record_levels
from keras_cv_course.applications.classification import common
from keras_cv_course.applications.registry import register_family
from keras_cv_course.errors import KCCError
from keras_cv_course.layers.vit_layers import GELU, ClassToken, PositionEmbedding

LN_EPSILON = 1e-6
POOLINGS = (None, "token", "avg", "max")
SIZES = {
    "tiny": dict(hidden_size=192, num_layers=12, num_heads=3, mlp_size=768),
    "small": dict(hidden_size=384, num_layers=12, num_heads=6, mlp_size=1536),
    "base": dict(hidden_size=768, num_layers=12, num_heads=12, mlp_size=3072),
    "large": dict(hidden_size=1024, num_layers=24, num_heads=16, mlp_size=4096),
}
PAPER = (
    "Dosovitskiy et al. An Image is Worth 16x16 Words: Transformers for Image "
    "Recognition at Scale. ICLR 2021. arXiv:2010.11929"
)


def patch_embedding(images, patch_size, hidden_size):
    """Embeds non-overlapping patches: ``(b, h, w, c) -> (b, h*w/p^2, d)``."""
    x = keras.layers.Conv2D(
        hidden_size, patch_size, strides=patch_size, padding="valid", name="patch_embed"
    )(images)  # (b, h/p, w/p, d)
    grid = x.shape[1] * x.shape[2]
    return keras.layers.Reshape((grid, hidden_size), name="patch_flatten")(x)


def mlp(x, mlp_size, hidden_size, dropout, name):
    """Linear, GELU, dropout, linear, dropout."""
    x = keras.layers.Dense(mlp_size, name=f"{name}_fc1")(x)
    x = GELU(approximate=True, name=f"{name}_gelu")(x)
    x = keras.layers.Dropout(dropout, name=f"{name}_dropout1")(x)
    x = keras.layers.Dense(hidden_size, name=f"{name}_fc2")(x)
    return keras.layers.Dropout(dropout, name=f"{name}_dropout2")(x)


def encoder_block(x, num_heads, mlp_size, dropout, attention_dropout, name):
    """Pre-norm Transformer block: ``x + MSA(LN(x))``, then ``x + MLP(LN(x))``."""
    hidden_size = x.shape[-1]
    y = keras.layers.LayerNormalization(epsilon=LN_EPSILON, name=f"{name}_ln1")(x)
    y = keras.layers.MultiHeadAttention(
        num_heads, hidden_size // num_heads, dropout=attention_dropout, name=f"{name}_attn"
    )(y, y)
    y = keras.layers.Dropout(dropout, name=f"{name}_attn_dropout")(y)
    x = keras.layers.Add(name=f"{name}_add1")([x, y])
    y = keras.layers.LayerNormalization(epsilon=LN_EPSILON, name=f"{name}_ln2")(x)
    y = mlp(y, mlp_size, hidden_size, dropout, f"{name}_mlp")
    return keras.layers.Add(name=f"{name}_add2")([x, y])


def class_token_output(x):
    """Keeps the ``[class]`` token: ``(b, n + 1, d) -> (b, d)``."""
    length = x.shape[1]
    x = keras.layers.Cropping1D((0, length - 1), name="class_token_select")(x)
    return keras.layers.Reshape((x.shape[-1],), name="class_token_flatten")(x)


def patch_grid(tokens, grid_height, grid_width):
    """The patch tokens as a feature map: ``(b, n + 1, d) -> (b, h/p, w/p, d)``.

    Drops the ``[class]`` token (first) and puts each patch token back at its
    place in the image, in the row-major order ``patch_embedding`` flattened.
    """
    patches = keras.layers.Cropping1D((1, 0), name="grid_patch_tokens")(tokens)
    return keras.layers.Reshape((grid_height, grid_width, tokens.shape[-1]), name="grid")(patches)


def pool(x, pooling, include_top):
    """The class token (paper), mean or max of the patch tokens, or all tokens."""
    if include_top or pooling == "token":
        return class_token_output(x)
    if pooling is None:
        return x
    patches = keras.layers.Cropping1D((1, 0), name="patch_tokens")(x)
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling1D(name="avg_pool")(patches)
    return keras.layers.GlobalMaxPooling1D(name="max_pool")(patches)


def check_config(input_shape, patch_size, hidden_size, num_heads, pooling):
    if pooling not in POOLINGS:
        raise KCCError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    height, width = input_shape[0], input_shape[1]
    if height is None or width is None or height % patch_size or width % patch_size:
        raise KCCError(
            f"input height and width must be fixed multiples of patch_size={patch_size}, "
            f"got input_shape={tuple(input_shape)!r}"
        )
    if hidden_size % num_heads:
        raise KCCError(
            f"hidden_size must be divisible by num_heads, got {hidden_size} and {num_heads}"
        )


def VisionTransformer(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    patch_size=16,
    hidden_size=768,
    num_layers=12,
    num_heads=12,
    mlp_size=3072,
    dropout=0.0,
    attention_dropout=0.0,
):
    """Builds a Vision Transformer (defaults: ViT-B/16 at 224x224).

    Args:
        include_top, weights, input_tensor, input_shape, classes,
            classifier_activation, name: the keras.applications contract.
            ``weights`` is ``None`` or a ``.weights.h5`` path: no ImageNet
            weights are provided (see module docstring).
        pooling: without the top, ``None`` (all ``n + 1`` tokens),
            ``"token"`` (the class token), ``"avg"`` or ``"max"`` (over the
            patch tokens).
        patch_size: side of the square patches; must divide the image size.
        hidden_size: token width ``D``.
        num_layers: number of encoder blocks.
        num_heads: attention heads; must divide ``hidden_size``.
        mlp_size: hidden width of the MLP.
        dropout: dropout after the embedding, attention and MLP.
        attention_dropout: dropout on the attention weights.

    Returns:
        A ``keras.Model``; ``model.pyramid_outputs`` holds the patch grid
        (see the module docstring).

    Example:
        >>> model = VisionTransformer(input_shape=(32, 32, 3), patch_size=8,
        ...                           hidden_size=16, num_layers=1, num_heads=2,
        ...                           mlp_size=32, classes=10)
    """
    image = common.image_input(input_tensor, input_shape, min_size=patch_size)
    check_config(image.shape[1:], patch_size, hidden_size, num_heads, pooling)
    x = patch_embedding(image, patch_size, hidden_size)
    x = ClassToken(name="class_token")(x)
    x = PositionEmbedding(name="pos_embed")(x)  # (b, n + 1, d)
    x = keras.layers.Dropout(dropout, name="embed_dropout")(x)
    for index in range(num_layers):
        x = encoder_block(x, num_heads, mlp_size, dropout, attention_dropout,
                          f"encoder{index + 1}")
    x = keras.layers.LayerNormalization(epsilon=LN_EPSILON, name="encoder_norm")(x)
    height, width = image.shape[1] // patch_size, image.shape[2] // patch_size
    levels = {level_name(patch_size): patch_grid(x, height, width)}  # a side branch
    x = pool(x, pooling, include_top)
    if include_top:
        if int(classes) < 1:
            raise KCCError(f"classes must be a positive integer, got {classes!r}")
        x = keras.layers.Dense(classes, activation=classifier_activation, name="predictions",
                           dtype=common.PREDICTION_DTYPE)(x)
    model = keras.Model(common.model_inputs(image, input_tensor), x, name=name or "vit")
    return common.load_weights(record_levels(model, levels), weights)


def vit(size, patch_size=16, **kwargs):
    """A named ViT size (``"tiny"``, ``"small"``, ``"base"``, ``"large"``)."""
    return VisionTransformer(**{**SIZES[size], "patch_size": patch_size, **kwargs})


LABELS = {"tiny": "Ti", "small": "S", "base": "B", "large": "L"}
TINY = dict(input_shape=(32, 32, 3), classes=10, patch_size=8, hidden_size=16,
            num_layers=2, num_heads=2, mlp_size=32)


def _variant(size, patch_size, reference_params, params_source, imagenet_top1=None,
             top1_source=""):
    """The registry record of ViT-``size``/``patch_size``."""
    return dict(
        name=f"vit_{size}_{patch_size}",
        builder=functools.partial(vit, size, patch_size=patch_size),
        reference_params=reference_params, params_source=params_source,
        imagenet_top1=imagenet_top1, top1_source=top1_source,
        feature_levels=(level_name(patch_size),),
        description=f"ViT-{LABELS[size]}/{patch_size}, {SIZES[size]['num_layers']} "
                    f"blocks of width {SIZES[size]['hidden_size']}",
    )


VARIANTS = (
    _variant("tiny", 16, 5_717_416, "timm vit_tiny_patch16_224",
             72.2, "DeiT-Ti (same architecture, ImageNet-1k only), "
             "Touvron et al. arXiv:2012.12877 Table 1"),
    _variant("tiny", 32, 6_131_560, "formula (timm/torchvision have no ViT-Ti/32): "
             "timm ViT-Ti widths at patch 32"),
    _variant("small", 16, 22_050_664, "timm vit_small_patch16_224",
             79.8, "DeiT-S (same architecture, ImageNet-1k only), "
             "Touvron et al. arXiv:2012.12877 Table 1"),
    _variant("small", 32, 22_878_952, "timm vit_small_patch32_224"),
    _variant("base", 16, 86_567_656, "torchvision vit_b_16",
             81.072, "torchvision vit_b_16 IMAGENET1K_V1 acc@1"),
    _variant("base", 32, 88_224_232, "torchvision vit_b_32",
             75.912, "torchvision vit_b_32 IMAGENET1K_V1 acc@1"),
    _variant("large", 16, 304_326_632, "torchvision vit_l_16",
             79.662, "torchvision vit_l_16 IMAGENET1K_V1 acc@1"),
    _variant("large", 32, 306_535_400, "torchvision vit_l_32",
             76.972, "torchvision vit_l_32 IMAGENET1K_V1 acc@1"),
)

register_family("vit", VARIANTS, task="classification", paper=PAPER, tiny_config=TINY,
                unsupported_quantize={"16x8": "the converter has no 16x8 kernel for 'NEG' (in "
                                              "the tanh form of GELU)"})
