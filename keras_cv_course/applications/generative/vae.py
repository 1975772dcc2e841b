"""Convolutional variational autoencoder.

Paper: Diederik P. Kingma, Max Welling. "Auto-Encoding Variational Bayes".
ICLR 2014. arXiv:1312.6114.

The encoder maps an image ``x`` to a diagonal Gaussian ``q(z|x)`` with mean
``mu`` and log-variance ``log_var``; the reparameterisation trick samples
``z = mu + exp(log_var / 2) * eps`` with ``eps ~ N(0, I)`` so gradients reach
the encoder; the decoder maps ``z`` to Bernoulli pixel probabilities
``p(x|z)``. Training maximises the evidence lower bound, i.e. minimises

    -ELBO = E_q[-log p(x|z)] + KL(q(z|x) || N(0, I))
          = sum_pixels BCE(x, x_hat) - 1/2 sum_j (1 + log_var - mu^2 - exp(log_var)).

At inference the encoder's mean is decoded, so the reconstruction is
deterministic; ``sample(n)`` decodes draws from the prior.

Choices, named: the convolutional encoder and decoder follow the DCGAN-style
layout common in course material (strided 3x3 convolutions down, transposed
convolutions up) rather than the paper's MLP; pixels are modelled as
Bernoulli, so inputs must lie in [0, 1].
"""

import math

import keras
from keras import ops

from keras_cv_course.applications.classification.common import check_image_shape
from keras_cv_course.applications.generative.own_loss import OwnLossModel
from keras_cv_course.applications.registry import register_family
from keras_cv_course.errors import KCCError
from keras_cv_course.generative.sampling import (
    IMAGES_OUTPUT,
    LATENT_INPUT,
    LATENT_SPEC,
    Sampler,
    draw,
    keras_forward,
)
from keras_cv_course.layers.sampling import GaussianSampling

PAPER = "Kingma, Welling. Auto-Encoding Variational Bayes. ICLR 2014. arXiv:1312.6114"


def reconstruction_error(images, reconstruction):
    """Per-example ``-log p(x|z)`` under Bernoulli pixels: summed pixel BCE."""
    bce = keras.losses.binary_crossentropy(images, reconstruction)  # (batch, H, W)
    return ops.sum(ops.reshape(bce, (ops.shape(bce)[0], -1)), axis=1)


def kl_divergence(z_mean, z_log_var):
    """Per-example KL(N(mu, sigma^2) || N(0, I)), in closed form."""
    return -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=1)


