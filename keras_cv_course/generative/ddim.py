"""The noise schedules of diffusion models and DDIM sampling, in NumPy alone.

Papers:
    Jonathan Ho, Ajay Jain, Pieter Abbeel. "Denoising Diffusion Probabilistic
    Models". NeurIPS 2020. arXiv:2006.11239 (the linear schedule).

    Alex Nichol, Prafulla Dhariwal. "Improved Denoising Diffusion
    Probabilistic Models". ICML 2021. arXiv:2102.09672 (the cosine schedule).

    Jiaming Song, Chenlin Meng, Stefano Ermon. "Denoising Diffusion Implicit
    Models". ICLR 2021. arXiv:2010.02502 (DDIM).

The sampler walks down a sub-sequence ``tau_S > ... > tau_1`` of the timesteps:

    x0_hat = (x_t - sqrt(1 - abar_t) eps_theta) / sqrt(abar_t)
    x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps_theta + sigma z
    sigma  = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev)

It runs around any callable ``(noisy_images, timesteps) -> predicted noise``:
the Keras denoiser, or a TFLite interpreter or ONNX session on a device.
This module imports NumPy only, so it runs where TensorFlow and Keras do not.
"""

import math

import numpy as np

from keras_cv_course.errors import KCCError

SCHEDULES = ("linear", "cosine")
NOISE_OUTPUT = "predicted_noise"


# -- the noise schedule (NumPy, float64) ------------------------------------------------------

def linear_betas(timesteps=1000, beta_start=1e-4, beta_end=0.02):
    """DDPM's schedule: ``beta`` linear from ``beta_start`` to ``beta_end``."""
    return np.linspace(beta_start, beta_end, int(timesteps), dtype="float64")


def cosine_betas(timesteps=1000, offset=0.008, max_beta=0.999):
    """Nichol and Dhariwal's schedule: ``abar(t) = f(t) / f(0)``, ``f = cos^2``.

    ``f(t) = cos(((t / T + s) / (1 + s)) * pi / 2) ** 2``; the betas
    ``1 - abar_t / abar_{t-1}`` are clipped at ``max_beta`` so the last steps
    stay finite.
    """
    steps = np.arange(int(timesteps) + 1, dtype="float64") / int(timesteps)
    f = np.cos((steps + offset) / (1.0 + offset) * math.pi / 2.0) ** 2
    return np.clip(1.0 - f[1:] / f[:-1], 0.0, max_beta)


class NoiseSchedule:
    """The betas of a schedule and the quantities derived from them.

    Attributes:
        betas: ``(T,)`` the variances ``beta_t``.
        alphas: ``1 - betas``.
        alphas_cumprod: ``abar_t``, decreasing in ``(0, 1)``.
        timesteps: ``T``.

    Example:
        >>> schedule = NoiseSchedule("cosine", timesteps=1000)
        >>> schedule.alphas_cumprod[0]  # close to 1
    """

    def __init__(self, name="linear", timesteps=1000, beta_start=1e-4, beta_end=0.02):
        if name not in SCHEDULES:
            raise KCCError(f"noise schedule must be one of {', '.join(SCHEDULES)}, got {name!r}")
        if int(timesteps) < 2:
            raise KCCError(f"diffusion timesteps must be at least 2, got {timesteps!r}")
        if name == "linear" and not 0.0 < beta_start <= beta_end < 1.0:
            raise KCCError(f"linear schedule needs 0 < beta_start <= beta_end < 1, got "
                           f"{beta_start!r}, {beta_end!r}")
        self.name, self.timesteps = name, int(timesteps)
        self.beta_start, self.beta_end = float(beta_start), float(beta_end)
        if name == "linear":
            self.betas = linear_betas(timesteps, beta_start, beta_end)
        else:
            self.betas = cosine_betas(timesteps)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = np.cumprod(self.alphas)

    def q_sample(self, x0, t, noise):
        """``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise``, in NumPy (``t`` per example)."""
        abar = self.alphas_cumprod[np.asarray(t)].reshape((-1,) + (1,) * (np.ndim(x0) - 1))
        return np.sqrt(abar) * x0 + np.sqrt(1.0 - abar) * noise

    def get_config(self):
        return {"schedule": self.name, "timesteps": self.timesteps,
                "beta_start": self.beta_start, "beta_end": self.beta_end}


