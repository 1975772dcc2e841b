"""A small denoising diffusion model: DDPM training, DDIM sampling, a UNet denoiser.

Papers:
    Jonathan Ho, Ajay Jain, Pieter Abbeel. "Denoising Diffusion Probabilistic
    Models". NeurIPS 2020. arXiv:2006.11239 (DDPM: the forward process, the
    linear schedule, the noise-prediction loss).

    Jiaming Song, Chenlin Meng, Stefano Ermon. "Denoising Diffusion Implicit
    Models". ICLR 2021. arXiv:2010.02502 (DDIM: sampling on a sub-sequence of
    the timesteps, deterministic at ``eta = 0``).

    Alex Nichol, Prafulla Dhariwal. "Improved Denoising Diffusion Probabilistic
    Models". ICML 2021. arXiv:2102.09672 (the cosine schedule).

    Olaf Ronneberger, Philipp Fischer, Thomas Brox. "U-Net: Convolutional
    Networks for Biomedical Image Segmentation". MICCAI 2015. arXiv:1505.04597
    (the denoiser's encoder-decoder with skip connections).

    Ashish Vaswani et al. "Attention Is All You Need". NeurIPS 2017.
    arXiv:1706.03762 (the sinusoidal embedding, here of the timestep).

The forward process adds Gaussian noise in ``T`` steps with variances
``beta_1 .. beta_T``; with ``abar_t = prod_{s<=t} (1 - beta_s)`` it has the
closed form

    q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I),
    x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps,   eps ~ N(0, I).

Training (DDPM's simplified objective) draws ``t`` uniformly and ``eps``, and
regresses the denoiser's ``eps_theta(x_t, t)`` on ``eps`` with the mean
squared error; a network that predicts zero scores ``E[eps^2] = 1``.

Sampling (DDIM) starts from ``x_T ~ N(0, I)`` and walks down a sub-sequence
``tau_S > ... > tau_1`` of the timesteps:

    x0_hat = (x_t - sqrt(1 - abar_t) eps_theta) / sqrt(abar_t)
    x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps_theta + sigma z
    sigma  = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev)

``eta = 0`` is deterministic given ``x_T``; ``eta = 1`` is DDPM's ancestral
sampler on the sub-sequence. The sampler (``generative.ddim.ddim_sample``) is NumPy around any
callable ``(noisy_images, timesteps) -> predicted noise``: the Keras denoiser,
or a TFLite interpreter or ONNX session wrapped in a function.

Variants (the tiny config is in ``VARIANTS``):

    ========= ======== ===== ========= ======== ========= ===============
    name      widths   depth embedding attention schedule  input
    ========= ======== ===== ========= ======== ========= ===============
    ddpm_unet 32, 64   1     64        yes       linear    16x16x1, T=1000
    ========= ======== ===== ========= ======== ========= ===============

Choices, named: timestep indices run ``0 .. T-1`` (the paper's ``t = 1 .. T``)
and the denoiser sees the index as a float; images in [0, 1] are scaled to
[-1, 1] inside; the sampler clips ``x0_hat`` to [-1, 1] (and recomputes the
noise from it) unless ``clip=False``; the DDIM sub-sequence is ``steps``
evenly spaced indices from ``T - 1`` down to 0.
"""


import keras
import numpy as np
from keras import ops

from keras_cv_course.applications.classification.common import check_image_shape
from keras_cv_course.applications.registry import register_family
from keras_cv_course.errors import KCCError
from keras_cv_course.generative.ddim import NOISE_OUTPUT, NoiseSchedule
from keras_cv_course.generative.sampling import Sampler, draw, keras_forward
from keras_cv_course.losses import replica_share
from keras_cv_course.specs import TensorSpec

DDPM_PAPER = ("Ho, Jain, Abbeel. Denoising Diffusion Probabilistic Models. NeurIPS 2020. "
              "arXiv:2006.11239")
DDIM_PAPER = ("Song, Meng, Ermon. Denoising Diffusion Implicit Models. ICLR 2021. "
              "arXiv:2010.02502")
DEFAULT_STEPS = 50


# -- the denoiser's layers and blocks ---------------------------------------------------------

