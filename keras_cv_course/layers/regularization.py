"""Regularization layers: training adds randomness, testing marginalises it out.

Each layer here injects noise only when ``training=True`` and is scaled so
that the noise has the right expectation; at inference it returns that
expectation (or, for fractional max pooling, a fixed deterministic pooling).

=======================  =====================================================
layer                    paper
=======================  =====================================================
DropConnect              Wan, Zeiler, Zhang, LeCun, Fergus, "Regularization of
                         Neural Networks using DropConnect", ICML 2013
FractionalMaxPooling2D   Graham, "Fractional Max-Pooling", 2014,
                         arXiv:1412.6071
DropPath                 Huang, Sun, Liu, Sedra, Weinberger, "Deep Networks
(StochasticDepth)        with Stochastic Depth", ECCV 2016, arXiv:1603.09382
Cutout                   DeVries & Taylor, "Improved Regularization of
                         Convolutional Neural Networks with Cutout", 2017,
                         arXiv:1708.04552
=======================  =====================================================

Choices, named: DropConnect and DropPath use "inverted" scaling (kept values
are divided by the keep probability during training), so inference needs no
rescaling; DropConnect's inference is the mean-field ``x W + b`` rather than
the paper's Gaussian moment-matching sampler.
"""

import math

import keras
from keras import ops

from keras_cv_course.errors import KCCError

_SERIALIZABLE = keras.saving.register_keras_serializable(package="keras_cv_course")


def _check_rate(rate):
    if not 0.0 <= rate < 1.0:
        raise KCCError(f"rate must be in [0, 1), got {rate!r}")
    return rate


@_SERIALIZABLE
class DropConnect(keras.layers.Layer):
    """A dense layer whose *weights* (not activations) are randomly dropped.

    Training: ``y = x (M * W) / (1 - rate) + b`` with ``M ~ Bernoulli(1 - rate)``
    drawn independently for every example (as in the paper) or once per batch
    (``per_example=False``, cheaper). Inference: ``y = x W + b``, the
    expectation of the training output.

    Args:
        units: output width.
        rate: probability of dropping each weight.
        activation: activation applied to ``y``.
        use_bias: add a bias (never dropped).
        per_example: draw a separate weight mask for each example.
        seed: seed of the masks.
        **kwargs: base ``Layer`` arguments.
    """

    def __init__(self, units, rate=0.5, activation=None, use_bias=True, per_example=True,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.rate = _check_rate(rate)
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.per_example = per_example
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel",
                                      initializer="glorot_uniform")
        self.bias = self.add_weight(shape=(self.units,), name="bias",
                                    initializer="zeros") if self.use_bias else None

    def call(self, x, training=False):
        if training and self.rate > 0:
            keep = 1.0 - self.rate
            if self.per_example:
                mask_shape = (ops.shape(x)[0],) + tuple(self.kernel.shape)
                mask = keras.random.uniform(mask_shape, seed=self.seed_generator) < keep
                kernel = ops.where(mask, self.kernel / keep, 0.0)  # (batch, in, units)
                y = ops.einsum("bi,biu->bu", x, kernel)
            else:
                mask = keras.random.uniform(self.kernel.shape, seed=self.seed_generator) < keep
                y = ops.matmul(x, ops.where(mask, self.kernel / keep, 0.0))
        else:
            y = ops.matmul(x, self.kernel)
        if self.bias is not None:
            y = y + self.bias
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "rate": self.rate,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias, "per_example": self.per_example, "seed": self.seed}


def pooling_boundaries(input_size, output_size, pseudo_random, u=None, seed=None):
    """Graham's sequence ``0 = a_0 < a_1 < ... < a_n = input_size``.

    With ``alpha = input_size / output_size`` every increment
    ``a_i - a_{i-1}`` is ``floor(alpha)`` or ``ceil(alpha)``.

    Args:
        input_size: ``N_in``.
        output_size: ``N_out = floor(N_in / alpha)``.
        pseudo_random: ``True`` gives ``a_i = ceil(alpha (i + u)) - ceil(alpha u)``
            with ``u`` in [0, 1); ``False`` shuffles the increments at random.
        u: the offset of the pseudo-random sequence; ``None`` draws it.
        seed: a seed or ``SeedGenerator`` for the random draws.

    Returns:
        int32 tensor ``(output_size + 1,)``.
    """
    alpha = input_size / output_size
    if pseudo_random:
        if u is None:
            u = keras.random.uniform((), seed=seed)
        i = ops.arange(output_size + 1, dtype="float32")
        a = ops.ceil(alpha * (i + u)) - ops.ceil(alpha * u)
        return ops.cast(ops.clip(a, 0, input_size), "int32")
    small = input_size // output_size
    large_count = input_size - small * output_size  # how many increments are small + 1
    increments = ops.cast(ops.arange(output_size) < large_count, "int32") + small
    increments = keras.random.shuffle(increments, seed=seed)
    return ops.concatenate([ops.zeros((1,), "int32"), ops.cumsum(increments)])


def _pool_axis(x, boundaries, axis, overlapping):
    """Max over the regions ``[a_{i-1}, a_i)`` (``+1`` when overlapping) of one axis."""
    size = x.shape[axis]
    regions = boundaries.shape[0] - 1
    window = int(math.ceil(size / regions)) + int(overlapping)  # longest region
    start = boundaries[:-1]
    end = ops.minimum(boundaries[1:] + int(overlapping), size)
    # (regions, window): each region's indices, short regions repeat their last index.
    index = ops.minimum(start[:, None] + ops.arange(window, dtype="int32")[None, :],
                        end[:, None] - 1)
    gathered = ops.take(x, ops.reshape(index, (-1,)), axis=axis)
    shape = [-1] + list(x.shape[1:])
    shape[axis:axis + 1] = [regions, window]
    return ops.max(ops.reshape(gathered, shape), axis=axis + 1)


