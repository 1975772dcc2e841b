"""PixelRNN with Row LSTM layers: an autoregressive image model that runs row by row.

Paper:
    Aaron van den Oord, Nal Kalchbrenner, Koray Kavukcuoglu. "Pixel Recurrent
    Neural Networks". ICML 2016. arXiv:1601.06759 (sections 3.1 and 3.2).

Like PixelCNN (``pixelcnn.py``, same paper) the model factorises an image's
likelihood in raster order, ``p(x) = prod_i p(x_i | x_1, ..., x_{i-1})``,
each pixel channel a categorical over ``levels`` values, and trains all
conditionals in one forward pass. Its hidden layers are recurrent instead
of convolutional: a Row LSTM layer processes the image one row at a time,
top to bottom, and computes a whole row of LSTM states at once.

A Row LSTM layer with ``h`` hidden units (section 3.1). Let ``x_i`` be row
``i`` of the layer's input map, ``h_{i-1}`` and ``c_{i-1}`` the previous
row's hidden and cell states (zero above the first row), ``*`` a
convolution and ``(.)`` the elementwise product:

    [o_i, f_i, i_i, g_i] = sigma(K^ss * h_{i-1} + K^is * x_i)
    c_i = f_i (.) c_{i-1} + i_i (.) g_i
    h_i = o_i (.) tanh(c_i)

``sigma`` is the logistic sigmoid for the output, forget and input gates
``o, f, i`` and ``tanh`` for the content gate ``g``; each of them has ``h``
channels at every position of the row.

* ``K^is``, input-to-state: a ``1 x k`` convolution along the row, masked
  (mask B) so that position ``j`` sees ``x_{i, <=j}``. It does not depend
  on the recurrence, so it is computed for the whole map at once, giving
  ``4h`` channels per position.
* ``K^ss``, state-to-state: a ``k``-wide 1D convolution ("same" padding)
  over the previous row's hidden states, giving ``4h`` channels. It is not
  masked: row ``i - 1`` is known in full before row ``i``.

So a Row LSTM state sees a triangle above it (each row widens the reach by
``k // 2`` columns either side) and the row so far, and it never sees the
future: ``h_{i, j}`` depends on the rows ``< i`` and on ``x_{i, <=j}`` of
the layer input. The first layer, a ``7 x 7`` mask-A convolution of the
image, hides each pixel from its own prediction; every later connection is
mask B, so the whole network is causal in raster order (the tests check
this with input gradients).

The network (section 3.2): quantize the image, a mask-A convolution to
``2h`` features, then ``layers`` Row LSTM layers, each followed by a ``1 x 1``
mask-B convolution from ``h`` back to ``2h`` features and a residual
connection around the two, then PixelCNN's output head (two ReLU ``1 x 1``
mask-B convolutions) to logits ``(H, W, channels, levels)``. The loss, the
quantization and the sampling (``"pixels"``: one forward pass per pixel
channel) are PixelCNN's.

Variants (full config; the tiny config is in ``VARIANTS``):

    ================= ======= ====== ====== ============ ====== =============
    name              hidden  layers kernel first kernel head   input, levels
    ================= ======= ====== ====== ============ ====== =============
    pixelrnn_row_lstm 64      2      3      7            256    28x28x1, 2
    ================= ======= ====== ====== ============ ====== =============

Choices, named: the paper gives no Row LSTM configuration for binarised
MNIST, so the full config is a small one (2 layers of 64 hidden units,
residual width 128, head 256 like PixelCNN's); the state-to-state kernel
has the same size ``k`` as the input-to-state kernel; the state-to-state
convolution has no bias (the input-to-state one has it); biases start at
zero; the rows are unrolled as a Python loop over the fixed height (an
``H``-step graph of builtin operations, so the network exports to
SavedModel, TFLite without Flex ops and ONNX); with several colour
channels each gate's ``h`` channels are split into contiguous colour groups
(R -> G -> B) exactly as the masked convolutions split theirs, and ``h``
must be a multiple of the channel count.
"""

import keras
from keras import ops

from keras_cv_course.applications.classification.common import check_image_shape
from keras_cv_course.applications.generative.pixelcnn import (
    OUTPUTS,
    AutoregressiveModel,
    output_head,
)
from keras_cv_course.applications.registry import register_family
from keras_cv_course.errors import KCCError
from keras_cv_course.layers.masked_conv import MaskedConv2D, QuantizePixels

PIXELRNN_PAPER = ("van den Oord, Kalchbrenner, Kavukcuoglu. Pixel Recurrent Neural Networks. "
                  "ICML 2016. arXiv:1601.06759")
