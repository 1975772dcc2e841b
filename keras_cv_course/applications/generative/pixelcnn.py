"""PixelCNN and Gated PixelCNN: autoregressive image models.

Papers:
    Aaron van den Oord, Nal Kalchbrenner, Koray Kavukcuoglu. "Pixel Recurrent
    Neural Networks". ICML 2016. arXiv:1601.06759 (PixelCNN, masks A and B).

    Aaron van den Oord, Nal Kalchbrenner, Oriol Vinyals, Lasse Espeholt, Alex
    Graves, Koray Kavukcuoglu. "Conditional Image Generation with PixelCNN
    Decoders". NeurIPS 2016. arXiv:1606.05328 (Gated PixelCNN).

The model factorises an image's likelihood in raster order,

    p(x) = prod_i p(x_i | x_1, ..., x_{i-1}),

each pixel (and, within a pixel, each colour channel after the ones before
it) being a categorical over ``levels`` values. One forward pass gives every
conditional at once (training is parallel); sampling draws one pixel at a
time (``sample_pixels``), since each draw feeds the next.

PixelCNN: a 7x7 mask-A convolution, residual blocks of 1x1, kxk and 1x1
mask-B convolutions, then two 1x1 mask-B layers to the logits. Its
receptive field has a *blind spot*: stacked masked kernels never reach the
pixels up and to the right beyond the first layer's reach.

Gated PixelCNN removes the blind spot with two stacks. The vertical stack
sees every row above (its convolutions cover rows ``<= i`` and are shifted
down one row before they feed the horizontal stack); the horizontal stack
sees the current row to the left (a masked ``1 x k`` convolution). Each
layer gates ``tanh(W_f * x + V_f h) * sigmoid(W_g * x + V_g h)``, with ``h``
an optional one-hot class projected and added before the gate; a 1x1
convolution links the vertical stack into the horizontal one, and the
horizontal stack is residual.

Inputs are images in [0, 1]. The model rounds them to ``levels`` values
(``QuantizePixels``: straight-through, so sampling and training feed the
network the same images), and its loss is the categorical negative
log-likelihood of those levels, in nats per image; ``bits_per_dim`` is the
same in bits per pixel per channel. The exported forward pass takes images
and returns logits ``(H, W, channels, levels)``.

Variants (full configs; the tiny configs are in ``VARIANTS``):

    ============== ======== ======= ====== ============ ====== ===================
    name           filters  blocks  kernel first kernel head   input, levels
    ============== ======== ======= ====== ============ ====== ===================
    pixelcnn       128      7       3      7            256    28x28x1, 2
    gated_pixelcnn 64       7       3      7            256    28x28x1, 2
    ============== ======== ======= ====== ============ ====== ===================

Choices, named: channels are split into colour groups (R -> G -> B within a
pixel) for multi-channel images, as in the PixelRNN paper; quantization
rounds ``x * (levels - 1)``, so 2 levels binarise at 0.5; the class input is
a one-hot vector named ``class_onehot``.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_cv_course.applications.classification.common import check_image_shape
from keras_cv_course.applications.generative.own_loss import OwnLossModel
from keras_cv_course.applications.registry import register_family
from keras_cv_course.errors import KCCError
from keras_cv_course.generative.pixels import images_to_levels
from keras_cv_course.generative.sampling import CLASS_INPUT, Sampler, draw, keras_forward
from keras_cv_course.layers.masked_conv import MaskedConv2D, QuantizePixels
from keras_cv_course.specs import TensorSpec

PIXELCNN_PAPER = ("van den Oord, Kalchbrenner, Kavukcuoglu. Pixel Recurrent Neural Networks. "
                  "ICML 2016. arXiv:1601.06759")
GATED_PAPER = ("van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves, Kavukcuoglu. Conditional "
               "Image Generation with PixelCNN Decoders. NeurIPS 2016. arXiv:1606.05328")
GATE_PARTS = ("tanh", "sigmoid")


# -- the likelihood ---------------------------------------------------------------------------

def pixel_levels(images, levels):
    """Images in [0, 1] -> integer levels ``round(x * (levels - 1))``, int32."""
    return ops.cast(ops.round(ops.clip(images, 0.0, 1.0) * (levels - 1)), "int32")


def pixel_nll(images, logits, levels):
    """Per-example negative log-likelihood, in nats, of the quantized ``images``.

    Args:
        images: ``(batch, H, W, C)`` in [0, 1].
        logits: ``(batch, H, W, C, levels)``.
        levels: number of pixel values.

    Returns:
        ``(batch,)`` nats: the sum over pixels and channels.
    """
    targets = ops.one_hot(pixel_levels(images, levels), levels)  # (batch, H, W, C, levels)
    log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    nll = -ops.sum(targets * log_probs, axis=-1)  # (batch, H, W, C)
    return ops.sum(ops.reshape(nll, (ops.shape(nll)[0], -1)), axis=1)


def nats_to_bits_per_dim(nats, dimensions):
    """Nats per image -> bits per dimension (pixel x channel)."""
    return nats / (math.log(2.0) * dimensions)


@keras.saving.register_keras_serializable(package="keras_cv_course")
class PixelNLL(keras.losses.Loss):
    """Categorical NLL of quantized pixels; ``y_true`` images, ``y_pred`` logits."""

    def __init__(self, levels=4, name="pixel_nll", **kwargs):
        super().__init__(name=name, **kwargs)
        self.levels = int(levels)

    def call(self, y_true, y_pred):
        return pixel_nll(y_true, y_pred, self.levels)

    def get_config(self):
        return {**super().get_config(), "levels": self.levels}


# -- blocks -----------------------------------------------------------------------------------

def residual_block(x, filters, kernel_size, groups, name):
    """PixelCNN residual block: 1x1 down to half, kxk, 1x1 back up; all mask B."""
    y = x
    for index, (width, size) in enumerate(
            ((filters // 2, 1), (filters // 2, kernel_size), (filters, 1)), start=1):
        y = keras.layers.ReLU(name=f"{name}_relu{index}")(y)
        y = MaskedConv2D(width, size, "B", groups, name=f"{name}_conv{index}")(y)
    return keras.layers.Add(name=f"{name}_add")([x, y])


def shift_down(x, name):
    """Moves features one row down, so row ``i`` holds what row ``i - 1`` saw."""
    x = keras.layers.ZeroPadding2D(((1, 0), (0, 0)), name=f"{name}_pad")(x)
    return keras.layers.Cropping2D(((0, 1), (0, 0)), name=f"{name}_crop")(x)


def gate(tanh_input, sigmoid_input, name):
    """``tanh(a) * sigmoid(b)``."""
    a = keras.layers.Activation("tanh", name=f"{name}_tanh")(tanh_input)
    b = keras.layers.Activation("sigmoid", name=f"{name}_sigmoid")(sigmoid_input)
    return keras.layers.Multiply(name=name)([a, b])


def class_bias(class_onehot, filters, name):
    """The class's learned bias of one gate input, ``(batch, 1, 1, filters)``."""
    bias = keras.layers.Dense(filters, use_bias=False, name=name)(class_onehot)
    return keras.layers.Reshape((1, 1, filters), name=f"{name}_reshape")(bias)


