"""Sampling an autoregressive image model pixel by pixel, in NumPy alone.

Paper: Aaron van den Oord, Nal Kalchbrenner, Koray Kavukcuoglu. "Pixel
Recurrent Neural Networks". ICML 2016. arXiv:1601.06759.

``p(x) = prod_i p(x_i | x_<i)`` in raster order: each draw runs the whole
network on the image drawn so far and samples the next pixel (channel) from
its softmax. The loop runs around any forward pass, Keras or an exported
artifact; this module imports NumPy only.
"""

import numpy as np


def sample_pixels(forward, num_samples, image_shape, levels, seed=None):
    """Samples images in raster order (then channel order) with any forward pass.

    Args:
        forward: callable taking float32 NumPy images ``(n, H, W, C)`` in
            [0, 1] and returning logits ``(n, H, W, C, levels)`` (or a dict
            holding them as ``"logits"``): a Keras model, a SavedModel, a
            TFLite interpreter or an ONNX session wrapped in a function.
        num_samples: ``n``.
        image_shape: ``(H, W, C)``.
        levels: values per pixel.
        seed: NumPy seed (or a ``numpy.random.Generator``); equal seeds and
            forward passes give equal samples.

    Returns:
        int32 levels ``(n, H, W, C)``.

    Example:
        >>> runner = export.load_runner("tflite", "exported/model.tflite")
        >>> levels = sample_pixels(runner, 16, (8, 8, 1), levels=4, seed=0)
    """
    rng = np.random.default_rng(seed)
    height, width, channels = (int(d) for d in image_shape)
    drawn = np.zeros((int(num_samples), height, width, channels), dtype="int32")
    for row in range(height):
        for column in range(width):
            for channel in range(channels):
                logits = forward(levels_to_images(drawn, levels))
                logits = logits["logits"] if isinstance(logits, dict) else logits
                logits = np.asarray(logits, dtype="float64")[:, row, column, channel]  # (n, L)
                drawn[:, row, column, channel] = draw_categorical(rng, logits)
    return drawn


def draw_categorical(rng, logits):
    """One draw per row of ``logits`` ``(n, L)`` by inverting the softmax's CDF."""
    probabilities = np.exp(logits - logits.max(axis=-1, keepdims=True))
    cumulative = np.cumsum(probabilities, axis=-1)
    uniform = rng.uniform(size=(len(logits), 1)) * cumulative[:, -1:]
    return np.minimum((cumulative <= uniform).sum(axis=-1), logits.shape[-1] - 1)


def images_to_levels(images, levels):
    """Images in [0, 1] -> int32 levels ``round(x * (levels - 1))``."""
    return np.rint(np.asarray(images, dtype="float64") * (levels - 1)).astype("int32")


def levels_to_images(levels_array, levels):
    """Integer levels -> float32 images ``level / (levels - 1)`` in [0, 1]."""
    return (np.asarray(levels_array, dtype="float32") / float(levels - 1)).astype("float32")