@keras.saving.register_keras_serializable(package="keras_cv_course")
class SinusoidalEmbedding(keras.layers.Layer):
    """Timesteps ``(batch,)`` -> ``(batch, dim)``: ``[sin(t w_k), cos(t w_k)]``.

    The frequencies ``w_k = max_period ** (-k / (dim / 2))`` are geometric, as
    in the Transformer's position encoding.
    """

    def __init__(self, dim, max_period=10000.0, **kwargs):
        super().__init__(**kwargs)
        if int(dim) < 2 or int(dim) % 2:
            raise KCCError(f"timestep embedding dim must be a positive even int, got {dim!r}")
        self.dim, self.max_period = int(dim), float(max_period)

    def call(self, timesteps):
        half = self.dim // 2
        exponents = np.arange(half, dtype="float32") / half
        frequencies = ops.convert_to_tensor(self.max_period ** -exponents, dtype="float32")
        t = ops.reshape(ops.cast(timesteps, "float32"), (-1, 1))
        angles = t * ops.expand_dims(frequencies, 0)  # (batch, half)
        return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dim)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "max_period": self.max_period}


def norm_act(x, groups, name):
    """GroupNorm then SiLU."""
    x = keras.layers.GroupNormalization(groups, epsilon=1e-5, name=f"{name}_norm")(x)
    return keras.layers.Activation("silu", name=f"{name}_silu")(x)


def residual_block(x, embedding, filters, groups, name):
    """(norm, SiLU, conv) twice, the timestep's projection added in between."""
    h = norm_act(x, groups, f"{name}_1")
    h = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_1_conv")(h)
    bias = keras.layers.Dense(filters, name=f"{name}_time")(embedding)
    bias = keras.layers.Reshape((1, 1, filters), name=f"{name}_time_reshape")(bias)
    h = keras.layers.Add(name=f"{name}_time_add")([h, bias])
    h = norm_act(h, groups, f"{name}_2")
    h = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_2_conv")(h)
    if x.shape[-1] != filters:
        x = keras.layers.Conv2D(filters, 1, name=f"{name}_skip")(x)
    return keras.layers.Add(name=f"{name}_add")([x, h])