GATES = ("output", "forget", "input", "content")  # o, f, i, g: the order of the 4h channels


# -- the Row LSTM layer -----------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="keras_cv_course")
class RowLSTM(keras.layers.Layer):
    """A Row LSTM layer: ``(batch, H, W, in) -> (batch, H, W, units)``, top row first.

    Args:
        units: hidden units ``h`` per position; a multiple of ``color_groups``.
        kernel_size: ``k``, the (odd) width of the masked ``1 x k``
            input-to-state convolution and of the state-to-state convolution.
        color_groups: colour channel groups of the image (1 grey, 3 RGB); the
            input channels must be a multiple of it.
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``).

    The height and width of the input must be fixed: the rows are an
    unrolled loop of ``H`` steps.

    Example:
        >>> lstm = RowLSTM(16, kernel_size=3, name="row_lstm")
        >>> h = lstm(keras.ops.zeros((2, 8, 8, 32)))  # (2, 8, 8, 16)
    """

    def __init__(self, units, kernel_size=3, color_groups=1, **kwargs):
        super().__init__(**kwargs)
        self.units, self.kernel_size = int(units), int(kernel_size)
        self.color_groups = int(color_groups)
        if self.units < 1 or self.units % self.color_groups:
            raise ValueError(f"RowLSTM units must be a positive multiple of color_groups="
                             f"{self.color_groups}, got {units!r}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"RowLSTM kernel_size must be a positive odd int, got "
                             f"{kernel_size!r}")
        gates = len(GATES) * self.units
        self.input_to_state = MaskedConv2D(gates, (1, self.kernel_size), "B", self.color_groups,
                                           name="input_to_state")
        self.state_to_state = keras.layers.Conv1D(gates, self.kernel_size, padding="same",
                                                  use_bias=False, name="state_to_state")

    def build(self, input_shape):
        height, width = input_shape[1], input_shape[2]
        if height is None or width is None:
            raise ValueError(f"RowLSTM needs a fixed height and width, got {input_shape}")
        self.input_to_state.build(input_shape)
        self.state_to_state.build((input_shape[0], width, self.units))

    def call(self, inputs):
        height = inputs.shape[1]
        # K^is * x for every row at once (mask B: position j sees x_{i, <=j}).
        from_input = self._gate_major(self.input_to_state(inputs))  # (batch, H, W, 4h)
        zeros = ops.zeros_like(from_input[:, 0, :, :self.units])  # (batch, W, h)
        hidden, cell, rows = zeros, zeros, []
        for row in range(height):  # top to bottom: row i needs row i - 1's states
            z = from_input[:, row] + self.state_to_state(hidden)  # (batch, W, 4h)
            o, f, i, g = (z[..., k * self.units:(k + 1) * self.units] for k in range(4))
            cell = ops.sigmoid(f) * cell + ops.sigmoid(i) * ops.tanh(g)
            hidden = ops.sigmoid(o) * ops.tanh(cell)
            rows.append(hidden)
        return ops.stack(rows, axis=1)  # (batch, H, W, h)

    def _gate_major(self, z):
        """Masked-conv channels ``[group][gate][h / G]`` -> ``[gate][group][h / G]``.

        ``MaskedConv2D`` splits its ``4h`` outputs into ``G`` contiguous colour
        groups; this puts each gate's ``h`` channels together, still in
        colour-group order, so that gate slices line up with the state's groups.
        """
        groups = self.color_groups
        if groups == 1:
            return z
        height, width = z.shape[1], z.shape[2]
        z = ops.reshape(z, (-1, height, width, groups, len(GATES), self.units // groups))
        z = ops.transpose(z, (0, 1, 2, 4, 3, 5))
        return ops.reshape(z, (-1, height, width, len(GATES) * self.units))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:3], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "kernel_size": self.kernel_size,
                "color_groups": self.color_groups}


def row_lstm_block(x, units, kernel_size, groups, name):
    """Row LSTM, ``1 x 1`` mask-B convolution back to ``x``'s width, residual add."""
    y = RowLSTM(units, kernel_size, groups, name=f"{name}_lstm")(x)
    y = MaskedConv2D(x.shape[-1], 1, "B", groups, name=f"{name}_up")(y)
    return keras.layers.Add(name=f"{name}_add")([x, y])


