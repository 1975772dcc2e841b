"""Adversarial examples, robustness tables and adversarial training.

* FGSM, the fast gradient sign method (Goodfellow, Shlens and Szegedy,
  "Explaining and Harnessing Adversarial Examples", ICLR 2015,
  arXiv:1412.6572): one step ``x + epsilon * sign(grad_x L(x, y))``, the
  worst case of a *linear* model inside the L-infinity ball of radius
  ``epsilon``.
* PGD, projected gradient descent (Madry et al., "Towards Deep Learning
  Models Resistant to Adversarial Attacks", ICLR 2018, arXiv:1706.06083):
  FGSM steps of size ``step_size`` from a random start in the ball, each
  followed by the projection back onto the ball and onto the image range.
* Adversarial training (Madry et al.) is a ``train`` option
  (``train(..., adversarial_epsilon=0.1)``, ``kcc train
  --adversarial-epsilon 0.1``), written in ``training.adversarial``; the
  functions here measure what it buys (``robustness_table``).

The loss ``L`` is the cross-entropy ``-log p(y | x)``
(``scores.log_probabilities``), so softmax models and logit models are
attacked alike. Images are floats in ``[0, 1]``; every adversarial image
stays there.
"""

import numpy as np
from keras import ops

from keras_cv_course.errors import KCCError, unknown_name_error
from keras_cv_course.understanding.gradients import gradient
from keras_cv_course.understanding.scores import (
    check_images,
    check_non_negative,
    log_probabilities,
)

PGD_STEPS = 10
PGD_STEP_FACTOR = 2.5  # step_size = 2.5 * epsilon / steps (Madry et al.)


def cross_entropy_function(model, labels):
    """``x -> -log p(labels | x)``, one loss per example, to differentiate."""
    labels = np.asarray(labels).astype("int32").reshape(-1)

    def loss(images):
        log_p = log_probabilities(model, images)
        return -ops.take_along_axis(log_p, ops.expand_dims(labels, -1), axis=-1)[:, 0]

    return loss


def _checked(model, images, labels, epsilon):
    images = check_images(images, model)
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(images):
        raise KCCError(f"got {len(images)} images but {len(labels)} labels")
    return images, labels, check_non_negative("epsilon", epsilon)


def _project(images, originals, epsilon):
    """Back onto the L-infinity ball around ``originals`` and onto ``[0, 1]``."""
    images = np.clip(images, originals - epsilon, originals + epsilon)
    return np.clip(images, 0.0, 1.0).astype("float32")


def fgsm(model, images, labels, epsilon):
    """Fast gradient sign method (Goodfellow et al. 2015).

    Args:
        model: a classifier (softmax or logit outputs).
        images: ``(batch, height, width, channels)`` floats in ``[0, 1]``.
        labels: the true class of each image.
        epsilon: L-infinity radius, >= 0.

    Returns:
        The adversarial images, within ``epsilon`` of ``images`` and in ``[0, 1]``.
    """
    images, labels, epsilon = _checked(model, images, labels, epsilon)
    grad = gradient(cross_entropy_function(model, labels), images)
    return _project(images + epsilon * np.sign(grad), images, epsilon)


def pgd(model, images, labels, epsilon, step_size=None, steps=PGD_STEPS, seed=0,
        random_start=True):
    """Projected gradient descent in the L-infinity ball (Madry et al. 2018).

    Args:
        model, images, labels, epsilon: as for ``fgsm``.
        step_size: size of each sign step; default ``2.5 * epsilon / steps``.
        steps: number of steps.
        seed: seed of the random start.
        random_start: start from a uniform point of the ball, not ``images``.

    Returns:
        The adversarial images, within ``epsilon`` of ``images`` and in ``[0, 1]``.
    """
    images, labels, epsilon = _checked(model, images, labels, epsilon)
    if int(steps) < 1:
        raise KCCError(f"steps must be a positive integer, got {steps}")
    if step_size is None:
        step_size = PGD_STEP_FACTOR * epsilon / int(steps)
    step_size = check_non_negative("step_size", step_size)
    adversarial = images
    if random_start:
        noise = np.random.default_rng(seed).uniform(-epsilon, epsilon, images.shape)
        adversarial = _project(images + noise, images, epsilon)
    loss = cross_entropy_function(model, labels)
    for _ in range(int(steps)):
        adversarial = adversarial + step_size * np.sign(gradient(loss, adversarial))
        adversarial = _project(adversarial, images, epsilon)
    return adversarial


ATTACKS = {"fgsm": fgsm, "pgd": pgd}


def get_attack(attack):
    """An attack function from its name (``ATTACKS``) or the function itself."""
    if callable(attack):
        return attack
    if attack not in ATTACKS:
        raise unknown_name_error("attack", attack, ATTACKS)
    return ATTACKS[attack]


def accuracy(model, images, labels):
    """Fraction of ``images`` whose arg-max prediction is the label."""
    predictions = np.argmax(ops.convert_to_numpy(model(images, training=False)), axis=-1)
    return float(np.mean(predictions == np.asarray(labels).reshape(-1)))


def adversarial_accuracy(model, images, labels, attack="fgsm", epsilon=0.1, **kwargs):
    """Accuracy on ``attack(model, images, labels, epsilon, **kwargs)``.

    ``epsilon=0`` gives the clean accuracy (every attack is the identity then).
    """
    adversarial = get_attack(attack)(model, images, labels, epsilon, **kwargs)
    return accuracy(model, adversarial, labels)


def robustness_table(models, images, labels, epsilons, attacks=("fgsm", "pgd"), **kwargs):
    """Adversarial accuracy of every model under every attack and radius.

    Args:
        models: ``{name: model}``.
        images, labels: the evaluation set.
        epsilons: L-infinity radii.
        attacks: attack names (``ATTACKS``).
        **kwargs: passed to the attacks that take them (``pgd``: ``steps``...).

    Returns:
        Rows ``(name, attack, epsilon, accuracy)``.
    """
    rows = []
    for name, model in models.items():
        for attack in attacks:
            options = kwargs if get_attack(attack) is pgd else {}
            for epsilon in epsilons:
                value = adversarial_accuracy(model, images, labels, attack, epsilon, **options)
                rows.append((name, attack, float(epsilon), value))
    return rows


def table_markdown(rows):
    """A Markdown table of ``robustness_table`` rows: one line per model and
    attack, one column per epsilon."""
    epsilons = sorted({row[2] for row in rows})
    cells = {}
    for name, attack, epsilon, value in rows:
        cells.setdefault((name, attack), {})[epsilon] = value
    lines = ["| model | attack | " + " | ".join(f"ε = {e:g}" for e in epsilons) + " |",
             "|---|---|" + "---|" * len(epsilons)]
    for (name, attack), values in cells.items():
        row = " | ".join(f"{values[e]:.3f}" if e in values else "" for e in epsilons)
        lines.append(f"| {name} | {attack} | {row} |")
    return "\n".join(lines)
