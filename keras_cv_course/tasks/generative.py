"""Generative models: learn the images themselves.

The data are images alone. A model computes its own loss (a VAE's negative
evidence lower bound, PixelCNN's likelihood, a diffusion model's noise
error) or trains two networks with two optimizers (a GAN), so the task
compiles only the optimizer(s).

Generative models train as one thing and sample through another; each
declares how with its ``sampler`` property (``generative.sampling``). The
task reads it for the contract:

* ``serving_model`` is the sampler's network: a GAN's generator and a
  VAE's decoder (``latent`` in, ``images`` out), a diffusion model's
  denoiser (``noisy_images`` and ``timesteps`` in), PixelCNN itself;
* ``training_inputs`` and ``training_batch`` are images of the sampler's
  image shape, whatever the served network takes;
* ``export_record`` writes the sampler's recipe into ``manifest.json``, so
  ``kcc sample`` draws from an artifact without the Keras model;
* ``summaries`` show a grid of 16 samples from fixed noise (seed 0) every epoch, beside
  the inputs and, for models with a ``reconstruct`` method (a VAE), their
  reconstructions.

``ConditionalGenerativeTask`` adds the class labels: its models take a
``class_onehot`` input and sample the class they are asked for.
"""

import dataclasses

import numpy as np

from keras_cv_course.generative.commands import image_grid
from keras_cv_course.specs import TensorSpec
from keras_cv_course.tasks.base import IMAGES, Task, image_panel
from keras_cv_course.tasks.registry import register_task

SUMMARY_SEED = 0
SUMMARY_SAMPLES = 16


class GenerativeTask(Task):
    name = "generative"
    description = "images without targets; samples from the learned distribution"
    output_specs = (TensorSpec("images", ("height", "width", "channels"), "float32",
                               "generated images in [0, 1]"),)
    headline_metrics = ("bits_per_dim", "loss", "d_loss", "g_loss")

    def serving_model(self, model):
        sampler = getattr(model, "sampler", None)
        return model if sampler is None else sampler.network

    def training_inputs(self, model):
        return (dataclasses.replace(IMAGES, shape=image_shape_of(model)),)

    def training_batch(self, model, batch_size=4, seed=0):
        rng = np.random.default_rng(seed)
        images = rng.uniform(0, 1, (batch_size, *image_shape_of(model))).astype("float32")
        return images, self.pack_targets([self.random_labels(model, rng, batch_size)])

    def random_labels(self, model, rng, batch_size):
        """Targets of a random training batch: none for unconditional models."""
        return None

    def export_record(self, model):
        sampler = getattr(model, "sampler", None)
        return {} if sampler is None else {"sampler": sampler.record()}

    def summaries(self, model, inputs, targets=None):
        panels = {"inputs": image_panel(inputs)}
        if hasattr(model, "reconstruct"):
            panels["reconstructions"] = model.reconstruct(panels["inputs"])
        if hasattr(model, "sample"):
            samples = model.sample(SUMMARY_SAMPLES, seed=SUMMARY_SEED)
            panels["samples"] = image_grid(samples)[None]  # one grid image per epoch
        return panels


class ConditionalGenerativeTask(GenerativeTask):
    name = "conditional_generative"
    description = "images with class labels; samples of the class asked for"
    target_specs = (TensorSpec("labels", (), "int32", "class ids"),)
    annotations = ("labels",)
    class_annotation = "labels"

    def build_arguments(self, bundle):
        return {**super().build_arguments(bundle), "classes": bundle.num_classes}

    def random_labels(self, model, rng, batch_size):
        classes = int(model.sampler.settings["classes"])
        return rng.integers(0, classes, (batch_size,)).astype("int32")


def image_shape_of(model):
    """The ``(H, W, C)`` of the images a generative model learns (its sampler's)."""
    sampler = getattr(model, "sampler", None)
    if sampler is not None:
        return tuple(int(d) for d in sampler.settings["image_shape"])
    return tuple(model.inputs[0].shape[1:])


register_task(GenerativeTask())
register_task(ConditionalGenerativeTask())