def attention_block(x, groups, heads, name):
    """Self-attention over the ``H * W`` positions, residual."""
    height, width, channels = x.shape[1:]
    h = keras.layers.GroupNormalization(groups, epsilon=1e-5, name=f"{name}_norm")(x)
    h = keras.layers.Reshape((height * width, channels), name=f"{name}_flatten")(h)
    h = keras.layers.MultiHeadAttention(heads, channels // heads, name=f"{name}_mha")(h, h)
    h = keras.layers.Reshape((height, width, channels), name=f"{name}_unflatten")(h)
    return keras.layers.Add(name=f"{name}_add")([x, h])


def time_embedding(timesteps, dim):
    """Sinusoidal embedding, then a two-layer MLP: ``(batch,)`` -> ``(batch, 4 dim)``."""
    e = SinusoidalEmbedding(dim, name="time_sinusoidal")(timesteps)
    e = keras.layers.Dense(4 * dim, activation="silu", name="time_dense1")(e)
    return keras.layers.Dense(4 * dim, name="time_dense2")(e)


def build_denoiser(image_shape=(16, 16, 1), widths=(32, 64), depth=1, embedding_dim=64,
                   groups=8, attention=True, heads=4, name="denoiser"):
    """The UNet ``(noisy_images, timesteps) -> {"predicted_noise"}``, two resolutions.

    Args:
        image_shape: ``(H, W, C)``; ``H`` and ``W`` even.
        widths: channels at full and half resolution.
        depth: residual blocks per resolution on the way down (one more up).
        embedding_dim: size of the sinusoidal embedding (the MLP is 4x).
        groups: GroupNorm groups; divides both widths.
        attention: self-attention at the half resolution.
        heads: attention heads; divides ``widths[1]``.
        name: model name.

    Returns:
        A functional ``keras.Model`` with inputs ``noisy_images`` ``(H, W, C)``
        and ``timesteps`` ``()`` (float32; ints are cast), and the output dict
        ``{"predicted_noise": (H, W, C)}``.
    """
    image_shape = check_image_shape(image_shape)
    height, width, channels = image_shape
    _check_denoiser(image_shape, widths, depth, groups, attention, heads)
    noisy = keras.Input(shape=image_shape, name="noisy_images")
    timesteps = keras.Input(shape=(), name="timesteps")
    embedding = time_embedding(timesteps, embedding_dim)
    x = keras.layers.Conv2D(widths[0], 3, padding="same", name="stem_conv")(noisy)
    skips = [x]
    for index in range(1, depth + 1):
        x = residual_block(x, embedding, widths[0], groups, f"down1_block{index}")
        skips.append(x)
    x = keras.layers.Conv2D(widths[1], 3, strides=2, padding="same", name="down2_conv")(x)
    for index in range(1, depth + 1):  # (H / 2, W / 2, widths[1])
        x = residual_block(x, embedding, widths[1], groups, f"down2_block{index}")
    if attention:
        x = attention_block(x, groups, heads, "mid_attention")
    x = residual_block(x, embedding, widths[1], groups, "mid_block")
    x = keras.layers.UpSampling2D(2, interpolation="nearest", name="up1_upsample")(x)
    x = keras.layers.Conv2D(widths[0], 3, padding="same", name="up1_conv")(x)
    for index in range(1, depth + 2):  # (H, W, widths[0]), one skip per block
        x = keras.layers.Concatenate(name=f"up1_block{index}_concat")([x, skips.pop()])
        x = residual_block(x, embedding, widths[0], groups, f"up1_block{index}")
    x = norm_act(x, groups, "head")
    noise = keras.layers.Conv2D(channels, 3, padding="same", name=NOISE_OUTPUT)(x)
    return keras.Model({"noisy_images": noisy, "timesteps": timesteps},
                       {NOISE_OUTPUT: noise}, name=name)


def _check_denoiser(image_shape, widths, depth, groups, attention, heads):
    if None in image_shape or image_shape[0] % 2 or image_shape[1] % 2:
        raise KCCError(f"diffusion needs a fixed image shape with even height and width, "
                       f"got {image_shape}")
    if len(widths) != 2 or any(int(w) % int(groups) for w in widths):
        raise KCCError(f"widths must be two ints divisible by groups={groups}, got {widths!r}")
    if int(depth) < 1:
        raise KCCError(f"depth must be a positive int, got {depth!r}")
    if attention and int(widths[1]) % int(heads):
        raise KCCError(f"heads must divide widths[1]={widths[1]}, got heads={heads!r}")


# -- the model --------------------------------------------------------------------------------

def noise_prediction_loss(noise, predicted_noise):
    """DDPM's simplified loss: the mean squared error over every number."""
    return ops.mean(ops.square(ops.cast(noise, "float32") - ops.cast(predicted_noise, "float32")))


@keras.saving.register_keras_serializable(package="keras_cv_course")
class Diffusion(keras.Model):
    """A DDPM-trained UNet denoiser with a DDIM sampler.

    Calling the model on images in [0, 1] draws ``t`` and ``eps``, noises the
    images and predicts the noise; ``compute_loss`` is the MSE, so
    ``model.fit(images)`` trains it on any backend. ``self.denoiser`` is
    the functional UNet to export (its timestep is an input).

    Args:
        input_shape: image shape ``(H, W, C)``, ``H`` and ``W`` even.
        widths, depth, embedding_dim, groups, attention, heads: the UNet's
            (see ``build_denoiser``).
        schedule: ``"linear"`` (DDPM) or ``"cosine"`` (Nichol and Dhariwal).
        timesteps: ``T``.
        beta_start, beta_end: the linear schedule's end points.
        seed: seed of the training noise and timesteps.
        name: model name.

    Example:
        >>> model = Diffusion(input_shape=(16, 16, 1), widths=(4, 8), embedding_dim=4,
        ...                   groups=2, attention=False)
        >>> model.compile(optimizer="adam")
        >>> model.fit(images, epochs=1)  # images in [0, 1]
        >>> samples = model.sample(8, steps=20, seed=0)  # (8, 16, 16, 1) in [0, 1]
    """

    def __init__(self, input_shape=(16, 16, 1), widths=(32, 64), depth=1, embedding_dim=64,
                 groups=8, attention=True, heads=4, schedule="linear", timesteps=1000,
                 beta_start=1e-4, beta_end=0.02, seed=None, name="ddpm_unet", **kwargs):
        super().__init__(name=name, **kwargs)
        self.noise_schedule = NoiseSchedule(schedule, timesteps, beta_start, beta_end)
        self.denoiser = build_denoiser(input_shape, tuple(widths), int(depth), int(embedding_dim),
                                       int(groups), bool(attention), int(heads))
        self.image_shape = tuple(self.denoiser.inputs[0].shape[1:])
        self.widths, self.depth, self.embedding_dim = tuple(widths), int(depth), int(embedding_dim)
        self.groups, self.attention, self.heads = int(groups), bool(attention), int(heads)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="noise_seed")
        self.built = True

    @property
    def timesteps(self):
        return self.noise_schedule.timesteps

    def call(self, images, training=None):
        """Noises ``images`` in [0, 1] at random timesteps and predicts the noise.

        Returns:
            dict: ``predicted_noise`` and ``noise`` ``(batch, H, W, C)``,
            ``noisy_images`` (in the [-1, 1] scale) and ``timesteps`` ``(batch,)``.
        """
        x0 = ops.cast(images, "float32") * 2.0 - 1.0
        batch = ops.shape(x0)[0]
        t = keras.random.randint((batch,), 0, self.timesteps, seed=self.seed_generator)
        noise = keras.random.normal(ops.shape(x0), seed=self.seed_generator)
        abar = ops.take(ops.convert_to_tensor(self.noise_schedule.alphas_cumprod, "float32"), t)
        abar = ops.reshape(abar, (-1, 1, 1, 1))
        noisy = ops.sqrt(abar) * x0 + ops.sqrt(1.0 - abar) * noise
        t = ops.cast(t, "float32")
        predicted = self.denoiser({"noisy_images": noisy, "timesteps": t}, training=training)
        return {NOISE_OUTPUT: predicted[NOISE_OUTPUT], "noise": noise, "noisy_images": noisy,
                "timesteps": t}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The noise-prediction MSE (``y`` is ignored: the data are images alone)."""
        if y_pred is None:
            y_pred = self(x, training=training)
        return replica_share(noise_prediction_loss(y_pred["noise"], y_pred[NOISE_OUTPUT]))

    @property
    def sampler(self):
        """DDIM around the denoiser (``generative.sampling``); 50 steps unless told."""
        return Sampler(self.denoiser, "ddim", {"image_shape": list(self.image_shape),
                                               **self.noise_schedule.get_config(),
                                               "steps": DEFAULT_STEPS})

    def sample(self, num_samples, steps=DEFAULT_STEPS, seed=None, eta=0.0):
        """DDIM samples: ``(num_samples, H, W, C)`` float32 in [0, 1]."""
        return draw(self.sampler.record(), keras_forward(self.denoiser), num_samples, seed,
                    steps=steps, eta=eta)

    def get_config(self):
        return {"input_shape": self.image_shape, "widths": self.widths, "depth": self.depth,
                "embedding_dim": self.embedding_dim, "groups": self.groups,
                "attention": self.attention, "heads": self.heads,
                **self.noise_schedule.get_config(), "seed": self.seed, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


# -- variants ---------------------------------------------------------------------------------

def DDPMUNet(**kwargs):
    return Diffusion(**{"name": "ddpm_unet", **kwargs})


TINY = dict(input_shape=(16, 16, 1), widths=(4, 8), depth=1, embedding_dim=4, groups=2,
            attention=False, timesteps=1000)
SERVED_INPUTS = (
    TensorSpec("noisy_images", ("height", "width", "channels"), "float32",
               "x_t, in the [-1, 1] scale"),
    TensorSpec("timesteps", (), "float32", "the timestep index t of each image"),
)
SERVED_OUTPUTS = (TensorSpec(NOISE_OUTPUT, ("height", "width", "channels"), "float32",
                             "the predicted noise eps_theta(x_t, t)"),)
VARIANTS = (
    dict(name="ddpm_unet", builder=DDPMUNet, paper=DDPM_PAPER,
         full_config=dict(input_shape=(16, 16, 1), widths=(32, 64), depth=1, embedding_dim=64,
                          groups=8, attention=True, heads=4),
         tiny_config=TINY, description="DDPM-trained UNet denoiser, DDIM sampling"),
)

# What is served and exported is the denoiser (``sampler``); DDIM runs around it.
register_family("diffusion", VARIANTS, task="generative", reference_params=None,
                params_source="no public reference for this configuration",
                inputs=SERVED_INPUTS, outputs=SERVED_OUTPUTS)