def gated_block(vertical, horizontal, class_onehot, filters, kernel_size, groups, first, name):
    """One Gated PixelCNN layer: ``(vertical, horizontal) -> (vertical, horizontal)``.

    The vertical stack covers the ``kernel_size // 2 + 1`` rows up to and
    including the current one; shifted down a row it feeds the horizontal
    stack, which covers the current row up to the pixel (mask A in the first
    layer, which must not see the pixel it predicts, mask B after).
    """
    half = kernel_size // 2
    padded = keras.layers.ZeroPadding2D(((half, 0), (half, half)), name=f"{name}_v_pad")(vertical)
    mask = "A" if first else "B"
    v_pre, h_pre = {}, {}
    for part in GATE_PARTS:
        v_pre[part] = keras.layers.Conv2D(filters, (half + 1, kernel_size),
                                          name=f"{name}_v_{part}")(padded)
        h_pre[part] = [MaskedConv2D(filters, (1, kernel_size), mask, groups,
                                    name=f"{name}_h_{part}")(horizontal)]
    link = shift_down(keras.layers.Concatenate(name=f"{name}_v_concat")(list(v_pre.values())),
                      f"{name}_v_shift")  # (H, W, 2 filters): the rows above only
    for part in GATE_PARTS:
        h_pre[part].append(keras.layers.Conv2D(filters, 1, name=f"{name}_link_{part}")(link))
        if class_onehot is not None:
            bias = class_bias(class_onehot, filters, f"{name}_class_{part}")
            v_pre[part] = keras.layers.Add(name=f"{name}_v_{part}_class")([v_pre[part], bias])
            h_pre[part].append(bias)
    vertical = gate(v_pre["tanh"], v_pre["sigmoid"], name=f"{name}_v_gate")
    h = gate(*(keras.layers.Add(name=f"{name}_h_{part}_sum")(h_pre[part])
               for part in GATE_PARTS), name=f"{name}_h_gate")
    h = MaskedConv2D(filters, 1, "B", groups, name=f"{name}_h_out")(h)
    if not first:
        h = keras.layers.Add(name=f"{name}_h_residual")([horizontal, h])
    return vertical, h


