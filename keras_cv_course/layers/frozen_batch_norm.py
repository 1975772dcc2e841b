"""Frozen batch normalization: a BatchNorm whose four vectors are fixed statistics.

A detector fine-tunes its ImageNet backbone on batches of one or two large
images, far too few for batch statistics. He et al. ("Deep Residual Learning
for Image Recognition", CVPR 2016, arXiv:1512.03385, appendix A) therefore
fix BatchNorm when fine-tuning for detection: each layer becomes the affine
map ``y = gamma * (x - mean) / sqrt(variance + epsilon) + beta`` with all four
vectors taken from the pretrained network and never updated. torchvision's
detection backbones use this layer (``FrozenBatchNorm2d``) and keep the four
vectors as buffers, so they are not counted as parameters.

``FrozenBatchNormalization`` has the same weights as Keras' BatchNormalization
(``gamma``, ``beta``, ``moving_mean``, ``moving_variance``), all
non-trainable, and behaves the same in training and inference. Its class
attribute ``weights_are_statistics`` tells ``applications.parameter_count``
that none of its weights is a parameter.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_cv_course")
class FrozenBatchNormalization(keras.layers.Layer):
    """BatchNorm with fixed scale, shift, mean and variance (torchvision's FrozenBatchNorm2d).

    Args:
        epsilon: added to the variance (torchvision: 1e-5).
        **kwargs: base ``Layer`` arguments.
    """

    weights_are_statistics = True
    """Every weight is a fixed statistic, not a parameter (``parameter_count``)."""

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = (int(input_shape[-1]),)
        for name, initializer in (("gamma", "ones"), ("beta", "zeros"),
                                  ("moving_mean", "zeros"), ("moving_variance", "ones")):
            setattr(self, name, self.add_weight(shape=channels, initializer=initializer,
                                                name=name, trainable=False))

    def call(self, x):
        scale = self.gamma * ops.rsqrt(self.moving_variance + self.epsilon)
        return x * ops.cast(scale, x.dtype) + ops.cast(self.beta - self.moving_mean * scale,
                                                       x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
