"""PGD adversarial training, a ``train`` option for any one-image-input model.

Madry et al. ("Towards Deep Learning Models Resistant to Adversarial
Attacks", ICLR 2018, arXiv:1706.06083) train on the worst image inside the
L-infinity ball of radius ``epsilon`` around each training image, found by
projected gradient ascent on the loss (PGD). Here every training step

1. runs ``steps`` PGD steps of size ``2.5 * epsilon / steps`` against the
   current weights, on the model's own compiled loss, with the model in
   inference mode;
2. takes one optimizer step on the mean of the clean and the adversarial
   loss, the mixed objective of Goodfellow, Shlens and Szegedy
   ("Explaining and Harnessing Adversarial Examples", ICLR 2015,
   arXiv:1412.6572), which keeps the clean accuracy up.

The attack starts at the clean image, as the basic iterative method of
Kurakin, Goodfellow and Bengio ("Adversarial Machine Learning at Scale",
ICLR 2017, arXiv:1611.01236) does, rather than at Madry et al.'s random
point: a random start inside a compiled step needs a seed state threaded
through it, and with several steps the start matters little.

How it plugs in: Keras calls ``model.compute_loss`` from its train step on
every backend. ``adversarial_loss`` wraps that method on the model
instance for the length of a ``with`` block; the model's class, config,
weights and saved files are unchanged. The loss is the model's own, so
the option works for any task whose model takes one image batch in
``[0, 1]``. Validation and test losses (``training=False``) stay clean.
"""

import contextlib
import dataclasses

from keras import ops

from keras_cv_course.errors import KCCError
from keras_cv_course.understanding.adversarial import PGD_STEP_FACTOR
from keras_cv_course.understanding.gradients import tensor_gradient

CLEAN_WEIGHT = 0.5  # Goodfellow et al.'s alpha: half clean, half adversarial


@dataclasses.dataclass(frozen=True)
class Adversary:
    """The PGD attack that adversarial training fits against.

    Attributes:
        epsilon: L-infinity radius, in ``(0, 1]`` for pixels in ``[0, 1]``.
        steps: PGD steps per training batch.
    """

    epsilon: float
    steps: int = 7

    def __post_init__(self):
        if not isinstance(self.epsilon, int | float) or not 0 < self.epsilon <= 1:
            raise KCCError(f"adversarial epsilon must be a number in (0, 1], "
                           f"got {self.epsilon!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise KCCError(f"adversarial steps must be a positive integer, got {self.steps!r}")

    @classmethod
    def from_options(cls, epsilon, steps):
        """``train``'s options as an ``Adversary``; ``None`` when ``epsilon`` is."""
        return None if epsilon is None else cls(epsilon, steps)

    @property
    def step_size(self):
        return PGD_STEP_FACTOR * self.epsilon / self.steps


def check_model(model):
    """Raises a one-line error unless ``model`` takes one image batch."""
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4:
        shapes = [tuple(tensor.shape) for tensor in model.inputs]
        raise KCCError(f"adversarial training needs a model with one image input "
                       f"(batch, height, width, channels), got inputs {shapes}")


def attack(model, plain_loss, images, targets, sample_weight, adversary):
    """PGD images against ``model``'s current weights, as backend tensors.

    ``plain_loss`` is the model's own ``compute_loss``; its gradient with
    respect to the images drives the attack.
    """
    images = ops.cast(images, "float32")

    def loss_of(candidates):
        predictions = model(candidates, training=False)
        return plain_loss(candidates, targets, predictions, sample_weight, training=False)

    adversarial = images
    for _ in range(adversary.steps):
        step = adversary.step_size * ops.sign(tensor_gradient(loss_of, adversarial))
        adversarial = ops.clip(adversarial + step, images - adversary.epsilon,
                               images + adversary.epsilon)
        adversarial = ops.clip(adversarial, 0.0, 1.0)
    return ops.stop_gradient(adversarial)


def mixed_loss(model, plain_loss, adversary):
    """A ``compute_loss`` that adds the adversarial half while training."""

    def compute_loss(x=None, y=None, y_pred=None, sample_weight=None, training=True):
        clean = plain_loss(x, y, y_pred, sample_weight, training=training)
        if not training:
            return clean
        images = attack(model, plain_loss, x, y, sample_weight, adversary)
        worst = plain_loss(images, y, model(images, training=True), sample_weight,
                           training=training)
        return CLEAN_WEIGHT * clean + (1 - CLEAN_WEIGHT) * worst

    return compute_loss


@contextlib.contextmanager
def adversarial_loss(model, adversary):
    """Inside the block, ``model.fit`` trains ``model`` adversarially.

    Args:
        model: a compiled model with one image input in ``[0, 1]``.
        adversary: an ``Adversary``, or ``None`` to leave the model alone.
    """
    if adversary is None:
        yield model
        return
    check_model(model)
    model.compute_loss = mixed_loss(model, model.compute_loss, adversary)
    try:
        yield model
    finally:
        del model.compute_loss  # the class's method again
        model.train_function = None  # the next fit compiles a clean train step
