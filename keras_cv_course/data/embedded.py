"""Datasets that ship with the package, so everything runs offline.

* ``digits``: the 1,797 real 8x8 handwritten digits that scikit-learn
  ships (from the UCI "Optical Recognition of Handwritten Digits" set),
  resized to any size and channel count. Datasheet: ``datasheets/digits.md``.
* ``shapes``: a seeded procedural generator of coloured circles, squares and
  triangles with class labels, boxes, instance masks, semantic masks and
  captions. Datasheet: ``datasheets/shapes.md``.
"""

import numpy as np

from keras_cv_course.errors import KCCError

SHAPE_CLASSES = ("circle", "square", "triangle")
COLOURS = {
    "red": (0.9, 0.1, 0.1),
    "green": (0.1, 0.8, 0.2),
    "blue": (0.1, 0.3, 0.9),
    "yellow": (0.95, 0.85, 0.1),
    "purple": (0.6, 0.2, 0.8),
}


def split_indices(labels, seed, test_fraction=0.2, val_fraction=0.1):
    """Stratified, seeded train/val/test index split."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    rest, test = train_test_split(indices, test_size=test_fraction, random_state=seed,
                                  stratify=labels)
    train, val = train_test_split(rest, test_size=val_fraction / (1 - test_fraction),
                                  random_state=seed, stratify=labels[rest])
    return {"train": train, "val": val, "test": test}


def digits_arrays(image_size=(8, 8), channels=1):
    """scikit-learn's digits as float32 images in [0, 1] and int labels.

    Args:
        image_size: ``(height, width)``; 8x8 is the native size, larger sizes
            are bilinear upsamplings.
        channels: 1 (grayscale) or 3 (the gray value repeated).

    Returns:
        ``(images (1797, H, W, C), labels (1797,))``.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype("float32")[..., None]  # (1797, 8, 8, 1)
    images = _resize(images, image_size)
    if channels not in (1, 3):
        raise KCCError(f"digits channels must be 1 or 3, got {channels!r}")
    if channels == 3:
        images = np.repeat(images, 3, axis=-1)
    return images, digits.target.astype("int32")


def _resize(images, image_size):
    if tuple(image_size) == images.shape[1:3]:
        return images
    import tensorflow as tf

    resized = tf.image.resize(images, tuple(image_size), method="bilinear")
    return np.clip(resized.numpy(), 0.0, 1.0).astype("float32")


def generate_shapes(num_images, image_size=32, max_shapes=1, seed=0):
    """Draws coloured shapes on noisy backgrounds, with every annotation.

    Args:
        num_images: how many images.
        image_size: side of the square images.
        max_shapes: each image has between 1 and ``max_shapes`` shapes.
        seed: the generator is deterministic for a given seed.

    Returns:
        A dict of NumPy arrays and lists:
        ``images`` (N, S, S, 3) float32 in [0, 1]; ``labels`` (N,) class of
        the first shape; ``semantic_masks`` (N, S, S) with 0 for background
        and 1 + class for shapes; ``instance_masks``, ``boxes`` (normalised
        ``[ymin, xmin, ymax, xmax]``) and ``classes``, lists with one array
        per image; ``captions``, one sentence per image (``describe_shape``
        of each shape, joined by "and"); ``colours`` (N,)
        str and ``radii`` (N,) float32, the colour and the radius (a
        fraction of the image side, drawn from [0.18, 0.32]) of the first
        shape, the one ``labels`` names: group attributes for model cards.
    """
    rng = np.random.default_rng(seed)
    grid_y, grid_x = np.mgrid[0:image_size, 0:image_size] + 0.5
    out = {key: [] for key in ("images", "labels", "semantic_masks", "instance_masks",
                               "boxes", "classes", "captions", "colours", "radii")}
    for _ in range(num_images):
        image = _background(rng, image_size)
        semantic = np.zeros((image_size, image_size), dtype="int32")
        masks, boxes, classes, words, looks = [], [], [], [], []
        for _ in range(rng.integers(1, max_shapes + 1)):
            class_id = int(rng.integers(len(SHAPE_CLASSES)))
            colour = list(COLOURS)[rng.integers(len(COLOURS))]
            mask, radius = _shape_mask(rng, class_id, grid_y, grid_x, image_size)
            image[mask] = np.asarray(COLOURS[colour]) + rng.normal(0, 0.03, 3)
            semantic[mask] = class_id + 1
            masks.append(mask)
            boxes.append(_box_of(mask, image_size))
            classes.append(class_id)
            words.append(describe_shape(class_id, colour, radius / image_size, boxes[-1]))
            looks.append((colour, radius / image_size))
        out["images"].append(np.clip(image, 0, 1).astype("float32"))
        out["labels"].append(classes[0])
        out["semantic_masks"].append(semantic)
        out["instance_masks"].append(np.stack(masks))
        out["boxes"].append(np.asarray(boxes, dtype="float32"))
        out["classes"].append(np.asarray(classes, dtype="int32"))
        out["captions"].append(" and ".join(words))
        out["colours"].append(looks[0][0])
        out["radii"].append(looks[0][1])
    for key in ("images", "labels", "semantic_masks"):
        out[key] = np.stack(out[key])
    out["colours"] = np.asarray(out["colours"])
    out["radii"] = np.asarray(out["radii"], dtype="float32")
    return out


LARGE_RADIUS = 0.25
"""A shape is "large" in captions when its radius is at least this fraction of the side."""


def describe_shape(class_id, colour, radius, box):
    """A caption of one shape: size, colour, class and side, e.g. "a large red circle on the left".

    ``radius`` is a fraction of the image side; the side is the half of the
    image that holds the centre of the shape's box (normalised ``[ymin,
    xmin, ymax, xmax]``)."""
    size = "large" if radius >= LARGE_RADIUS else "small"
    side = "left" if (box[1] + box[3]) / 2 < 0.5 else "right"
    return f"a {size} {colour} {SHAPE_CLASSES[class_id]} on the {side}"


def _background(rng, size):
    base = rng.uniform(0.0, 0.35, size=3)
    return np.clip(base + rng.normal(0, 0.04, (size, size, 3)), 0, 1)


def _shape_mask(rng, class_id, grid_y, grid_x, size):
    """The boolean mask of one shape, and its radius in pixels."""
    radius = rng.uniform(0.18, 0.32) * size
    cy, cx = rng.uniform(radius, size - radius, size=2)
    dy, dx = grid_y - cy, grid_x - cx
    if SHAPE_CLASSES[class_id] == "circle":
        return dy ** 2 + dx ** 2 <= radius ** 2, radius
    if SHAPE_CLASSES[class_id] == "square":
        half = radius / np.sqrt(2) * 1.2
        return (np.abs(dy) <= half) & (np.abs(dx) <= half), radius
    # Upward triangle: inside the base and both slanted sides.
    return (dy <= radius / 2) & (dy >= -radius + 2 * np.abs(dx) * 0.9), radius


def _box_of(mask, size):
    rows, cols = np.nonzero(mask)
    return [rows.min() / size, cols.min() / size, (rows.max() + 1) / size, (cols.max() + 1) / size]
