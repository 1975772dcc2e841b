# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Generative models: PixelCNN, GANs and diffusion
# Lecture: Generative models: PixelCNN, GANs and diffusion
#
# Tasks: generative, conditional_generative
#
# **The question.** A classifier learns `p(y|x)`; a generative model learns `p(x)` itself,
# so that it can score an image or draw a new one. The VAE (tutorial 08) bounds `log p(x)`
# from below. This tutorial trains the three other families of the lecture on the 8x8
# scikit-learn digits (upsampled to 16x16) and asks of each: what does it optimise, what can
# it tell us about an image, and how many network evaluations does one sample cost?
#
# * **Likelihood (autoregressive).** PixelRNN and PixelCNN (van den Oord, Kalchbrenner and
#   Kavukcuoglu, "Pixel Recurrent Neural Networks", ICML 2016, arXiv:1601.06759; Gated
#   PixelCNN: van den Oord et al., NeurIPS 2016, arXiv:1606.05328) write
#   `p(x) = prod_i p(x_i | x_<i)` in raster order and maximise the exact likelihood. Training
#   is one parallel pass with masked convolutions; sampling is one pass *per pixel*.
# * **Adversarial.** A GAN (Goodfellow et al., "Generative Adversarial Nets", NeurIPS 2014,
#   arXiv:1406.2661; DCGAN: Radford, Metz and Chintala, ICLR 2016, arXiv:1511.06434) trains a
#   generator `G(z)` against a discriminator that tells real from fake. There is no
#   likelihood at all, but one sample is one forward pass.
# * **Diffusion.** A diffusion model (Sohl-Dickstein et al., ICML 2015, arXiv:1503.03585;
#   DDPM: Ho, Jain and Abbeel, NeurIPS 2020, arXiv:2006.11239) destroys images with Gaussian
#   noise in `T` small steps and learns to undo one step. Sampling walks back from pure
#   noise; DDIM (Song, Meng and Ermon, ICLR 2021, arXiv:2010.02502) takes large strides.
#
# All models are tiny and trained for seconds on a CPU; the point is the mechanics and the
# numbers that come with them, not pretty samples.

# %%
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from keras_cv_course.data import load_dataset  # noqa: E402
from keras_cv_course.export import export  # noqa: E402
from keras_cv_course.generative import metrics  # noqa: E402
from keras_cv_course.generative.commands import image_grid, sample  # noqa: E402
from keras_cv_course.generative.ddim import NoiseSchedule, ddim_timesteps  # noqa: E402
from keras_cv_course.generative.pixels import images_to_levels  # noqa: E402
from keras_cv_course.specs import specs_of_model_inputs  # noqa: E402
from keras_cv_course.tasks import get_task  # noqa: E402
from keras_cv_course.training import train  # noqa: E402

