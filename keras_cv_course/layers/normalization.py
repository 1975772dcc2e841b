"""Normalization layers written out: batch, layer, group and instance norm.

All four compute ``y = gamma * (x - mean) / sqrt(var + eps) + beta``; they
differ only in *which* entries share a mean and variance. For an image batch
``(N, H, W, C)``:

==============  ===================================  ============================
layer           statistics over                      paper
==============  ===================================  ============================
BatchNorm       N, H, W (one pair per channel)       Ioffe & Szegedy, ICML 2015,
                                                     arXiv:1502.03167
LayerNorm       the feature axis (per example)       Ba, Kiros, Hinton, 2016,
                                                     arXiv:1607.06450
GroupNorm       H, W and C/G channels of a group     Wu & He, ECCV 2018,
                                                     arXiv:1803.08494
InstanceNorm    H, W (per example and channel)       Ulyanov, Vedaldi, Lempitsky,
                                                     2016, arXiv:1607.08022
==============  ===================================  ============================

Only BatchNorm depends on the batch, so only it behaves differently at
inference: there it uses running averages of the training statistics,
``moving = momentum * moving + (1 - momentum) * batch_stat``. The variance is
the biased (divide-by-n) one, as in Keras. Defaults (``epsilon=1e-3``,
``momentum=0.99``) equal Keras', and ``tests/test_normalization.py`` checks
that each layer equals its Keras counterpart in training and inference mode.
"""

import keras
from keras import ops

from keras_cv_course.errors import KCCError

_SERIALIZABLE = keras.saving.register_keras_serializable(package="keras_cv_course")


def normalize(x, mean, variance, epsilon):
    """``(x - mean) / sqrt(variance + epsilon)``."""
    return (x - mean) * ops.rsqrt(variance + epsilon)


class _AffineNorm(keras.layers.Layer):
    """A normalization with a learned per-channel scale ``gamma`` and shift ``beta``."""

    def __init__(self, epsilon=1e-3, center=True, scale=True, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon
        self.center = center
        self.scale = scale

    def build_affine(self, channels):
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", name="gamma",
                                     trainable=True) if self.scale else None
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", name="beta",
                                    trainable=True) if self.center else None

    def affine(self, x):
        if self.gamma is not None:
            x = x * self.gamma
        if self.beta is not None:
            x = x + self.beta
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale}


@_SERIALIZABLE
class BatchNorm(_AffineNorm):
    """Batch normalization over every axis except the last (channels).

    Args:
        momentum: weight of the old value in the running averages.
        epsilon: added to the variance.
        center: learn ``beta``.
        scale: learn ``gamma``.
        **kwargs: base ``Layer`` arguments.

    Call arguments:
        training: ``True`` normalises with the batch's statistics and updates
            the running averages; ``False`` uses the running averages.
    """

    def __init__(self, momentum=0.99, epsilon=1e-3, center=True, scale=True, **kwargs):
        super().__init__(epsilon=epsilon, center=center, scale=scale, **kwargs)
        self.momentum = momentum

    def build(self, input_shape):
        channels = input_shape[-1]
        self.build_affine(channels)
        self.moving_mean = self.add_weight(shape=(channels,), initializer="zeros",
                                           name="moving_mean", trainable=False)
        self.moving_variance = self.add_weight(shape=(channels,), initializer="ones",
                                               name="moving_variance", trainable=False)

    def call(self, x, training=False):
        if training:
            axes = tuple(range(len(x.shape) - 1))
            mean, variance = ops.moments(x, axes=axes)
            self.moving_mean.assign(
                self.momentum * self.moving_mean + (1.0 - self.momentum) * mean)
            self.moving_variance.assign(
                self.momentum * self.moving_variance + (1.0 - self.momentum) * variance)
        else:
            mean, variance = self.moving_mean, self.moving_variance
        return self.affine(normalize(x, mean, variance, self.epsilon))

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum}


@_SERIALIZABLE
class LayerNorm(_AffineNorm):
    """Layer normalization: each example's features share one mean and variance.

    Args:
        epsilon, center, scale: as in ``BatchNorm``.
        **kwargs: base ``Layer`` arguments.
    """

    def build(self, input_shape):
        self.build_affine(input_shape[-1])

    def call(self, x):
        mean, variance = ops.moments(x, axes=(-1,), keepdims=True)
        return self.affine(normalize(x, mean, variance, self.epsilon))


@_SERIALIZABLE
class GroupNorm(_AffineNorm):
    """Group normalization: channels split into ``groups`` groups, each with its own
    statistics per example (over the spatial axes and the group's channels).

    ``groups=1`` is LayerNorm over ``(H, W, C)``; ``groups=C`` is InstanceNorm.

    Args:
        groups: number of groups; must divide the channel count.
        epsilon, center, scale: as in ``BatchNorm``.
        **kwargs: base ``Layer`` arguments.
    """

    def __init__(self, groups=32, epsilon=1e-3, center=True, scale=True, **kwargs):
        super().__init__(epsilon=epsilon, center=center, scale=scale, **kwargs)
        self.groups = groups

    def _groups(self, channels):
        return self.groups

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels % self._groups(channels):
            raise KCCError(
                f"{self.name}: groups must divide the channels, got groups="
                f"{self._groups(channels)} for {channels} channels"
            )
        self.build_affine(channels)

    def call(self, x):
        channels = x.shape[-1]
        groups = self._groups(channels)
        grouped = ops.reshape(x, (ops.shape(x)[0], -1, groups, channels // groups))
        mean, variance = ops.moments(grouped, axes=(1, 3), keepdims=True)
        normalized = ops.reshape(normalize(grouped, mean, variance, self.epsilon), ops.shape(x))
        return self.affine(normalized)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}


@_SERIALIZABLE
class InstanceNorm(GroupNorm):
    """Instance normalization: one mean and variance per example and channel.

    Args:
        epsilon, center, scale: as in ``BatchNorm``.
        **kwargs: base ``Layer`` arguments.
    """

    def __init__(self, epsilon=1e-3, center=True, scale=True, **kwargs):
        kwargs.pop("groups", None)
        super().__init__(groups=None, epsilon=epsilon, center=center, scale=scale, **kwargs)

    def _groups(self, channels):
        return channels

    def get_config(self):
        config = super().get_config()
        config.pop("groups")
        return config
