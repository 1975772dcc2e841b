"""The reparameterisation trick as a layer."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_cv_course")
class GaussianSampling(keras.layers.Layer):
    """Draws ``z = mean + exp(log_var / 2) * eps`` with ``eps ~ N(0, I)``.

    Kingma and Welling, "Auto-Encoding Variational Bayes", ICLR 2014,
    arXiv:1312.6114, section 2.4. In training the draw is random; at
    inference the layer returns the mean, the expectation of the draw.

    Args:
        seed: seed of the noise.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        mean, log_var = inputs
        if not training:
            return mean
        noise = keras.random.normal(ops.shape(mean), seed=self.seed_generator, dtype=mean.dtype)
        return mean + ops.exp(0.5 * log_var) * noise

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}