def output_head(x, image_shape, levels, head_filters, groups):
    """Two 1x1 mask-B layers to logits ``(H, W, channels, levels)``."""
    height, width, channels = image_shape
    x = keras.layers.ReLU(name="head_relu1")(x)
    x = MaskedConv2D(head_filters, 1, "B", groups, name="head_conv1")(x)
    x = keras.layers.ReLU(name="head_relu2")(x)
    # Channel c's logits are the c-th contiguous group, as the reshape expects.
    x = MaskedConv2D(channels * levels, 1, "B", groups, name="head_logits")(x)
    return keras.layers.Reshape((height, width, channels, levels), name="logits")(x)


# -- the model --------------------------------------------------------------------------------

class AutoregressiveModel(OwnLossModel):
    """What PixelCNN and PixelRNN share: the likelihood loss, bits per dimension, sampling.

    A subclass builds its functional graph (``images`` in, ``{"logits"}`` out),
    sets ``image_shape``, ``levels`` and ``classes``, and calls
    ``track_likelihood()``.
    """

    def track_likelihood(self):
        """Creates the loss and the ``bits_per_dim`` metric (after ``levels`` is set)."""
        self.nll = PixelNLL(self.levels)
        self.bits_tracker = keras.metrics.Mean(name="bits_per_dim")

    @property
    def dimensions(self):
        """Numbers per image: ``H * W * C``."""
        return int(np.prod(self.image_shape))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Mean NLL in nats per image; also records bits per dimension."""
        images = _images_of(x)
        self.bits_tracker.update_state(nats_to_bits_per_dim(
            pixel_nll(images, y_pred["logits"], self.levels), self.dimensions))
        return self.nll(images, y_pred["logits"])

    @property
    def sampler(self):
        """Pixel by pixel around this network (``generative.sampling``)."""
        return Sampler(self, "pixels", {"image_shape": list(self.image_shape),
                                        "levels": self.levels, "classes": self.classes})

    def sample(self, num_samples, seed=None, class_ids=None, return_levels=False):
        """Draws images pixel by pixel (``H * W * C`` forward passes).

        Args:
            num_samples: number of images.
            seed: NumPy seed; equal seeds give equal samples.
            class_ids: class-conditional models: ``(num_samples,)`` class ids;
                by default ``0, 1, 2, ...`` cycling over the classes.
            return_levels: return the integer levels instead of images.

        Returns:
            ``(num_samples, H, W, C)``: float32 images ``level / (levels - 1)``
            in [0, 1] (what the generative task shows), or int32 levels.
        """
        images = draw(self.sampler.record(), keras_forward(self), num_samples, seed, class_ids)
        return images_to_levels(images, self.levels) if return_levels else images


@keras.saving.register_keras_serializable(package="keras_cv_course")
class PixelCNN(AutoregressiveModel):
    """A PixelCNN (``gated=False``) or Gated PixelCNN, with its own loss.

    Args:
        input_shape: image shape ``(H, W, C)``; ``C`` is 1 or any number of
            colour channels, modelled in order within each pixel.
        levels: values per pixel (2 = binarised, 256 = 8-bit).
        filters: feature channels; a multiple of ``2 * C`` (PixelCNN) or
            ``C`` (gated).
        blocks: residual blocks (PixelCNN) or gated layers after the first.
        kernel_size: kernel of the blocks (odd).
        first_kernel_size: kernel of the first, mask-A layer (odd).
        head_filters: channels of the first 1x1 output layer (a multiple of ``C``).
        gated: build the Gated PixelCNN.
        classes: gated only: the number of classes of the one-hot
            ``class_onehot`` input that conditions every layer; ``None`` for
            an unconditional model.
        name: model name.

    Example:
        >>> model = PixelCNN(input_shape=(8, 8, 1), levels=4, filters=16, blocks=2)
        >>> model.compile(optimizer="adam")
        >>> images = model.sample(4, seed=0)  # (4, 8, 8, 1), values k / 3
    """

    def __init__(self, input_shape=(28, 28, 1), levels=2, filters=128, blocks=7, kernel_size=3,
                 first_kernel_size=7, head_filters=256, gated=False, classes=None,
                 name="pixelcnn", **kwargs):
        input_shape = check_image_shape(input_shape)
        _check_config(input_shape, levels, kernel_size, first_kernel_size, gated, classes)
        groups = input_shape[-1]
        images = keras.Input(shape=input_shape, name="images")
        class_onehot = keras.Input(shape=(classes,), name=CLASS_INPUT) if classes else None
        x = QuantizePixels(levels, name="quantize")(images)
        if gated:
            vertical, x = gated_block(x, x, class_onehot, filters, first_kernel_size, groups,
                                      first=True, name="gated0")
            for index in range(1, blocks + 1):
                vertical, x = gated_block(vertical, x, class_onehot, filters, kernel_size,
                                          groups, first=False, name=f"gated{index}")
        else:
            x = MaskedConv2D(filters, first_kernel_size, "A", groups, name="conv_a")(x)
            for index in range(1, blocks + 1):
                x = residual_block(x, filters, kernel_size, groups, name=f"block{index}")
        logits = output_head(x, input_shape, levels, head_filters, groups)
        inputs = {"images": images, CLASS_INPUT: class_onehot} if classes else images
        super().__init__(inputs=inputs, outputs={"logits": logits}, name=name, **kwargs)
        self.image_shape = tuple(input_shape)
        self.levels, self.filters, self.blocks = int(levels), int(filters), int(blocks)
        self.kernel_size, self.first_kernel_size = int(kernel_size), int(first_kernel_size)
        self.head_filters, self.gated, self.classes = int(head_filters), bool(gated), classes
        self.track_likelihood()

    def get_config(self):
        return {"input_shape": self.image_shape, "levels": self.levels, "filters": self.filters,
                "blocks": self.blocks, "kernel_size": self.kernel_size,
                "first_kernel_size": self.first_kernel_size, "head_filters": self.head_filters,
                "gated": self.gated, "classes": self.classes, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_config(input_shape, levels, kernel_size, first_kernel_size, gated, classes):
    if int(levels) < 2:
        raise KCCError(f"PixelCNN levels must be at least 2, got {levels!r}")
    for name, size in (("kernel_size", kernel_size), ("first_kernel_size", first_kernel_size)):
        if int(size) < 1 or int(size) % 2 == 0:
            raise KCCError(f"PixelCNN {name} must be a positive odd int, got {size!r}")
    if classes is not None and (not gated or int(classes) < 1):
        raise KCCError(f"classes must be None or a positive int of a gated model, got "
                       f"classes={classes!r}, gated={gated!r}")
    if None in input_shape:
        raise KCCError(f"PixelCNN needs a fixed image shape, got {input_shape}")


def _images_of(inputs):
    return inputs["images"] if isinstance(inputs, dict) else inputs


# -- variants and registration ----------------------------------------------------------------

def PixelCNNPlain(**kwargs):
    return PixelCNN(gated=False, **{"name": "pixelcnn", **kwargs})


def GatedPixelCNN(**kwargs):
    return PixelCNN(gated=True, **{"name": "gated_pixelcnn", **kwargs})


OUTPUTS = (
    TensorSpec("logits", ("height", "width", "channels", "levels"), "float32",
               "unnormalised log-probabilities of each pixel channel's levels"),
)
TINY = dict(input_shape=(8, 8, 1), levels=4, filters=8, blocks=1, kernel_size=3,
            first_kernel_size=5, head_filters=8)
VARIANTS = (
    dict(name="pixelcnn", builder=PixelCNNPlain, paper=PIXELCNN_PAPER,
         full_config=dict(input_shape=(28, 28, 1), levels=2, filters=128, blocks=7,
                          head_filters=256),
         tiny_config=TINY, description="PixelCNN, masked convolutions (blind spot)"),
    dict(name="gated_pixelcnn", builder=GatedPixelCNN, paper=GATED_PAPER,
         full_config=dict(input_shape=(28, 28, 1), levels=2, filters=64, blocks=7,
                          head_filters=256),
         tiny_config=TINY, description="Gated PixelCNN, vertical and horizontal stacks"),
)

register_family("pixelcnn", VARIANTS, task="generative", reference_params=None,
                params_source="no public reference for this configuration", outputs=OUTPUTS)
