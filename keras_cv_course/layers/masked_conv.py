"""Masked convolutions for autoregressive image models, and pixel quantization.

Paper: Aaron van den Oord, Nal Kalchbrenner, Koray Kavukcuoglu. "Pixel
Recurrent Neural Networks". ICML 2016. arXiv:1601.06759.

An autoregressive image model factorises ``p(x)`` over pixels in raster
order (row by row, left to right) and, within a pixel, over its colour
channels (R, then G, then B). A convolution keeps that order when its kernel
is zero at every position that comes later: the rows below the centre, the
columns right of the centre in the centre row, and, at the centre itself,
the colour groups that come later. Mask "A" (the first layer, which sees the
image) also hides the centre's own channel group, so that no output sees the
pixel it predicts; mask "B" (every later layer, which sees features) lets a
group see itself.

For ``color_groups=G`` the input and output channels are split into ``G``
equal, contiguous groups (group ``g`` of an RGB image's first layer is its
channel ``g``). At the centre position an output of group ``g`` sees the
input groups ``< g`` (mask A) or ``<= g`` (mask B). With one group (grey
images) this is the plain spatial mask.

The mask is a NumPy constant, built once from the kernel's shape, and is
multiplied into the kernel at every call. The kernel variable itself stays
unmasked: the optimizer's update of a masked-out weight has no effect on the
output (its gradient is zero), so nothing needs to be written back into the
variable, and the layer's weights load and export like a plain ``Conv2D``'s.
"""

import keras
import numpy as np
from keras import ops

MASK_TYPES = ("A", "B")


def causal_mask(kernel_shape, mask_type, color_groups=1):
    """The raster-order mask of a ``(kh, kw, in, out)`` kernel, as float32 NumPy.

    Args:
        kernel_shape: ``(kernel_height, kernel_width, in_channels, out_channels)``;
            both kernel sizes odd.
        mask_type: ``"A"`` (an output does not see its own centre group) or
            ``"B"`` (it does).
        color_groups: the number of colour channel groups; the channel counts
            must be multiples of it.

    Returns:
        An array of ``kernel_shape`` holding 0 and 1.

    Raises:
        ValueError: an unknown mask type, an even kernel size, or channel
            counts that are not multiples of ``color_groups``.
    """
    height, width, in_channels, out_channels = (int(d) for d in kernel_shape)
    if mask_type not in MASK_TYPES:
        raise ValueError(f"mask_type must be one of {MASK_TYPES}, got {mask_type!r}")
    if height % 2 == 0 or width % 2 == 0:
        raise ValueError(f"masked kernel sizes must be odd, got {(height, width)}")
    if in_channels % color_groups or out_channels % color_groups:
        raise ValueError(f"masked convolution channels must be multiples of color_groups="
                         f"{color_groups}, got {in_channels} in and {out_channels} out")
    row, column = height // 2, width // 2
    mask = np.ones(kernel_shape, dtype="float32")
    mask[row + 1:] = 0.0  # rows below the centre
    mask[row, column + 1:] = 0.0  # right of the centre, in the centre row
    in_group = np.arange(in_channels) * color_groups // in_channels
    out_group = np.arange(out_channels) * color_groups // out_channels
    if mask_type == "A":
        centre = in_group[:, None] < out_group[None, :]
    else:
        centre = in_group[:, None] <= out_group[None, :]
    mask[row, column] = centre.astype("float32")  # (in, out)
    return mask


@keras.saving.register_keras_serializable(package="keras_cv_course")
class MaskedConv2D(keras.layers.Conv2D):
    """A stride-1, ``"same"``-padded ``Conv2D`` whose kernel is masked in raster order.

    Args:
        filters: output channels; a multiple of ``color_groups``.
        kernel_size: an odd int or a pair of odd ints, e.g. ``7`` or ``(1, 3)``.
        mask_type: ``"A"`` for the first layer (the centre pixel's own
            colour group is hidden), ``"B"`` for later layers.
        color_groups: colour channel groups (3 for RGB models with the
            paper's R -> G -> B ordering inside a pixel; 1 for grey images).
        **kwargs: other ``Conv2D`` arguments (``use_bias``, ``activation``,
            initializers, ``name``, ...). Strides, dilation, padding, groups
            and the (channels-last) data format are fixed.

    Example:
        >>> conv = MaskedConv2D(16, 7, mask_type="A", name="conv_a")
        >>> y = conv(keras.ops.ones((1, 8, 8, 1)))  # (1, 8, 8, 16)
        >>> kernel = conv.masked_kernel  # zero below and right of the centre
    """

    def __init__(self, filters, kernel_size, mask_type="B", color_groups=1, **kwargs):
        for key, allowed in (("padding", ("same",)), ("strides", (1, (1, 1))),
                             ("dilation_rate", (1, (1, 1))),
                             ("data_format", (None, "channels_last")), ("groups", (1,))):
            value = kwargs.pop(key, allowed[0])
            if (tuple(value) if isinstance(value, list) else value) not in allowed:
                raise ValueError(f"MaskedConv2D {key} must be {allowed[-1]!r}, got {value!r}")
        if mask_type not in MASK_TYPES:
            raise ValueError(f"mask_type must be one of {MASK_TYPES}, got {mask_type!r}")
        if int(color_groups) < 1:
            raise ValueError(f"color_groups must be a positive int, got {color_groups!r}")
        super().__init__(filters, kernel_size, padding="same", data_format="channels_last",
                         **kwargs)
        self.mask_type = mask_type
        self.color_groups = int(color_groups)
        self._mask = None  # NumPy, built with the kernel

    def build(self, input_shape):
        super().build(input_shape)
        self._mask = causal_mask(self.kernel.shape, self.mask_type, self.color_groups)

    @property
    def mask(self):
        """The constant 0/1 mask, ``(kh, kw, in, out)`` NumPy (after ``build``)."""
        return self._mask

    @property
    def masked_kernel(self):
        """The kernel that the convolution actually applies: ``kernel * mask``."""
        return ops.multiply(self.kernel, ops.convert_to_tensor(self._mask, self.kernel.dtype))

    def convolution_op(self, inputs, kernel):
        # The one place the kernel meets the mask: the variable is never overwritten.
        mask = ops.convert_to_tensor(self._mask, dtype=kernel.dtype)
        return super().convolution_op(inputs, ops.multiply(kernel, mask))

    def get_config(self):
        config = super().get_config()
        for key in ("padding", "strides", "dilation_rate", "data_format", "groups"):
            config.pop(key, None)
        return {**config, "mask_type": self.mask_type, "color_groups": self.color_groups}


@keras.saving.register_keras_serializable(package="keras_cv_course")
class QuantizePixels(keras.layers.Layer):
    """Rounds pixels in [0, 1] to ``levels`` evenly spaced values, straight through.

    The forward pass returns ``round(x * (levels - 1)) / (levels - 1)``, the
    image that sampling feeds the model, so training and sampling see the
    same inputs. The gradient is the identity (straight-through), which keeps
    the model's input gradients, and so its causality, measurable.

    Args:
        levels: number of pixel values, at least 2 (2 = binarised at 0.5).
    """

    def __init__(self, levels, **kwargs):
        super().__init__(**kwargs)
        if int(levels) < 2:
            raise ValueError(f"levels must be at least 2, got {levels!r}")
        self.levels = int(levels)

    def call(self, images):
        scale = float(self.levels - 1)
        quantized = ops.round(ops.clip(images, 0.0, 1.0) * scale) / scale
        return images + ops.stop_gradient(quantized - images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "levels": self.levels}
