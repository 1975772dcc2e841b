"""DeepDream: amplify what some layers already see in an image.

Mordvintsev, Olah and Tyka, "Inceptionism: Going Deeper into Neural
Networks", Google Research blog, 2015 (code: github.com/google/deepdream).
Gradient *ascent* on the image, maximising the mean squared activation (the
L2 objective) of the chosen layers:

* each step is normalised by the mean absolute gradient, so one
  ``step_size`` suits every layer and image;
* the image is rolled by a random jitter before each step and rolled back
  after, which averages out the network's grid artefacts;
* octaves: the ascent runs on a pyramid of sizes, smallest first, each
  ``octave_scale`` times larger; the detail added at one octave (the image
  minus its octave's base) is upsampled and carried to the next, so large
  patterns form at coarse scales and fine ones at the full size.

A model with a fixed input size sees each octave resized to that size,
inside the differentiated function. Images are floats in ``[0, 1]``.
"""

import keras
import numpy as np
from keras import ops

from keras_cv_course.errors import KCCError
from keras_cv_course.understanding.gradients import value_and_gradient
from keras_cv_course.understanding.scores import (
    check_non_negative,
    feature_model,
    input_size,
    model_input,
)
from keras_cv_course.understanding.synthesis import (
    normalised_step,
    random_roll,
    rolled,
)

SMALLEST_OCTAVE = 2  # pixels on a side


def resize(images, size):
    """``images`` (batch, h, w, c) bilinearly resized to ``size = (height, width)``."""
    return ops.image.resize(images, tuple(int(s) for s in size), interpolation="bilinear")


def octave_sizes(size, octaves, octave_scale):
    """Image sizes of the pyramid, smallest first, ending with ``size``."""
    sizes = []
    for octave in range(int(octaves) - 1, -1, -1):
        scale = float(octave_scale) ** octave
        sizes.append(tuple(max(SMALLEST_OCTAVE, round(s / scale)) for s in size))
    return sizes


def dream_objective(model, layer_names):
    """``x -> sum over layers of mean(activation^2)``, the L2 DeepDream objective."""
    features = feature_model_of_layers(model, layer_names)
    fixed = input_size(model)[:2]

    def objective(images):
        if None not in fixed and tuple(images.shape[1:3]) != fixed:
            images = resize(images, fixed)
        outputs = features(images, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return ops.sum(ops.stack([ops.mean(ops.square(o)) for o in outputs]))

    return objective


def feature_model_of_layers(model, layer_names):
    """A model from the input to the outputs of every layer in ``layer_names``."""
    if isinstance(layer_names, str):
        layer_names = [layer_names]
    if not layer_names:
        raise KCCError("deep_dream needs at least one layer name")
    models = [feature_model(model, name) for name in layer_names]  # checks the names
    if len(models) == 1:
        return models[0]
    return keras.Model(model_input(model), [m.outputs[0] for m in models])


def ascend(objective, image, steps, step_size, jitter, rng):
    """``steps`` jittered, normalised gradient-ascent steps on ``image`` (1, h, w, c)."""
    for _ in range(int(steps)):
        shift = random_roll(rng, int(jitter))
        _, grad = value_and_gradient(objective, rolled(image, shift))
        image = rolled(rolled(image, shift) + step_size * normalised_step(grad),
                       tuple(-s for s in shift))
        image = np.clip(image, 0.0, 1.0).astype("float32")
    return image


def deep_dream(model, image, layer_names, octaves=3, octave_scale=1.4, steps_per_octave=10,
               step_size=0.01, jitter=1, seed=0):
    """DeepDream (Mordvintsev et al. 2015) on one image.

    Args:
        model: a Keras functional model.
        image: ``(height, width, channels)`` floats in ``[0, 1]``.
        layer_names: the layer (or layers) whose activations are amplified.
        octaves: number of pyramid levels (1: the full size only).
        octave_scale: size ratio of neighbouring levels, > 1.
        steps_per_octave: ascent steps at each level.
        step_size: size of a step, in units of the mean absolute gradient.
        jitter: largest random shift in pixels (0 for none).
        seed: seed of the jitter.

    Returns:
        The dreamed image, shaped like ``image``, in ``[0, 1]``.
    """
    image = np.asarray(image, dtype="float32")
    if image.ndim != 3:
        raise KCCError(f"deep_dream takes one (height, width, channels) image, "
                       f"got shape {image.shape}")
    if int(octaves) < 1 or not float(octave_scale) > 1.0:
        raise KCCError(f"need octaves >= 1 and octave_scale > 1, got {octaves} "
                       f"and {octave_scale}")
    step_size = check_non_negative("step_size", step_size)
    objective = dream_objective(model, layer_names)
    rng = np.random.default_rng(seed)
    original = image[None]
    detail = None
    for size in octave_sizes(image.shape[:2], octaves, octave_scale):
        base = np.asarray(ops.convert_to_numpy(resize(original, size)), dtype="float32")
        start = base if detail is None else base + ops.convert_to_numpy(resize(detail, size))
        dreamed = ascend(objective, np.clip(start, 0.0, 1.0), steps_per_octave, step_size,
                         jitter, rng)
        detail = dreamed - base
    return dreamed[0]
