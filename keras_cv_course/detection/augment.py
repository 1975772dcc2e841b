"""Box-aware augmentation: a flip and a scale-jitter crop that move the boxes with the pixels.

Targets are the detection task's ``objects (B, M, 5)``: ``[ymin, xmin, ymax,
xmax, class]`` with the box normalised to [0, 1], padding rows -1. Both
functions use ``keras.ops`` and ``keras.random`` only, so they run in a
``tf.data`` pipeline and on any backend.

The scale-jitter crop is the large-scale jitter of detection training
recipes (e.g. Ghiasi et al., "Simple Copy-Paste is a Strong Data
Augmentation Method for Instance Segmentation", CVPR 2021,
arXiv:2012.07177) at the network's fixed input size: each image is zoomed
by a random factor and a random window of the input size is kept (zoom
below 1 pads with zeros). Boxes are scaled and shifted the same way,
clipped to the window, and a box left with no area becomes padding.
"""

import keras
from keras import ops

from keras_cv_course.data.augment import flip_boxes

MIN_VISIBLE_SIDE = 1e-3
"""A clipped box narrower or lower than this (normalised) is dropped."""


def _is_padding(objects):
    return objects[..., 4:5] < 0


def flip_with_boxes(images, objects, seed=None):
    """Mirrors each image left-right with probability 1/2, and its boxes with it."""
    flip = keras.random.uniform((ops.shape(images)[0],), seed=seed) < 0.5
    images = ops.where(flip[:, None, None, None], ops.flip(images, axis=2), images)
    moved = ops.concatenate([flip_boxes(objects[..., :4]), objects[..., 4:]], axis=-1)
    moved = ops.where(_is_padding(objects), objects, moved)
    return images, ops.where(flip[:, None, None], moved, objects)


def scale_jitter_crop(images, objects, scale_range=(0.75, 1.33), seed=None):
    """Zooms each image by a random factor in ``scale_range`` and keeps a random window.

    Args:
        images: ``(B, H, W, C)`` floats.
        objects: ``(B, M, 5)`` targets (module docstring).
        scale_range: the zoom factors drawn uniformly; above 1 crops, below 1 pads.
        seed: a ``keras.random.SeedGenerator`` or an int.

    Returns:
        ``(images, objects)`` of the same shapes.
    """
    batch = ops.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    scale = keras.random.uniform((batch,), scale_range[0], scale_range[1], seed=seed)
    span = 1.0 - 1.0 / scale  # where the window's origin may lie (negative: padding)
    origin_y = ops.minimum(span, 0.0) + ops.abs(span) * keras.random.uniform((batch,), seed=seed)
    origin_x = ops.minimum(span, 0.0) + ops.abs(span) * keras.random.uniform((batch,), seed=seed)
    zeros = ops.zeros_like(scale)
    # Output pixel (x, y) reads input pixel (x / s + ox * W, y / s + oy * H).
    transform = ops.stack([1.0 / scale, zeros, origin_x * width, zeros, 1.0 / scale,
                           origin_y * height, zeros, zeros], axis=-1)
    images = ops.image.affine_transform(images, transform, interpolation="bilinear",
                                        fill_mode="constant", fill_value=0.0)
    return images, _move_boxes(objects, scale, origin_y, origin_x)


def _move_boxes(objects, scale, origin_y, origin_x):
    """Boxes in the zoomed window's coordinates, clipped; empty ones become padding."""
    offset = ops.stack([origin_y, origin_x, origin_y, origin_x], axis=-1)[:, None, :]
    boxes = ops.clip((objects[..., :4] - offset) * scale[:, None, None], 0.0, 1.0)
    visible = ((boxes[..., 2] - boxes[..., 0]) > MIN_VISIBLE_SIDE) & (
        (boxes[..., 3] - boxes[..., 1]) > MIN_VISIBLE_SIDE)
    moved = ops.concatenate([boxes, objects[..., 4:]], axis=-1)
    keep = visible[..., None] & ~_is_padding(objects)
    return ops.where(keep, moved, -ops.ones_like(objects))
