"""Batch augmentations: the standard policy, Mixup and CutMix.

Every function takes a batch ``images`` ``(batch, height, width, channels)``
with float pixels in [0, 1] (and, for the label-mixing ones, ``labels``) and
returns a batch of the same shape. They use ``keras.ops`` and
``keras.random`` only, so they run on any backend, inside ``tf.data``
pipelines under the TensorFlow backend, and inside a model.

==============  ================================================================
policy          what it does to a batch
==============  ================================================================
``none``        nothing
``standard``    random crop after zero padding, horizontal flip, colour jitter
                (the CIFAR recipe of He et al., CVPR 2016, arXiv:1512.03385,
                plus the brightness/contrast/saturation jitter of torchvision)
``mixup``       convex combinations of image pairs and of their one-hot labels
                (Zhang, Cisse, Dauphin, Lopez-Paz, "mixup: Beyond Empirical
                Risk Minimization", ICLR 2018, arXiv:1710.09412)
``cutmix``      a box of one image pasted into another; labels mixed by the
                box's area (Yun et al., "CutMix", ICCV 2019, arXiv:1905.04899)
==============  ================================================================

Labels: ``none`` and ``standard`` leave labels untouched. ``mixup`` and
``cutmix`` take integer labels ``(batch,)`` (or one-hot ``(batch, classes)``)
and return **mixed one-hot labels** ``(batch, num_classes)`` as float32, so
train with ``categorical_crossentropy``. As in both papers' reference code,
one mixing coefficient and one pairing (a random permutation of the batch)
are drawn per batch.

Example:
    >>> policy = get_policy("cutmix", num_classes=10, seed=0)
    >>> images, soft_labels = policy(images, labels)
"""

import keras
from keras import ops
from keras.src.backend import random_seed_dtype

from keras_cv_course.errors import KCCError, unknown_name_error


def _batch(images):
    return ops.shape(images)[0]


