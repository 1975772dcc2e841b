"""Initializers with a closed form that the course derives."""

import keras
import numpy as np

from keras_cv_course.errors import KCCError


@keras.saving.register_keras_serializable(package="keras_cv_course")
class BilinearUpsampling(keras.initializers.Initializer):
    """Initialises a transposed convolution to bilinear interpolation.

    Used by FCN (Long et al., CVPR 2015) for its learned x2 upsampling: each
    output channel copies its own input channel through a separable tent
    filter, so training starts from plain bilinear upsampling.
    """

    def __call__(self, shape, dtype=None):
        size, _, out_channels, in_channels = shape
        if out_channels != in_channels:
            raise ValueError(
                f"bilinear upsampling needs equal input and output channels, got {shape}"
            )
        factor = (size + 1) // 2
        center = factor - 1 if size % 2 == 1 else factor - 0.5
        tent = 1 - np.abs(np.arange(size) - center) / factor
        kernel = np.zeros(shape, dtype="float32")
        for channel in range(out_channels):
            kernel[:, :, channel, channel] = np.outer(tent, tent)
        return keras.ops.convert_to_tensor(kernel, dtype=dtype or "float32")


def fans(shape):
    """``(fan_in, fan_out)`` of a Dense kernel ``(in, out)`` or a conv kernel
    ``(*window, in_channels, out_channels)``: each input (output) unit sees
    ``window_size * in_channels`` (``window_size * out_channels``) weights."""
    if len(shape) < 2:
        size = int(np.prod(shape)) if shape else 1
        return size, size
    receptive_field = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive_field, shape[-1] * receptive_field


class _ScaledInitializer(keras.initializers.Initializer):
    """Draws from a zero-mean distribution whose variance the subclass sets."""

    def __init__(self, distribution="normal", seed=None):
        if distribution not in ("normal", "uniform"):
            raise KCCError(f"distribution must be 'normal' or 'uniform', got {distribution!r}")
        self.distribution = distribution
        self.seed = seed

    def variance(self, shape):
        raise NotImplementedError

    def __call__(self, shape, dtype=None):
        std = float(np.sqrt(self.variance(tuple(shape))))
        dtype = dtype or "float32"
        if self.distribution == "normal":
            return keras.random.normal(shape, stddev=std, dtype=dtype, seed=self.seed)
        limit = std * np.sqrt(3.0)  # U(-l, l) has variance l^2 / 3
        return keras.random.uniform(shape, -limit, limit, dtype=dtype, seed=self.seed)

    def get_config(self):
        return {"distribution": self.distribution, "seed": self.seed}


@keras.saving.register_keras_serializable(package="keras_cv_course")
class XavierInit(_ScaledInitializer):
    """Xavier/Glorot initialisation: ``Var(w) = 2 / (fan_in + fan_out)``.

    Keeps the variance of activations (forward) and of gradients (backward)
    roughly constant through linear or tanh layers, compromising between
    ``1 / fan_in`` and ``1 / fan_out``. Glorot & Bengio, "Understanding the
    difficulty of training deep feedforward neural networks", AISTATS 2010.

    Args:
        distribution: ``"normal"`` (untruncated, unlike Keras' GlorotNormal) or
            ``"uniform"`` (equal to Keras' GlorotUniform).
        seed: random seed.
    """

    def variance(self, shape):
        fan_in, fan_out = fans(shape)
        return 2.0 / (fan_in + fan_out)


@keras.saving.register_keras_serializable(package="keras_cv_course")
class KaimingInit(_ScaledInitializer):
    """Kaiming/He initialisation: ``Var(w) = 2 / ((1 + a^2) fan_in)``.

    A ReLU zeroes half of its inputs, halving the second moment, so the
    weights need twice Xavier's ``1 / fan_in`` to keep activations from
    shrinking layer after layer. ``negative_slope`` ``a`` generalises this to
    Leaky ReLU. He, Zhang, Ren, Sun, "Delving Deep into Rectifiers",
    ICCV 2015, arXiv:1502.01852.

    Args:
        distribution: ``"normal"`` or ``"uniform"``.
        negative_slope: Leaky ReLU slope ``a`` (0 for ReLU).
        seed: random seed.
    """

    def __init__(self, distribution="normal", negative_slope=0.0, seed=None):
        super().__init__(distribution=distribution, seed=seed)
        self.negative_slope = negative_slope

    def variance(self, shape):
        fan_in, _ = fans(shape)
        return 2.0 / ((1.0 + self.negative_slope**2) * fan_in)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}