@keras.saving.register_keras_serializable(package="keras_cv_course")
class NegativeELBO(keras.losses.Loss):
    """The VAE objective. ``y_pred`` is the VAE's output dictionary."""

    def __init__(self, name="negative_elbo", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return reconstruction_error(y_true, y_pred["reconstruction"]) + kl_divergence(
            y_pred["z_mean"], y_pred["z_log_var"]
        )


def encoder(image, widths, latent_dim):
    """Strided convolutions down to the Gaussian parameters of ``q(z|x)``."""
    x = image
    for index, width in enumerate(widths, start=1):
        x = keras.layers.Conv2D(width, 3, strides=2, padding="same", activation="relu",
                                name=f"encoder_conv{index}")(x)
    x = keras.layers.Flatten(name="encoder_flatten")(x)
    z_mean = keras.layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = keras.layers.Dense(latent_dim, name="z_log_var")(x)
    return z_mean, z_log_var


def decoder(image_shape, widths, latent_dim):
    """Transposed convolutions from ``z`` up to pixel probabilities: ``latent -> {"images"}``."""
    height, width, channels = image_shape
    scale = 2 ** len(widths)
    latent = keras.Input(shape=(latent_dim,), name=LATENT_INPUT)
    x = keras.layers.Dense(
        (height // scale) * (width // scale) * widths[-1], activation="relu", name="decoder_dense"
    )(latent)
    grid = (height // scale, width // scale, widths[-1])
    x = keras.layers.Reshape(grid, name="decoder_reshape")(x)
    for index, filters in enumerate(reversed(widths), start=1):
        x = keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="same", activation="relu",
                                         name=f"decoder_deconv{index}")(x)
    pixels = keras.layers.Conv2D(channels, 3, padding="same", activation="sigmoid",
                                 name="decoder_pixels")(x)
    return keras.Model(latent, {IMAGES_OUTPUT: pixels}, name="decoder")


@keras.saving.register_keras_serializable(package="keras_cv_course")
class VAE(OwnLossModel):
    """A convolutional VAE with its own training step.

    Args:
        input_shape: image shape; height and width divisible by
            ``2 ** len(widths)``.
        latent_dim: size of ``z``.
        widths: channels of the encoder's strided convolutions.
        seed: seed of the reparameterisation noise.
        name: model name.

    Example:
        >>> vae = VAE(input_shape=(16, 16, 1), latent_dim=4, widths=(8, 16))
        >>> vae.compile(optimizer="adam")
        >>> samples = vae.sample(8)  # (8, 16, 16, 1)
    """

    def __init__(self, input_shape=(28, 28, 1), latent_dim=16, widths=(32, 64), seed=None,
                 name="conv_vae", **kwargs):
        input_shape = check_image_shape(input_shape)
        scale = 2 ** len(widths)
        if input_shape[0] % scale or input_shape[1] % scale:
            raise KCCError(
                f"VAE input height and width must be divisible by {scale}, got {input_shape}"
            )
        image = keras.Input(shape=input_shape, name="images")
        z_mean, z_log_var = encoder(image, widths, latent_dim)
        z = GaussianSampling(seed=seed, name="z_sample")([z_mean, z_log_var])
        generator = decoder(input_shape, widths, latent_dim)
        outputs = {"reconstruction": generator(z)[IMAGES_OUTPUT], "z_mean": z_mean,
                   "z_log_var": z_log_var}
        super().__init__(inputs=image, outputs=outputs, name=name, **kwargs)
        self.image_shape = tuple(input_shape)
        self.latent_dim = latent_dim
        self.widths = tuple(widths)
        self.seed = seed
        self.generator = generator
        self.negative_elbo = NegativeELBO()
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_tracker = keras.metrics.Mean(name="kl_loss")
        self.bits_tracker = keras.metrics.Mean(name="bits_per_dim")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The negative ELBO; also records its two terms and the bound in bits per dimension.

        ``bits_per_dim`` is the negative ELBO divided by ``H * W * C * ln 2``: an
        upper bound on the model's negative log-likelihood per pixel, comparable
        with PixelCNN's on binarised images.
        """
        reconstruction = reconstruction_error(x, y_pred["reconstruction"])
        kl = kl_divergence(y_pred["z_mean"], y_pred["z_log_var"])
        self.reconstruction_tracker.update_state(reconstruction)
        self.kl_tracker.update_state(kl)
        dimensions = math.prod(self.image_shape)
        self.bits_tracker.update_state((reconstruction + kl) / (dimensions * math.log(2.0)))
        return self.negative_elbo(x, y_pred)

    def reconstruct(self, images):
        """Decodes the encoder's mean for ``images``: NumPy ``(n, H, W, C)`` in [0, 1]."""
        outputs = self(images, training=False)
        return keras.ops.convert_to_numpy(outputs["reconstruction"])

    @property
    def sampler(self):
        """The decoder on ``z ~ N(0, I)`` (``generative.sampling``); it is what is exported."""
        return Sampler(self.generator, "latent", {"latent_dim": self.latent_dim, "classes": None,
                                                  "image_shape": list(self.image_shape)})

    def sample(self, num_samples, seed=None):
        """Decodes ``num_samples`` draws from the prior ``N(0, I)``.

        Returns:
            NumPy array ``(num_samples, height, width, channels)`` in [0, 1].
        """
        return draw(self.sampler.record(), keras_forward(self.generator), num_samples, seed)

    def get_config(self):
        return {"input_shape": self.image_shape, "latent_dim": self.latent_dim,
                "widths": self.widths, "seed": self.seed, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def ConvVAE(**kwargs):
    return VAE(**kwargs)


VARIANTS = (
    dict(name="conv_vae", builder=ConvVAE, reference_params=None,
         params_source="no public reference for this configuration",
         full_config=dict(input_shape=(28, 28, 1), latent_dim=16, widths=(32, 64)),
         tiny_config=dict(input_shape=(16, 16, 1), latent_dim=4, widths=(4, 8)),
         description="Convolutional VAE, Bernoulli pixels"),
)

# What is served and exported is the decoder (``sampler``): latent in, images out.
register_family("vae", VARIANTS, task="generative", paper=PAPER, inputs=(LATENT_SPEC,))
