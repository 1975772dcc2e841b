"""Images made by gradient ascent: class visualisation and feature inversion.

* Class visualisation (Simonyan, Vedaldi and Zisserman, "Deep Inside
  Convolutional Networks: Visualising Image Classification Models and
  Saliency Maps", ICLR workshop 2014, arXiv:1312.6034): start from a small
  random image and climb the score of one class. Unregularised ascent finds
  high-frequency noise; the regularisers of Yosinski et al. ("Understanding
  Neural Networks Through Deep Visualization", ICML workshop 2015,
  arXiv:1506.06579) make it look like an image: L2 decay, a Gaussian blur
  every few steps, and a random jitter (roll) of the image at every step.
* Feature inversion (Mahendran and Vedaldi, "Understanding Deep Image
  Representations by Inverting Them", CVPR 2015, arXiv:1412.0035): find the
  image ``x`` whose features ``phi(x)`` at one layer match those of a given
  image ``x0``, minimising
  ``||phi(x) - phi(x0)||^2 / ||phi(x0)||^2 + tv_weight * TV(x)``, with the
  total variation ``TV`` (squared differences of neighbouring pixels, their
  ``beta = 2``) as the image prior.

The class score is the log-probability (``scores.log_probabilities``), which
equals the logit minus a log-sum-exp: it works for softmax and logit models
alike and, unlike the probability, does not saturate. Images are floats in
``[0, 1]`` and are kept there.
"""

import numpy as np
from keras import ops
from scipy.ndimage import gaussian_filter

from keras_cv_course.errors import KCCError
from keras_cv_course.understanding.gradients import Adam, value_and_gradient
from keras_cv_course.understanding.scores import (
    check_images,
    check_non_negative,
    feature_model,
    input_size,
    log_probabilities,
)

GRADIENT_EPSILON = 1e-8


def normalised_step(grad):
    """``grad / mean(|grad|)``: a step whose size the learning rate alone sets."""
    return grad / (np.mean(np.abs(grad)) + GRADIENT_EPSILON)


def random_roll(rng, jitter):
    """A random shift ``(dy, dx)`` in ``[-jitter, jitter]`` pixels."""
    return tuple(int(s) for s in rng.integers(-jitter, jitter + 1, size=2))


def rolled(images, shift):
    """``images`` rolled by ``shift = (dy, dx)`` along height and width."""
    return np.roll(images, shift, axis=(1, 2))


def blurred(images, sigma):
    """A Gaussian blur of each channel over height and width."""
    return gaussian_filter(images, sigma=(0, sigma, sigma, 0)).astype("float32")


def _fixed_size(model):
    size = input_size(model)
    if None in size:
        raise KCCError(f"class visualisation needs a model with a fixed input size, got {size}")
    return size


def class_visualisation(model, class_index, steps=200, learning_rate=0.05, l2=1e-3,
                        blur_every=4, blur_sigma=0.5, jitter=1, seed=0):
    """The image a classifier finds most typical of one class (Simonyan et al. 2014).

    Each step rolls the image by a random jitter, takes a normalised gradient
    step up the class log-probability, rolls it back, decays it towards zero
    by ``l2`` and clips it to ``[0, 1]``; every ``blur_every`` steps it is
    blurred (Yosinski et al. 2015).

    Args:
        model: a classifier with a fixed input size.
        class_index: the class to visualise.
        steps: number of ascent steps.
        learning_rate: step size, in units of the mean absolute gradient.
        l2: weight decay of the image per step (0 for none).
        blur_every, blur_sigma: blur period in steps (0 for none) and the
            Gaussian's standard deviation in pixels.
        jitter: largest random shift in pixels (0 for none).
        seed: seed of the starting image and the jitter.

    Returns:
        The image ``(height, width, channels)`` in ``[0, 1]``.
    """
    classes = int(model.output_shape[-1])
    if not 0 <= int(class_index) < classes:
        raise KCCError(f"class_index must be in [0, {classes}), got {class_index}")
    l2 = check_non_negative("l2", l2)
    rng = np.random.default_rng(seed)
    image = (0.5 + 0.01 * rng.standard_normal((1, *_fixed_size(model)))).astype("float32")

    def score(x):
        return log_probabilities(model, x)[:, int(class_index)]

    for step in range(int(steps)):
        shift = random_roll(rng, int(jitter))
        _, grad = value_and_gradient(score, rolled(image, shift))
        image = rolled(image, shift) + learning_rate * normalised_step(grad)
        image = np.clip(rolled(image, tuple(-s for s in shift)) * (1.0 - l2), 0.0, 1.0)
        if blur_every and (step + 1) % int(blur_every) == 0:
            image = blurred(image, blur_sigma)
    return image[0].astype("float32")


def total_variation(images):
    """Mean squared difference of vertically and of horizontally adjacent pixels
    (the beta = 2 total variation of Mahendran and Vedaldi)."""
    images = ops.cast(images, "float32")
    down = ops.mean(ops.square(images[:, 1:, :, :] - images[:, :-1, :, :]))
    right = ops.mean(ops.square(images[:, :, 1:, :] - images[:, :, :-1, :]))
    return down + right


def reconstruction_loss(features, target):
    """``||features - target||^2 / ||target||^2``, the normalised feature error."""
    return ops.sum(ops.square(features - target)) / (ops.sum(ops.square(target)) + 1e-12)


def feature_inversion(model, layer_name, image, steps=300, learning_rate=0.05,
                      tv_weight=1e-2, seed=0):
    """An image whose features at ``layer_name`` match those of ``image``
    (Mahendran and Vedaldi 2015).

    Starts from random noise and minimises the normalised feature error plus
    ``tv_weight`` times the total variation with Adam, clipping the image to
    ``[0, 1]`` after every step.

    Args:
        model: a Keras functional model.
        layer_name: the layer whose output ``phi`` is inverted.
        image: ``(height, width, channels)`` (or a batch of one) in ``[0, 1]``.
        steps, learning_rate: of the Adam descent.
        tv_weight: weight of the total-variation prior (0 for none).
        seed: seed of the starting noise.

    Returns:
        ``(image, history)``: the reconstruction ``(height, width, channels)``
        in ``[0, 1]``, and the normalised feature error
        ``||phi(x) - phi(x0)||^2 / ||phi(x0)||^2`` before each step.
    """
    image = np.asarray(image, dtype="float32")
    original = check_images(image[None] if image.ndim == 3 else image, model)
    if len(original) != 1:
        raise KCCError(f"feature_inversion takes one image, got a batch of {len(original)}")
    tv_weight = check_non_negative("tv_weight", tv_weight)
    features = feature_model(model, layer_name)
    target = features(original, training=False)

    def objective(x):  # the two terms; the gradient is that of their sum
        error = reconstruction_loss(features(x, training=False), target)
        return ops.stack([error, tv_weight * total_variation(x)])

    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, original.shape).astype("float32")
    optimizer = Adam(learning_rate)
    history = []
    for _ in range(int(steps)):
        terms, grad = value_and_gradient(objective, x)
        history.append(float(terms[0]))
        x = np.clip(optimizer.step(x, grad), 0.0, 1.0).astype("float32")
    return x[0], history
