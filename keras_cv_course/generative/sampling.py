"""How every generative model draws samples, from Keras or from an exported artifact.

A generative model is trained as one thing and sampled through another: a
GAN trains a generator and a discriminator and samples with the generator; a
diffusion model trains on noised images and samples by running its denoiser
many times; PixelCNN runs one forward pass per pixel. Each model says how,
with its ``sampler`` property, a ``Sampler``:

* ``network``: the functional model that is exported (a generator or
  decoder taking ``latent`` and, when conditional, ``class_onehot``; a
  denoiser taking ``noisy_images`` and ``timesteps``; PixelCNN itself);
* ``method``: the name of the NumPy loop that draws samples around it
  (``"latent"``, ``"ddim"``, ``"pixels"``);
* ``settings``: what that loop needs besides the network, as JSON (the
  latent size, the noise schedule, the pixel levels, ...).

Export writes ``sampler.record()`` into ``manifest.json``, so ``draw`` runs
the same loop around a TFLite interpreter or an ONNX session, in a process
without TensorFlow, as around the Keras network:

    images = draw(model.sampler.record(), keras_forward(model.sampler.network), 16, seed=0)
    images = draw(manifest["sampler"], load_runner("onnx", "export/model.onnx"), 16, seed=0)

The loops are in ``METHODS``; like the rest of this module (and ``ddim``
and ``pixels``, which hold the longer loops) they import NumPy only, so they
run on a device without TensorFlow or Keras.
"""

import dataclasses

import numpy as np

from keras_cv_course.errors import KCCError
from keras_cv_course.generative.ddim import NoiseSchedule, ddim_sample
from keras_cv_course.generative.pixels import levels_to_images, sample_pixels
from keras_cv_course.specs import TensorSpec

LATENT_INPUT = "latent"
CLASS_INPUT = "class_onehot"
IMAGES_OUTPUT = "images"
LATENT_SPEC = TensorSpec(LATENT_INPUT, ("latent",), "float32", "z ~ N(0, I)")
CLASS_SPEC = TensorSpec(CLASS_INPUT, ("classes",), "float32", "the one-hot class to draw")


@dataclasses.dataclass(frozen=True)
class Sampler:
    """A generative model's sampling recipe: the network to run and the loop around it."""

    network: object
    method: str
    settings: dict

    def record(self):
        """``{"method": ..., **settings}``: what ``draw`` needs, as JSON."""
        return {"method": self.method, **self.settings}


def draw(record, forward, num_samples, seed=None, class_ids=None, **options):
    """Draws ``num_samples`` images with a sampler record around any forward pass.

    Args:
        record: ``Sampler.record()`` (or a manifest's ``"sampler"``).
        forward: ``{input name: array} -> {output name: array}``: a Keras
            network through ``keras_forward``, or an export runner.
        num_samples: number of images.
        seed: NumPy seed; equal seeds and forward passes give equal images.
        class_ids: conditional models: ``(num_samples,)`` class ids; by
            default ``0, 1, 2, ...`` cycling over the classes.
        **options: the method's own settings, e.g. ``steps`` for DDIM.

    Returns:
        float32 images ``(num_samples, H, W, C)`` in [0, 1].

    Raises:
        KCCError: an unknown method, a bad count or bad class ids.
    """
    settings = dict(record)
    method = settings.pop("method", None)
    if method not in METHODS:
        raise KCCError(f"unknown sampling method {method!r}; known: {sorted(METHODS)}")
    if int(num_samples) < 1:
        raise KCCError(f"the number of samples must be a positive int, got {num_samples!r}")
    ids = class_onehot(settings.get("classes"), int(num_samples), class_ids)
    images = METHODS[method](forward, settings, int(num_samples), np.random.default_rng(seed),
                              ids, **options)
    return np.asarray(images, dtype="float32")


def class_onehot(classes, num_samples, class_ids=None):
    """One-hot classes ``(n, classes)`` for a conditional model, ``None`` otherwise.

    Raises:
        KCCError: ids that are not ``num_samples`` ints in ``[0, classes)``, or
            ids given to an unconditional model.
    """
    if not classes:
        if class_ids is not None:
            raise KCCError("class ids were given to a model that is not class-conditional")
        return None
    ids = np.arange(num_samples) % classes if class_ids is None else np.asarray(class_ids)
    if ids.shape != (num_samples,) or ids.dtype.kind not in "iu" or ids.min() < 0 \
            or ids.max() >= classes:
        raise KCCError(f"class_ids must be {num_samples} ids in [0, {classes}), "
                       f"got {class_ids!r}")
    return np.eye(classes, dtype="float32")[ids]


def with_classes(inputs, onehot):
    """``inputs`` plus the ``class_onehot`` input when the model is conditional."""
    return inputs if onehot is None else {**inputs, CLASS_INPUT: onehot}


def keras_forward(network):
    """A Keras network as ``{input name: array} -> {output name: NumPy array}``.

    Uses the compiled predict function, so a loop of many calls traces once.
    """
    from keras_cv_course.specs import specs_of_model_inputs

    names = [spec.name for spec in specs_of_model_inputs(network)]

    def forward(named):
        inputs = named[names[0]] if len(names) == 1 else {name: named[name] for name in names}
        outputs = network.predict_on_batch(inputs)
        return {key: np.asarray(value) for key, value in outputs.items()}

    return forward


# -- the loops: ``function(forward, settings, n, rng, onehot, **options) -> images`` ----------

def draw_from_latent(forward, settings, num_samples, rng, onehot):
    """Generators and decoders: ``z ~ N(0, I)`` through the network, once."""
    latent = rng.standard_normal((num_samples, int(settings["latent_dim"]))).astype("float32")
    outputs = forward(with_classes({LATENT_INPUT: latent}, onehot))
    return outputs[IMAGES_OUTPUT]


def draw_by_ddim(forward, settings, num_samples, rng, onehot, steps=None, eta=0.0):
    """Diffusion models: DDIM (``ddim.ddim_sample``) around the denoiser."""
    schedule = NoiseSchedule(settings["schedule"], settings["timesteps"],
                             settings["beta_start"], settings["beta_end"])

    def denoise(noisy_images, timesteps):
        return forward({"noisy_images": noisy_images, "timesteps": timesteps})

    return ddim_sample(denoise, num_samples, settings["image_shape"], schedule,
                       steps=steps or settings["steps"], seed=rng, eta=eta)


def draw_pixel_by_pixel(forward, settings, num_samples, rng, onehot):
    """Autoregressive models: ``pixels.sample_pixels`` around the network."""

    def logits_of(images):
        return forward(with_classes({"images": images}, onehot))["logits"]

    levels = int(settings["levels"])
    drawn = sample_pixels(logits_of, num_samples, settings["image_shape"], levels, rng)
    return levels_to_images(drawn, levels)


METHODS = {"latent": draw_from_latent, "ddim": draw_by_ddim, "pixels": draw_pixel_by_pixel}