def random_crop_with_padding(images, padding=4, seed=None):
    """Zero-pads every side by ``padding`` pixels, then crops a random window
    of the original size from each image.

    The crop is written as two one-hot matrix products (rows, then columns),
    which select pixels exactly and need no per-example slicing.
    """
    height, width = images.shape[1], images.shape[2]
    padded = ops.pad(images, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
    offsets = keras.random.randint((_batch(images), 2), 0, 2 * padding + 1, seed=seed)
    rows = offsets[:, :1] + ops.arange(height)[None, :]  # (batch, height)
    cols = offsets[:, 1:] + ops.arange(width)[None, :]  # (batch, width)
    pick_rows = ops.one_hot(rows, height + 2 * padding, dtype=images.dtype)
    pick_cols = ops.one_hot(cols, width + 2 * padding, dtype=images.dtype)
    cropped = ops.einsum("bip,bpqc->biqc", pick_rows, padded)
    return ops.einsum("bjq,biqc->bijc", pick_cols, cropped)


def random_flip(images, seed=None):
    """Mirrors each image left-right with probability 1/2."""
    flip = keras.random.uniform((_batch(images), 1, 1, 1), seed=seed) < 0.5
    return ops.where(flip, ops.flip(images, axis=2), images)


def flip_with_masks(images, masks, seed=None):
    """Mirrors each image and its ``(batch, height, width)`` mask together, p = 1/2."""
    flip = keras.random.uniform((_batch(images),), seed=seed) < 0.5
    images = ops.where(flip[:, None, None, None], ops.flip(images, axis=2), images)
    return images, ops.where(flip[:, None, None], ops.flip(masks, axis=2), masks)


def flip_boxes(boxes):
    """Moves normalised ``[ymin, xmin, ymax, xmax]`` boxes with a left-right flip.

    ``x`` becomes ``1 - x``, so ``xmin' = 1 - xmax`` and ``xmax' = 1 - xmin``.
    Padding rows (all -1) stay padding.

    Args:
        boxes: ``(..., 4)`` boxes in [0, 1], or -1 rows of padding.
    """
    ymin, xmin, ymax, xmax = (boxes[..., index] for index in range(4))
    flipped = ops.stack([ymin, 1.0 - xmax, ymax, 1.0 - xmin], axis=-1)
    padding = ops.all(boxes == -1.0, axis=-1, keepdims=True)
    return ops.where(padding, boxes, flipped)


def _grayscale(images):
    if images.shape[-1] == 3:
        weights = ops.convert_to_tensor([0.299, 0.587, 0.114], dtype=images.dtype)
        return ops.sum(images * weights, axis=-1, keepdims=True)
    return ops.mean(images, axis=-1, keepdims=True)


def color_jitter(images, brightness=0.2, contrast=0.2, saturation=0.2, seed=None):
    """Random brightness, contrast and saturation, each factor drawn per image
    from ``U(1 - s, 1 + s)``; saturation only for 3-channel images.

    Brightness scales pixels; contrast blends with the image's mean gray
    level; saturation blends with each pixel's gray value. Results are
    clipped to [0, 1].
    """

    def factor(strength):
        return keras.random.uniform((_batch(images), 1, 1, 1), 1.0 - strength, 1.0 + strength,
                                    seed=seed, dtype=images.dtype)

    images = images * factor(brightness)
    mean = ops.mean(_grayscale(images), axis=(1, 2, 3), keepdims=True)
    images = mean + (images - mean) * factor(contrast)
    if images.shape[-1] == 3:
        gray = _grayscale(images)
        images = gray + (images - gray) * factor(saturation)
    return ops.clip(images, 0.0, 1.0)


def standard(images, padding=None, seed=None):
    """The standard policy: padded random crop, flip, colour jitter.

    Args:
        images: ``(batch, height, width, channels)`` in [0, 1].
        padding: pixels of zero padding; ``None`` uses ``height // 8`` (4 for
            32x32 CIFAR images).
        seed: a ``SeedGenerator`` (or int) for the draws.
    """
    if padding is None:
        padding = max(1, images.shape[1] // 8)
    images = random_crop_with_padding(images, padding, seed=seed)
    images = random_flip(images, seed=seed)
    return color_jitter(images, seed=seed)


def one_hot_labels(labels, num_classes):
    """Integer labels ``(batch,)`` or ``(batch, 1)`` -> float one-hot; one-hot passes."""
    if len(labels.shape) == 2 and labels.shape[-1] == num_classes and num_classes > 1:
        return ops.cast(labels, "float32")
    labels = ops.reshape(labels, (-1,))
    return ops.one_hot(ops.cast(labels, "int32"), num_classes, dtype="float32")


def _pairing(images, seed):
    return keras.random.shuffle(ops.arange(_batch(images)), seed=seed)


def mixup(images, labels, num_classes, alpha=0.2, seed=None):
    """Mixup of a batch with a shuffled copy of itself.

    ``x = lam x_i + (1 - lam) x_j`` and ``y = lam y_i + (1 - lam) y_j`` with
    ``lam ~ Beta(alpha, alpha)``.

    Returns:
        ``(images, mixed_one_hot_labels)``.
    """
    lam = keras.random.beta((), alpha, alpha, seed=seed)
    partner = _pairing(images, seed)
    targets = one_hot_labels(labels, num_classes)
    mixed_images = lam * images + (1.0 - lam) * ops.take(images, partner, axis=0)
    mixed_labels = lam * targets + (1.0 - lam) * ops.take(targets, partner, axis=0)
    return mixed_images, mixed_labels


def cutmix_box(height, width, lam, seed=None):
    """A box of area ``(1 - lam) H W`` at a uniform random centre, clipped to the image.

    Returns:
        ``(mask, kept_fraction)``: ``mask`` is ``(1, H, W, 1)`` with 1 inside
        the box, and ``kept_fraction`` is ``1 - box_area / (H W)`` after
        clipping, the label weight of the original image.
    """
    cut = ops.sqrt(1.0 - lam)
    box_h, box_w = ops.floor(height * cut), ops.floor(width * cut)
    centre = keras.random.uniform((2,), seed=seed) * ops.convert_to_tensor(
        [float(height), float(width)])
    top = ops.clip(ops.floor(centre[0] - box_h / 2), 0, height)
    bottom = ops.clip(ops.floor(centre[0] + box_h / 2), 0, height)
    left = ops.clip(ops.floor(centre[1] - box_w / 2), 0, width)
    right = ops.clip(ops.floor(centre[1] + box_w / 2), 0, width)
    rows = ops.reshape(ops.arange(height, dtype="float32"), (1, height, 1, 1))
    cols = ops.reshape(ops.arange(width, dtype="float32"), (1, 1, width, 1))
    inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
    kept = 1.0 - (bottom - top) * (right - left) / float(height * width)
    return ops.cast(inside, "float32"), kept


def cutmix(images, labels, num_classes, alpha=1.0, seed=None):
    """Pastes a box from a partner image; labels are mixed by the visible areas.

    Returns:
        ``(images, mixed_one_hot_labels)``.
    """
    lam = keras.random.beta((), alpha, alpha, seed=seed)
    partner = _pairing(images, seed)
    mask, kept = cutmix_box(images.shape[1], images.shape[2], lam, seed=seed)
    mask = ops.cast(mask, images.dtype)
    mixed_images = images * (1.0 - mask) + ops.take(images, partner, axis=0) * mask
    targets = one_hot_labels(labels, num_classes)
    mixed_labels = kept * targets + (1.0 - kept) * ops.take(targets, partner, axis=0)
    return mixed_images, mixed_labels


class Policy:
    """A named batch augmentation: ``policy(images, labels) -> (images, labels)``.

    Args:
        name: one of ``POLICIES``.
        num_classes: needed by ``mixup`` and ``cutmix``.
        seed: seed of the policy's ``SeedGenerator``.
        **options: keyword arguments of the policy function (``alpha``,
            ``padding``).
    """

    def __init__(self, name, num_classes=None, seed=None, **options):
        if name not in POLICIES:
            raise unknown_name_error("augmentation policy", name, POLICIES)
        if name in ("mixup", "cutmix") and not num_classes:
            raise KCCError(f"augmentation {name!r} mixes labels and needs num_classes, "
                           f"got {num_classes!r}")
        self.name = name
        self.num_classes = num_classes
        self.options = options
        self.seed_generator = keras.random.SeedGenerator(seed)

    @property
    def mixes_labels(self):
        """True when labels come out as mixed one-hot vectors."""
        return self.name in ("mixup", "cutmix")

    def __call__(self, images, labels, seed=None):
        """Augments a batch; ``seed`` (e.g. a ``BatchSeed``) replaces the policy's generator."""
        seed = self.seed_generator if seed is None else seed
        images = ops.cast(images, "float32")
        if self.name == "none":
            return images, labels
        if self.name == "standard":
            return standard(images, seed=seed, **self.options), labels
        function = mixup if self.name == "mixup" else cutmix
        return function(images, labels, self.num_classes, seed=seed, **self.options)


class BatchSeed(keras.random.SeedGenerator):
    """Random draws that are a pure function of a run's seed and a batch's step.

    A ``keras.random.SeedGenerator`` keeps its state in a variable, so its
    draws depend on how many batches went before in this process. This one
    holds no state: its ``k``-th draw uses the seed ``(seed, step * 64 + k)``,
    so batch ``step`` is augmented alike in an uninterrupted run and in a run
    resumed from a backup. Made inside the data pipeline, once per batch.
    """

    DRAWS_PER_BATCH = 64

    def __init__(self, seed, step):  # no variable: nothing of the parent is needed
        self._seed = ops.cast(seed, "int32")
        self._step = ops.cast(step, "int32")
        self._draws = 0

    def next(self, ordered=True):
        self._draws += 1
        if self._draws >= self.DRAWS_PER_BATCH:
            raise KCCError(f"an augmentation drew more than {self.DRAWS_PER_BATCH} times "
                           "from one BatchSeed")
        seed = ops.stack([self._seed, self._step * self.DRAWS_PER_BATCH + self._draws])
        return ops.cast(seed, random_seed_dtype())  # uint32 on JAX, int64 on TensorFlow


POLICIES = ("none", "standard", "mixup", "cutmix")


def get_policy(name, num_classes=None, seed=None, **options):
    """Returns the batch augmentation ``name``.

    The result is a callable ``(images, labels) -> (images, labels)``.

    Args:
        name: ``"none"``, ``"standard"``, ``"mixup"`` or ``"cutmix"``.
        num_classes: number of classes (``mixup`` and ``cutmix`` only).
        seed: seed of the random draws.
        **options: passed to the policy function, e.g. ``alpha=0.4``.

    Raises:
        KCCError: unknown name (listing the valid ones), or a label-mixing
            policy without ``num_classes``.
    """
    return Policy(name, num_classes=num_classes, seed=seed, **options)