FAST = os.environ.get("KCC_FAST") == "1"  # shrinks the budget only; same code path
OUT = os.environ.get("KCC_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="kcc-tutorial-")
os.makedirs(OUT, exist_ok=True)
RUNS = tempfile.mkdtemp(prefix="12-generative-", dir=OUT)  # fresh run folders every time
EPOCHS = dict(pixelcnn=2, dcgan=3, conditional_gan=3, ddpm_unet=2) if FAST else \
    dict(pixelcnn=4, dcgan=5, conditional_gan=4, ddpm_unet=2)
print(f"FAST={FAST}, epochs={EPOCHS}, writing into {RUNS}")


def show(images, columns, title):
    """One grid of images (white lines between cells)."""
    plt.figure(figsize=(columns * 0.5, 0.5 * np.ceil(len(images) / columns) + 0.4))
    plt.imshow(image_grid(images, columns)[..., 0], cmap="gray", vmin=0, vmax=1)
    plt.title(title, fontsize=9)
    plt.axis("off")
    plt.show()


# %% [markdown]
# ## The data
#
# The generative task returns images only; the conditional task adds the digit labels.
# Both share one split.

# %%
SIZE = (16, 16)
digits = load_dataset("digits", task="generative", image_size=SIZE)
labelled = load_dataset("digits", task="conditional_generative", image_size=SIZE)
train_images, _ = digits.arrays["train"]
test_images, _ = digits.arrays["test"]
print(f"train {train_images.shape}, test {test_images.shape}, classes {labelled.num_classes}")

# %% [markdown]
# ## 1. PixelCNN: an exact likelihood, in bits per dimension
#
# PixelCNN models each pixel as a categorical over `levels` values given the pixels above
# and to the left. A 7x7 (here 5x5) *mask-A* convolution hides the centre pixel from its
# own prediction; the following *mask-B* layers may see the centre, which by then only
# carries information from earlier pixels. The loss is the exact negative log-likelihood,
# reported as **bits per dimension**: `-log2 p(x) / (H * W * C)`.
#
# The registry's tiny config quantises to 4 levels. We widen it a little (16 filters, two
# residual blocks) and train for a few epochs.

# %%
pixel_run = train("pixelcnn", digits, os.path.join(RUNS, "pixelcnn"), config="tiny",
                  epochs=EPOCHS["pixelcnn"], batch_size=32, learning_rate=3e-3,
                  filters=16, blocks=2, head_filters=16, verbose=0)
pixelcnn = pixel_run.model
LEVELS = pixelcnn.levels
print(f"PixelCNN: {pixelcnn.count_params()} weights, {LEVELS} levels per pixel, "
      f"trained in {pixel_run.seconds:.0f} s")

# %% [markdown]
# How good is that number? Two yardsticks. A uniform model spends `log2(levels)` = 2 bits
# on every pixel. A better one fits an independent categorical to each pixel position from
# the training images: it knows that corners are dark and the centre often bright, but
# nothing about which pixels go together. Whatever PixelCNN gains beyond it comes from
# modelling the dependencies between pixels, which is the whole point of the
# autoregressive factorisation.

# %%
independent = metrics.pixel_independent_bits_per_dimension(
    images_to_levels(train_images, LEVELS), images_to_levels(test_images, LEVELS), LEVELS)
pixel_bits = pixel_run.metrics["bits_per_dim"]
print(f"test bits/dim: uniform {np.log2(LEVELS):.3f}, independent pixels {independent:.3f}, "
      f"PixelCNN {pixel_bits:.3f}")
assert pixel_bits < independent < np.log2(LEVELS)

# %% [markdown]
# Seconds of training roughly halve the independent-pixel cost (with seeds 0 to 2 and 2 to
# 5 epochs, the PixelCNN scored 0.48 to 0.57 bits/dim against 1.17).
#
# The price is paid at sampling time: each pixel needs one full forward pass on the image
# drawn so far, so a 16x16 sample costs 256 passes (a batch of images shares them). The
# sampler is a NumPy loop around any forward pass, so the same loop runs around an exported
# TFLite or ONNX model.

# %%
start = time.time()
pixel_samples = pixelcnn.sample(8, seed=0)
sample_levels = images_to_levels(pixel_samples, LEVELS)
print(f"8 PixelCNN samples: {SIZE[0] * SIZE[1]} forward passes in {time.time() - start:.1f} s; "
      f"levels drawn {np.unique(sample_levels).tolist()}")
assert np.allclose(pixel_samples, sample_levels / (LEVELS - 1))  # only the 4 levels
show(pixel_samples, 8, "PixelCNN samples (4 levels)")

# %% [markdown]
# ## 2. GANs: a generator, served and exported
#
# A DCGAN maps `z ~ N(0, I)` through transposed convolutions to an image; the
# discriminator is a small CNN. Training alternates one discriminator step on real and
# fake images with one generator step on the *non-saturating* loss
# `-log sigmoid(D(G(z)))`, which keeps gradients alive early on when `D` wins easily. The
# two losses do not measure sample quality: they only say who is currently winning.

# %%
gan_run = train("dcgan", digits, os.path.join(RUNS, "dcgan"), config="tiny",
                epochs=EPOCHS["dcgan"], batch_size=32, learning_rate=1e-3, latent_dim=16,
                generator_widths=(32, 16), discriminator_widths=(16, 32), verbose=0)
gan = gan_run.model
print(f"DCGAN trained in {gan_run.seconds:.0f} s: test d_loss {gan_run.metrics['d_loss']:.3f}, "
      f"g_loss {gan_run.metrics['g_loss']:.3f}")

# %% [markdown]
# A GAN trains two networks but is *used* through one. The generative task's contract says
# which: `serving_model` is the model's sampler network, here a graph that is exactly the
# generator, `latent` in and `images` out. That graph is what `export` converts, and the
# sampler's recipe (draw `z ~ N(0, I)` of size `latent_dim`, one pass) goes into
# `manifest.json` beside it.

# %%
task = get_task("generative")
served = task.serving_model(gan)
served_inputs = [spec.name for spec in specs_of_model_inputs(served)]
served_outputs = served.predict_on_batch(np.zeros((2, gan.latent_dim), "float32"))
print(f"served inputs {served_inputs}, outputs "
      f"{ {name: value.shape for name, value in served_outputs.items()} }")
print(f"sampler record: {gan.sampler.record()}")
assert served_inputs == ["latent"] and list(served_outputs) == ["images"]

# %% [markdown]
# `sample` draws from a run folder, and writes the grid as a PNG when given `out`.
#
# A GAN has no likelihood to report, so samples are judged by comparing them with real
# images. FID (Heusel et al., NeurIPS 2017, arXiv:1706.08500) fits a Gaussian to the
# features of each set and measures the Frechet distance between the two Gaussians. Its
# features come from a trained classifier; for a quick sanity check we use the raw 256
# pixels as features, and uniform noise images as the yardstick a useless generator scores.

# %%
gan_images = sample(gan_run.path, 16, out=os.path.join(RUNS, "dcgan.png"))
print(f"DCGAN samples {gan_images.shape}, pixels in [{gan_images.min():.2f}, "
      f"{gan_images.max():.2f}]")
show(gan_images, 8, "DCGAN samples")

real = test_images.reshape(len(test_images), -1)
fake = sample(gan_run.path, len(real), seed=1).reshape(len(real), -1)
uniform = np.random.default_rng(0).uniform(0, 1, real.shape)
gan_distance = metrics.frechet_distance(real, fake)
noise_distance = metrics.frechet_distance(real, uniform)
print(f"pixel-space Frechet distance to the test digits: DCGAN {gan_distance:.1f}, "
      f"uniform noise {noise_distance:.1f}")
assert gan_distance < noise_distance

# %% [markdown]
# Export the generator to TFLite and ONNX. `export` checks each artifact against Keras on a
# batch of latents and refuses one that differs by more than its tolerance. Sampling from an
# artifact runs the same NumPy loop with the same seed, so the *same latents* go in and the
# same images must come out.

# %%
manifest = export(gan_run.path, formats=("tflite", "onnx"))
export_dir = os.path.join(gan_run.path, "export")
print(f"exported {sorted(manifest['artifacts'])}; inputs {list(manifest['inputs'])}, "
      f"outputs {list(manifest['outputs'])}")
for name in ("model.tflite", "model.onnx"):
    artifact_images = sample(gan_run.path, 16, artifact=os.path.join(export_dir, name))
    error = float(np.abs(artifact_images - gan_images).max())
    print(f"{name:13s} max |artifact - Keras| = {error:.2e}")
    assert error <= 1e-4

# %% [markdown]
# ## 3. A conditional GAN: asking for a digit
#
# The conditional GAN (Mirza and Osindero, "Conditional Generative Adversarial Nets",
# arXiv:1411.1784) feeds a one-hot class to both networks: the generator gets `[z, y]`, the
# discriminator the image with `y` as constant planes, so a fake must look like *that*
# digit. The conditional task supplies the labels, and `sample(..., class_ids=...)` asks for
# classes: below, one row per digit.

# %%
cgan_run = train("conditional_gan", labelled, os.path.join(RUNS, "cgan"), config="tiny",
                 epochs=EPOCHS["conditional_gan"], batch_size=32, learning_rate=1e-3,
                 latent_dim=16, generator_widths=(32, 16), discriminator_widths=(16, 32),
                 verbose=0)
served_inputs = [spec.name for spec in specs_of_model_inputs(
    get_task("conditional_generative").serving_model(cgan_run.model))]
print(f"conditional GAN trained in {cgan_run.seconds:.0f} s; served inputs {served_inputs}")
assert served_inputs == ["latent", "class_onehot"]
rows = np.repeat(np.arange(10), 10)  # 0 0 ... 0 1 1 ... 9: ten columns, one row per digit
digit_images = sample(cgan_run.path, len(rows), class_ids=rows,
                      out=os.path.join(RUNS, "cgan.png"))
print(f"{len(digit_images)} samples, rows = digits 0-9")
show(digit_images, 10, "conditional GAN: one row per digit")

# %% [markdown]
# Seconds of training give rough strokes, not clean digits. The class is wired into both
# networks from the first step, but the generator needs many more epochs before the rows
# become recognisably different digits.
#
# ## 4. Diffusion: noise in closed form, DDIM out
#
# The forward process adds noise with variances `beta_1 .. beta_T`. With
# `abar_t = prod_{s<=t} (1 - beta_s)` it jumps to any step in one go:
#
# `q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)`,
# i.e. `x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps`.
#
# DDPM's linear schedule (`beta` from 1e-4 to 0.02 over T = 1000 steps) leaves almost no
# signal at the end: `x_T` is pure noise, which is where sampling starts.

# %%
schedule = NoiseSchedule("linear", timesteps=1000)
abar = schedule.alphas_cumprod
for t in (0, 100, 250, 500, 999):
    print(f"t={t:4d}  abar={abar[t]:.5f}  signal sqrt(abar)={np.sqrt(abar[t]):.3f}  "
          f"noise sqrt(1-abar)={np.sqrt(1 - abar[t]):.3f}")
assert abar[-1] < 1e-4

x0 = test_images[:1] * 2.0 - 1.0  # the model works in [-1, 1]
noise = np.random.default_rng(0).standard_normal(x0.shape)
shown = [0, 100, 250, 500, 999]
noisy = np.concatenate([schedule.q_sample(x0, [t], noise) for t in shown])
show((np.clip(noisy, -1, 1) + 1) / 2, len(shown), "q_sample at t = 0, 100, 250, 500, 999")

# %% [markdown]
# Training draws a random `t` and `eps` per image and regresses the UNet's
# `eps_theta(x_t, t)` on `eps` with the mean squared error. A network that predicts zero
# scores `E[eps^2] = 1`, which is the yardstick for the loss below.

# %%
ddpm_run = train("ddpm_unet", digits, os.path.join(RUNS, "ddpm"), config="tiny",
                 epochs=EPOCHS["ddpm_unet"], batch_size=64, learning_rate=3e-3,
                 widths=(8, 16), embedding_dim=8, verbose=0)
ddpm = ddpm_run.model
losses = ", ".join(f"{value:.3f}" for value in ddpm_run.history["loss"])
print(f"DDPM UNet: {ddpm.denoiser.count_params()} weights, trained in {ddpm_run.seconds:.0f} s; "
      f"train loss per epoch {losses}; test loss {ddpm_run.metrics['loss']:.3f} "
      "(predicting zero: 1.0)")
assert ddpm_run.metrics["loss"] < 0.5
assert np.allclose(ddpm.noise_schedule.alphas_cumprod, abar)

# %% [markdown]
# Ancestral DDPM sampling undoes the steps one at a time: 1000 network passes per sample.
# DDIM instead predicts the clean image from the current one,
# `x0_hat = (x_t - sqrt(1 - abar_t) eps_theta) / sqrt(abar_t)`, and jumps straight to an
# earlier step on a short sub-sequence of timesteps, re-noising `x0_hat` with the predicted
# noise. With `eta = 0` the walk is deterministic given `x_T`, and the same trained network
# serves any number of steps.

# %%
steps = ddim_timesteps(schedule.timesteps, 10)
print(f"10 DDIM steps visit t = {steps[::-1].tolist()}")
ddim_images = sample(ddpm_run.path, 16, steps=10, out=os.path.join(RUNS, "ddim.png"))
again = sample(ddpm_run.path, 16, steps=10)
print(f"DDIM samples {ddim_images.shape}; same seed, same images: "
      f"{np.array_equal(ddim_images, again)}")
assert np.array_equal(ddim_images, again)
show(ddim_images, 8, "DDIM, 10 steps")

# %% [markdown]
# After two epochs the loss has fallen far below the zero predictor's, yet the samples are
# still noisy textures, not digits: small errors in the predicted noise compound over the
# walk, and a usable sampler needs a much better denoiser (many more epochs and the
# registry's full UNet). Each sample cost ten network passes, against 1000 for DDPM's own
# sampler and 256 for our PixelCNN; a GAN needs one.
#
# ## Summary
#
# | family | trains on | tells us `p(x)`? | passes per sample here |
# |---|---|---|---|
# | PixelCNN | exact NLL | yes, exactly | 256 (one per pixel) |
# | GAN | a two-player game | no | 1 |
# | diffusion | noise regression (a reweighted NLL bound) | a bound | 10 with DDIM |

# %% [markdown]
# ## Exercise
#
# Count the network evaluations needed to draw a batch of 28x28 RGB images (8 bits per
# channel) with a PixelCNN, with DDIM at 50 steps, with DDPM's ancestral sampler (T = 1000)
# and with a GAN. Which of the four can also tell you `log p(x)` of a given image, and at
# what cost?
#
# **Answer:** PixelCNN draws one channel of one pixel per pass: 28 * 28 * 3 = 2352 passes
# (the batch shares them; `generative.pixels.sample_pixels` loops over rows, columns and
# channels). DDIM needs 50 passes, DDPM 1000, the GAN one. Only PixelCNN gives the exact
# `log p(x)`, and cheaply: a single pass scores every pixel at once, as the training loss
# does. A diffusion model gives a bound on it (summed over many timesteps); a GAN gives
# nothing.
