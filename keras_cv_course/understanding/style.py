"""Neural style transfer by optimisation (Gatys, Ecker and Bethge 2016).

Gatys, Ecker and Bethge, "Image Style Transfer Using Convolutional Neural
Networks", CVPR 2016 (arXiv:1508.06576 for the first version): an image is
optimised so that its deep features match a *content* image's and the Gram
matrices of its features (which correlations between channels occur, wherever
they are) match a *style* image's.

Definitions (named choices):

* ``gram_matrix``: ``G[c, d] = sum_{h, w} F[h, w, c] F[h, w, d] / (H W C)``.
  Dividing by ``H W`` makes it an average over positions, so images of
  different sizes compare; the further ``1 / C`` keeps layers of different
  widths on a similar scale (the normalisation of the PyTorch examples'
  ``fast_neural_style``; Gatys et al. divide the squared difference by
  ``4 N^2 M^2`` instead).
* ``style_loss``: the sum over layers of the mean squared difference of Gram
  matrices; ``content_loss``: the mean squared difference of features
  (Johnson et al.'s ``1 / (C H W)`` normalisation; Gatys et al. use half the
  sum).
* ``synthesis.total_variation``: the mean squared difference of neighbouring
  pixels (Mahendran and Vedaldi, "Understanding Deep Image Representations by
  Inverting Them", CVPR 2015, with beta = 2), a smoothness prior.
* The image is optimised in pixel space with Adam (Kingma and Ba, ICLR 2015,
  arXiv:1412.6980; ``gradients.Adam``), in NumPy over
  ``gradients.value_and_gradient`` (TensorFlow and JAX backends), and clipped
  to ``[0, 1]`` after each step. It starts from the content image (as most
  implementations do) or, with ``init="noise"``, from uniform noise as in
  Gatys et al.
"""

import numpy as np
from keras import ops

from keras_cv_course.errors import KCCError
from keras_cv_course.understanding.gradients import Adam, value_and_gradient
from keras_cv_course.understanding.style_features import CONTENT_LAYER
from keras_cv_course.understanding.synthesis import total_variation


def gram_matrix(features):
    """Channel correlations ``(batch, C, C)`` of features ``(batch, H, W, C)``, over ``H W C``."""
    features = ops.cast(features, "float32")
    _, height, width, channels = ops.shape(features)
    gram = ops.einsum("bhwc,bhwd->bcd", features, features)
    return gram / ops.cast(height * width * channels, "float32")


def style_loss(features, style_grams):
    """Sum over layers of ``mean((gram(F_l) - A_l)^2)``; ``style_grams`` is ``{layer: A_l}``."""
    total = 0.0
    for name, target in style_grams.items():
        difference = gram_matrix(features[name]) - ops.cast(target, "float32")
        total = total + ops.mean(ops.square(difference))
    return total


def content_loss(features, target):
    """``mean((F - P)^2)``: the features of one layer against the content image's."""
    difference = ops.cast(features, "float32") - ops.cast(target, "float32")
    return ops.mean(ops.square(difference))


def style_targets(extractor, style):
    """``{layer: Gram matrix (1, C, C)}`` of the style image, as NumPy arrays."""
    features = extractor(_batch(style))
    return {name: ops.convert_to_numpy(gram_matrix(value)) for name, value in features.items()}


def perceptual_loss(features, content_features, style_grams, style_weight, content_weight,
                    content_layer=CONTENT_LAYER):
    """``style_weight * style_loss + content_weight * content_loss`` at ``content_layer``."""
    return (style_weight * style_loss(features, style_grams)
            + content_weight * content_loss(features[content_layer], content_features))


def stylize_by_optimisation(content, style, extractor, steps=200, learning_rate=0.02,
                            style_weight=10.0, content_weight=1.0, tv_weight=1.0, seed=0,
                            init="content", content_layer=CONTENT_LAYER):
    """Gatys et al.'s style transfer: optimise the image itself.

    Args:
        content: the content image ``(H, W, 3)`` (or ``(1, H, W, 3)``) in ``[0, 1]``.
        style: the style image in ``[0, 1]``, of any size the extractor takes.
        extractor: ``perceptual_extractor``'s model (``{layer: features}``).
        steps: Adam steps.
        learning_rate: Adam's step size, in pixel units of ``[0, 1]``.
        style_weight, content_weight, tv_weight: weights of the three losses;
            they depend on the extractor's weights and must be tuned per style.
        seed: seeds the starting noise of ``init="noise"``.
        init: ``"content"`` (start from the content image) or ``"noise"``.
        content_layer: the extractor's output that carries the content.

    Returns:
        ``(image, history)``: the ``(H, W, 3)`` float32 image in ``[0, 1]`` and
        the total loss before each step (``steps`` floats).
    """
    content = _batch(content)
    if init == "content":
        image = content.copy()
    elif init == "noise":
        image = np.random.default_rng(seed).uniform(size=content.shape).astype("float32")
    else:
        raise KCCError(f"init must be 'content' or 'noise', got {init!r}")
    grams = style_targets(extractor, style)
    target = ops.convert_to_numpy(extractor(content)[content_layer])

    def loss(images):
        features = extractor(images)
        return (perceptual_loss(features, target, grams, style_weight, content_weight,
                                content_layer)
                + tv_weight * total_variation(images))

    optimizer = Adam(learning_rate)
    history = []
    for _ in range(steps):
        value, grad = value_and_gradient(loss, image)
        history.append(float(value))
        image = np.clip(optimizer.step(image, grad), 0.0, 1.0)
    return image[0].astype("float32"), history


def _batch(image):
    """A float32 batch ``(1, H, W, 3)`` from one image or a batch of one."""
    image = np.asarray(image, dtype="float32")
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or image.shape[-1] != 3:
        raise KCCError(f"expected an RGB image (H, W, 3), got shape {image.shape}")
    return image