def fractional_max_pool(x, row_boundaries, col_boundaries, overlapping=False):
    """Max pooling of ``(batch, H, W, C)`` over given row and column boundaries.

    Region ``(i, j)`` covers rows ``[r_{i-1}, r_i)`` and columns
    ``[c_{j-1}, c_j)``; ``overlapping=True`` includes the right edge, as
    ``tf.nn.fractional_max_pool`` does.
    """
    x = _pool_axis(x, row_boundaries, 1, overlapping)
    return _pool_axis(x, col_boundaries, 2, overlapping)


@_SERIALIZABLE
class FractionalMaxPooling2D(keras.layers.Layer):
    """Max pooling by a non-integer factor ``alpha`` (Graham 2014).

    The output is ``floor(H / alpha) x floor(W / alpha)``. In training each
    call draws new pooling regions, either pseudo-random (a shifted regular
    sequence) or random (a shuffled sequence of increments); at inference
    the regions are the fixed pseudo-random sequence with ``u = 0.5``.

    Args:
        pooling_ratio: ``alpha >= 1``; Graham uses values in (1, 2), e.g.
            ``sqrt(2)``.
        pseudo_random: pseudo-random (``True``) or random (``False``)
            sequences.
        overlapping: include the right edge of each region.
        seed: seed of the region draws.
        **kwargs: base ``Layer`` arguments.
    """

    def __init__(self, pooling_ratio=math.sqrt(2), pseudo_random=True, overlapping=False,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        if pooling_ratio < 1.0:
            raise KCCError(f"pooling_ratio must be >= 1, got {pooling_ratio!r}")
        self.pooling_ratio = pooling_ratio
        self.pseudo_random = pseudo_random
        self.overlapping = overlapping
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def output_size(self, size):
        return int(math.floor(size / self.pooling_ratio))

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, self.output_size(height), self.output_size(width), channels)

    def boundaries(self, size, training):
        if training:
            return pooling_boundaries(size, self.output_size(size), self.pseudo_random,
                                      seed=self.seed_generator)
        return pooling_boundaries(size, self.output_size(size), True, u=0.5)

    def call(self, x, training=False):
        height, width = x.shape[1], x.shape[2]
        if height is None or width is None or min(self.output_size(height),
                                                  self.output_size(width)) < 1:
            raise KCCError(
                f"{self.name}: needs a static input of at least {self.pooling_ratio} pixels, "
                f"got {x.shape}"
            )
        rows = self.boundaries(height, training)
        cols = self.boundaries(width, training)
        return fractional_max_pool(x, rows, cols, self.overlapping)

    def get_config(self):
        return {**super().get_config(), "pooling_ratio": self.pooling_ratio,
                "pseudo_random": self.pseudo_random, "overlapping": self.overlapping,
                "seed": self.seed}


@_SERIALIZABLE
class DropPath(keras.layers.Layer):
    """Stochastic depth: drops a whole residual branch for some examples.

    Apply it to the branch ``f(x)`` of a residual block, ``x + DropPath(f(x))``.
    Training: each example's branch is kept with probability ``1 - rate``
    and then divided by ``1 - rate``; inference: identity. (Huang et al.
    keep the branch unscaled in training and multiply by the survival
    probability at test time; the expectations are equal.)

    Args:
        rate: probability of dropping the branch.
        seed: seed of the draws.
        **kwargs: base ``Layer`` arguments.
    """

    def __init__(self, rate=0.1, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = _check_rate(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=False):
        if not training or self.rate == 0:
            return x
        keep = 1.0 - self.rate
        shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
        mask = keras.random.uniform(shape, seed=self.seed_generator) < keep
        return ops.where(mask, x / keep, 0.0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


StochasticDepth = DropPath


def cutout_mask(batch, height, width, size, seed=None):
    """1 outside, 0 inside a ``size x size`` square at a uniform random centre.

    The centre may lie near the border, in which case the square is clipped
    (DeVries & Taylor, Section 3.2).

    Returns:
        float32 tensor ``(batch, height, width, 1)``.
    """
    centre_y = ops.floor(keras.random.uniform((batch, 1, 1, 1), 0, height, seed=seed))
    centre_x = ops.floor(keras.random.uniform((batch, 1, 1, 1), 0, width, seed=seed))
    rows = ops.reshape(ops.arange(height, dtype="float32"), (1, height, 1, 1))
    cols = ops.reshape(ops.arange(width, dtype="float32"), (1, 1, width, 1))
    top, left = centre_y - size // 2, centre_x - size // 2
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return 1.0 - ops.cast(inside, "float32")


@_SERIALIZABLE
class Cutout(keras.layers.Layer):
    """Zeroes one random square patch of each image during training.

    Args:
        size: side of the square patch in pixels.
        seed: seed of the patch positions.
        **kwargs: base ``Layer`` arguments.

    Call arguments:
        images: ``(batch, height, width, channels)``.
        training: apply the patch; inference returns the images unchanged.
    """

    def __init__(self, size=8, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.size = int(size)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        if not training:
            return images
        mask = cutout_mask(ops.shape(images)[0], images.shape[1], images.shape[2], self.size,
                           seed=self.seed_generator)
        return images * ops.cast(mask, images.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "size": self.size, "seed": self.seed}
