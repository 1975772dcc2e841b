"""Convolution layers that every export path can carry.

``GroupedConv2D`` is ``keras.layers.Conv2D(groups=g)`` with the same weights
and config, computed so that it exports. Why it exists: Keras' TensorFlow
backend runs a grouped convolution inside a nested XLA-compiled
``tf.function`` (TensorFlow's CPU kernel cannot do grouped convolutions).
That nested function converts to TFLite, but tf2onnx leaves it as an
unconvertible ``StatefulPartitionedCall`` node, so the ONNX file is broken.
Under the TensorFlow backend this layer therefore splits the channels into
``groups`` slices, convolves each slice with its slice of the kernel and
concatenates the results (ONNX ``Split``/``Conv``/``Concat``; TFLite
``SPLIT``/``CONV_2D``/``CONCATENATION``). Under JAX and PyTorch, which have
native grouped convolutions, it calls ``keras.ops.conv`` unchanged. The
outputs are the same either way.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_cv_course")
class GroupedConv2D(keras.layers.Conv2D):
    """A 2D convolution whose ``groups`` are computed as a split and a concat.

    Takes the arguments of ``keras.layers.Conv2D``; its kernel has shape
    ``(kh, kw, in_channels // groups, filters)``, exactly as ``Conv2D``'s, so
    weights move between the two unchanged.

    Example:
        >>> layer = GroupedConv2D(64, 3, groups=32, padding="same", use_bias=False)
    """

    def convolution_op(self, inputs, kernel):
        if self.groups == 1 or keras.backend.backend() != "tensorflow":
            return super().convolution_op(inputs, kernel)
        axis = -1 if self.data_format == "channels_last" else 1
        input_slices = ops.split(inputs, self.groups, axis=axis)
        kernel_slices = ops.split(kernel, self.groups, axis=-1)
        outputs = [
            ops.conv(
                part, part_kernel, strides=list(self.strides), padding=self.padding,
                dilation_rate=self.dilation_rate, data_format=self.data_format,
            )
            for part, part_kernel in zip(input_slices, kernel_slices, strict=True)
        ]
        return ops.concatenate(outputs, axis=axis)
