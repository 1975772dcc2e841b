"""Initializers with a closed form that the course derives."""

import keras
import numpy as np


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