def ddim_timesteps(timesteps, steps):
    """``steps`` evenly spaced indices in ``[0, T - 1]``, increasing, without repeats."""
    if not 1 <= int(steps) <= int(timesteps):
        raise KCCError(f"DDIM steps must be in [1, {timesteps}], got {steps!r}")
    return np.unique(np.round(np.linspace(0, int(timesteps) - 1, int(steps))).astype("int64"))


# -- DDIM sampling, with any denoiser ---------------------------------------------------------

def ddim_step(x, predicted_noise, abar, abar_prev, eta=0.0, z=None, clip=True):
    """One DDIM update ``x_t -> x_prev`` (NumPy); see the module docstring.

    Returns:
        ``(x_prev, x0_hat)``.
    """
    x0_hat = (x - np.sqrt(1.0 - abar) * predicted_noise) / np.sqrt(abar)
    if clip:
        x0_hat = np.clip(x0_hat, -1.0, 1.0)
        predicted_noise = (x - np.sqrt(abar) * x0_hat) / np.sqrt(1.0 - abar)
    sigma = eta * np.sqrt((1.0 - abar_prev) / (1.0 - abar)) * np.sqrt(1.0 - abar / abar_prev)
    direction = np.sqrt(np.maximum(1.0 - abar_prev - sigma ** 2, 0.0)) * predicted_noise
    x_prev = np.sqrt(abar_prev) * x0_hat + direction
    if eta > 0 and z is not None:
        x_prev = x_prev + sigma * z
    return x_prev, x0_hat


def ddim_sample(denoise, num_samples, image_shape, schedule, steps=50, seed=None, eta=0.0,
                clip=True, timestep_dtype="float32"):
    """Samples images with DDIM around any noise predictor.

    Args:
        denoise: callable ``(noisy_images (n, H, W, C) float32, timesteps (n,))
            -> predicted noise`` (an array, or a dict holding it as
            ``"predicted_noise"``): the Keras denoiser through
            ``sampling.keras_forward``, or a TFLite
            interpreter or ONNX session wrapped in a function.
        num_samples: ``n``.
        image_shape: ``(H, W, C)``.
        schedule: a ``NoiseSchedule``.
        steps: length of the timestep sub-sequence.
        seed: NumPy seed (or ``numpy.random.Generator``) of ``x_T`` (and of
            the noise when ``eta > 0``).
        eta: 0 for deterministic DDIM, 1 for DDPM-like ancestral sampling.
        clip: clip the predicted ``x_0`` to [-1, 1] at every step.
        timestep_dtype: dtype of the timesteps handed to ``denoise``.

    Returns:
        float32 images ``(n, H, W, C)`` in [0, 1].

    Example:
        >>> denoiser = keras_forward(model.denoiser)
        >>> images = ddim_sample(lambda x, t: denoiser({"noisy_images": x, "timesteps": t}),
        ...                      16, (16, 16, 1),
        ...                      model.noise_schedule, steps=50, seed=0)
    """
    if eta < 0:
        raise KCCError(f"DDIM eta must be >= 0, got {eta!r}")
    rng = np.random.default_rng(seed)
    shape = (int(num_samples),) + tuple(int(d) for d in image_shape)
    x = rng.standard_normal(shape)  # x_T, float64 throughout the update
    sequence = ddim_timesteps(schedule.timesteps, steps)
    abars = schedule.alphas_cumprod
    for index in range(len(sequence) - 1, -1, -1):
        t = int(sequence[index])
        abar_prev = abars[sequence[index - 1]] if index > 0 else 1.0
        predicted = denoise(x.astype("float32"), np.full((shape[0],), t, dtype=timestep_dtype))
        predicted = predicted[NOISE_OUTPUT] if isinstance(predicted, dict) else predicted
        z = rng.standard_normal(shape) if eta > 0 else None
        x, _ = ddim_step(x, np.asarray(predicted, "float64"), abars[t], abar_prev, eta, z, clip)
    return np.clip((x + 1.0) / 2.0, 0.0, 1.0).astype("float32")
