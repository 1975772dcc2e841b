"""Layers of the Vision Transformer: class token, position embedding, GELU.

Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image
Recognition at Scale", ICLR 2021, arXiv:2010.11929, equation 1: the patch
embeddings are prefixed with a learnable ``[class]`` token and a learnable
1D position embedding is added to the sequence.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_cv_course")
class ClassToken(keras.layers.Layer):
    """Prepends a learnable token: ``(batch, n, d) -> (batch, n + 1, d)``.

    The token is a ``(1, 1, d)`` weight, zero-initialised as in torchvision
    and timm. It is broadcast to the batch with ``broadcast_to``, which
    lowers to TFLite ``BROADCAST_TO`` and ONNX ``Expand``.

    Args:
        initializer: initializer of the token.
    """

    def __init__(self, initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        self.token = self.add_weight(
            shape=(1, 1, input_shape[-1]), initializer=self.initializer, name="token"
        )

    def call(self, inputs):
        batch = ops.shape(inputs)[0]
        token = ops.broadcast_to(
            ops.cast(self.token, inputs.dtype), (batch, 1, ops.shape(inputs)[-1])
        )
        return ops.concatenate([token, inputs], axis=1)

    def compute_output_shape(self, input_shape):
        length = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], length, input_shape[2])

    def get_config(self):
        return {
            **super().get_config(),
            "initializer": keras.initializers.serialize(self.initializer),
        }


@keras.saving.register_keras_serializable(package="keras_cv_course")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learnable position embedding of shape ``(1, length, d)``.

    The sequence length is fixed when the layer is built, so a ViT built for
    224x224 images only accepts 224x224 images (the paper interpolates the
    embedding to fine-tune at other resolutions; that is not done here).

    Args:
        initializer: initializer of the embedding; normal with standard
            deviation 0.02 as in torchvision and timm.
    """

    def __init__(self, initializer=None, **kwargs):
        super().__init__(**kwargs)
        if initializer is None:
            initializer = keras.initializers.RandomNormal(stddev=0.02)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        self.embedding = self.add_weight(
            shape=(1, input_shape[1], input_shape[2]),
            initializer=self.initializer,
            name="embedding",
        )

    def call(self, inputs):
        return inputs + ops.cast(self.embedding, inputs.dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "initializer": keras.initializers.serialize(self.initializer),
        }


@keras.saving.register_keras_serializable(package="keras_cv_course")
class GELU(keras.layers.Layer):
    """Gaussian error linear unit, ``x * Phi(x)`` (Hendrycks and Gimpel 2016).

    ``approximate=True`` (the default here) uses the tanh form
    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``. The exact form
    lowers to ``Erfc`` in TensorFlow, which tf2onnx cannot convert; the two
    differ by at most about 1e-3.

    Args:
        approximate: use the tanh approximation.
    """

    def __init__(self, approximate=True, **kwargs):
        super().__init__(**kwargs)
        self.approximate = bool(approximate)

    def call(self, inputs):
        return ops.gelu(inputs, approximate=self.approximate)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "approximate": self.approximate}