# -- the model --------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="keras_cv_course")
class PixelRNN(AutoregressiveModel):
    """PixelRNN with Row LSTM layers, with its own loss (PixelCNN's likelihood).

    Args:
        input_shape: fixed image shape ``(H, W, C)``; ``C`` colour channels
            modelled in order within each pixel.
        levels: values per pixel (2 = binarised, 256 = 8-bit).
        filters: hidden units ``h`` of each Row LSTM (the residual stream has
            ``2h`` channels); a multiple of ``C``.
        lstm_layers: Row LSTM layers (named so as not to shadow
            ``keras.Model.layers``).
        kernel_size: ``k`` of the Row LSTM convolutions (odd).
        first_kernel_size: kernel of the first, mask-A convolution (odd).
        head_filters: channels of the first ``1 x 1`` output layer (a
            multiple of ``C``).
        name: model name.

    Example:
        >>> model = PixelRNN(input_shape=(8, 8, 1), levels=4, filters=8, lstm_layers=1)
        >>> model.compile(optimizer="adam")
        >>> images = model.sample(4, seed=0)  # (4, 8, 8, 1), values k / 3
    """

    def __init__(self, input_shape=(28, 28, 1), levels=2, filters=64, lstm_layers=2,
                 kernel_size=3, first_kernel_size=7, head_filters=256, name="pixelrnn_row_lstm",
                 **kwargs):
        input_shape = check_image_shape(input_shape)
        _check_config(input_shape, levels, filters, lstm_layers, kernel_size, first_kernel_size,
                      head_filters)
        groups = input_shape[-1]
        images = keras.Input(shape=input_shape, name="images")
        x = QuantizePixels(levels, name="quantize")(images)
        x = MaskedConv2D(2 * filters, first_kernel_size, "A", groups, name="conv_a")(x)
        for index in range(1, lstm_layers + 1):
            x = row_lstm_block(x, filters, kernel_size, groups, name=f"row{index}")
        logits = output_head(x, input_shape, levels, head_filters, groups)
        super().__init__(inputs=images, outputs={"logits": logits}, name=name, **kwargs)
        self.image_shape = tuple(input_shape)
        self.levels, self.filters, self.lstm_layers = int(levels), int(filters), int(lstm_layers)
        self.kernel_size, self.first_kernel_size = int(kernel_size), int(first_kernel_size)
        self.head_filters, self.classes = int(head_filters), None
        self.track_likelihood()

    def get_config(self):
        return {"input_shape": self.image_shape, "levels": self.levels, "filters": self.filters,
                "lstm_layers": self.lstm_layers, "kernel_size": self.kernel_size,
                "first_kernel_size": self.first_kernel_size, "head_filters": self.head_filters,
                "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_config(input_shape, levels, filters, lstm_layers, kernel_size, first_kernel_size,
                  head_filters):
    if None in input_shape:
        raise KCCError(f"PixelRNN needs a fixed image shape, got {input_shape}")
    if int(levels) < 2:
        raise KCCError(f"PixelRNN levels must be at least 2, got {levels!r}")
    for name, size in (("kernel_size", kernel_size), ("first_kernel_size", first_kernel_size)):
        if int(size) < 1 or int(size) % 2 == 0:
            raise KCCError(f"PixelRNN {name} must be a positive odd int, got {size!r}")
    if int(lstm_layers) < 1:
        raise KCCError(f"PixelRNN lstm_layers must be a positive int, got {lstm_layers!r}")
    channels = input_shape[-1]
    for name, width in (("filters", filters), ("head_filters", head_filters)):
        if int(width) < 1 or int(width) % channels:
            raise KCCError(f"PixelRNN {name} must be a positive multiple of the {channels} "
                           f"image channels, got {width!r}")


# -- variants and registration ----------------------------------------------------------------

def PixelRNNRowLSTM(**kwargs):
    return PixelRNN(**{"name": "pixelrnn_row_lstm", **kwargs})


TINY = dict(input_shape=(8, 8, 1), levels=4, filters=4, lstm_layers=1, kernel_size=3,
            first_kernel_size=5, head_filters=8)
VARIANTS = (
    dict(name="pixelrnn_row_lstm", builder=PixelRNNRowLSTM, paper=PIXELRNN_PAPER,
         full_config=dict(input_shape=(28, 28, 1), levels=2, filters=64, lstm_layers=2,
                          kernel_size=3, first_kernel_size=7, head_filters=256),
         tiny_config=TINY, description="PixelRNN, Row LSTM"),
)

register_family("pixelrnn", VARIANTS, task="generative", reference_params=None,
                params_source="no public reference for this configuration", outputs=OUTPUTS)
