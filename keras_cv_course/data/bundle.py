"""A dataset ready for training: three splits plus what a model needs to know.

Every source (embedded arrays, TensorFlow Datasets, a folder of images) ends
as a ``DataBundle`` whose splits are unbatched ``tf.data.Dataset`` objects
with one element per example, shaped by the bundle's task
(``keras_cv_course.tasks``):

* ``(inputs, targets)`` for tasks with targets, ``inputs`` alone for tasks
  without (a generative model learns its inputs);
* ``inputs`` is one tensor when the task has one input (``images``, float32
  in [0, 1], shape ``(H, W, C)``), else a dict keyed by input name (an
  image and int32 tokens, say);
* ``targets`` is one tensor for one target (class ids, masks) or a dict
  (``{"boxes": (M, 4), "classes": (M,)}``, padded with -1).

``pipeline`` turns a split into batches with shuffling, augmentation,
padding of variable-length targets, and prefetching.
"""

import dataclasses
import functools
import os

import numpy as np
import tensorflow as tf

from keras_cv_course import specs
from keras_cv_course.errors import KCCError

PADDING = -1
"""The value that pads boxes, classes, tokens and other variable-length targets."""


@dataclasses.dataclass
class DataBundle:
    """Train, validation and test splits of one dataset for one task.

    Attributes:
        name: the dataset's name, e.g. ``"digits"``.
        task: the name of the task the targets are for.
        train, val, test: unbatched ``tf.data.Dataset`` splits.
        num_classes: classes of the targets (0 when they have none).
        class_names: one name per class.
        arrays: for in-memory sources, ``{"train": (inputs, targets), ...}``
            NumPy arrays (``targets`` is ``None`` for tasks without targets).
        skipped_files: ``"path: reason"`` of each file left out as bad.
        attributes: per-example group attributes for fairness analyses (model
            cards), ``{"train"|"val"|"test": {attribute: (n,) str array}}``
            in the order of ``arrays``; ``None`` for data without any.
    """

    name: str
    task: str
    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset
    num_classes: int = 0
    class_names: tuple = ()
    arrays: dict | None = None
    skipped_files: tuple = ()
    attributes: dict | None = None

    @classmethod
    def from_arrays(cls, name, task, splits, num_classes=0, class_names=(), attributes=None):
        """Builds a bundle from NumPy arrays, checked against the task's specs.

        Args:
            name: dataset name.
            task: a registered task name.
            splits: ``{"train": (inputs, targets), "val": ..., "test": ...}``;
                ``inputs`` an array or a dict of arrays, ``targets`` an array,
                a dict of arrays, or ``None``.
            num_classes: number of classes.
            class_names: optional class names.
            attributes: optional ``{split: {attribute: array}}``, one value
                per example of each split (see the class docstring).

        Raises:
            KCCError: a split is empty, a shape or dtype disagrees with the
                task's specs, a float array holds NaN or infinite values, or
                an attribute's length differs from its split's.
        """
        task_object = _task(task)
        checked = {}
        for key in ("train", "val", "test"):
            if key not in splits:
                raise KCCError(f"{name}: splits must have 'train', 'val' and 'test', "
                               f"got {sorted(splits)}")
            checked[key] = task_object.check_arrays(*splits[key], where=f"{name} {key}")
        datasets = {key: _to_dataset(*value) for key, value in checked.items()}
        return cls(name=name, task=task, num_classes=int(num_classes),
                   class_names=tuple(class_names), arrays=checked,
                   attributes=_check_attributes(name, attributes, checked), **datasets)

    def cached(self, where):
        """This bundle with each split cached after it is read and decoded.

        A ``tf.data`` cache makes every epoch after the first read decoded
        examples instead of files. The cache is filled here, by one full
        pass over each split, because a cache that an epoch leaves part-read
        (training drops the last partial batch) is thrown away.

        Args:
            where: ``None`` (no cache), ``"memory"``, or a folder for cache
                files. Files are named by dataset, task, image shape and
                split, so a resumed run reuses them.

        Raises:
            KCCError: ``where`` is a file, not a folder.
        """
        if where is None:
            return self
        if where != "memory":
            if os.path.isfile(where):
                raise KCCError(f"cache must be 'memory' or a folder, got the file {where!r}")
            os.makedirs(where, exist_ok=True)
        shape = "x".join(str(side) for side in self.image_shape)
        prefix = f"{self.name.replace(os.sep, '_').replace(':', '_')}-{self.task}-{shape}"

        def cache(split, key):
            cached = split.cache() if where == "memory" else split.cache(
                os.path.join(where, f"{prefix}-{key}"))
            cached.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1)
            return cached

        return dataclasses.replace(self, train=cache(self.train, "train"),
                                   val=cache(self.val, "val"), test=cache(self.test, "test"))

    @property
    def _task(self):
        return _task(self.task)

    @property
    def input_specs(self):
        """The inputs of one example, as ``TensorSpec`` objects."""
        element = self.train.element_spec
        inputs = element[0] if self._task.target_specs else element
        return _specs_of(inputs, self._task.input_specs)

    @property
    def target_specs(self):
        """The targets of one example, as ``TensorSpec`` objects (none without targets)."""
        if not self._task.target_specs:
            return ()
        return _specs_of(self.train.element_spec[1], self._task.target_specs)

    @property
    def image_shape(self):
        """``(H, W, C)`` of the ``images`` input (or of the only input)."""
        by_name = {spec.name: spec for spec in self.input_specs}
        spec = by_name.get("images", self.input_specs[0])
        return tuple(spec.shape)

    def golden_examples(self, size=8):
        """The first ``size`` test examples: ``(inputs, targets)``, or the inputs alone
        for tasks without targets."""
        batch = next(iter(_batch(self.test, size, False).take(1)))
        return tf.nest.map_structure(lambda tensor: tensor.numpy(), batch)

    def golden_batch(self, size=8):
        """The first ``size`` test inputs, used to check exports against Keras."""
        has_targets = bool(self._task.target_specs)
        inputs = self.test.map(_inputs_of if has_targets else _same)
        batch = next(iter(inputs.batch(size).take(1)))
        return tf.nest.map_structure(lambda tensor: tensor.numpy(), batch)


def _check_attributes(name, attributes, arrays):
    """``{split: {attribute: str array}}``, each as long as its split, or ``None``."""
    if attributes is None:
        return None
    checked = {}
    for key, (inputs, _) in arrays.items():
        count = len(next(iter(inputs.values())) if isinstance(inputs, dict) else inputs)
        checked[key] = {}
        for attribute, values in attributes.get(key, {}).items():
            values = np.asarray(values).astype(str)
            if values.shape != (count,):
                raise KCCError(f"{name} {key}: attribute {attribute!r} has shape {values.shape}, "
                               f"expected ({count},)")
            checked[key][attribute] = values
    return checked


def _task(name):
    from keras_cv_course.tasks import get_task

    return get_task(name)


def _inputs_of(inputs, targets):
    return inputs


def _same(inputs):
    return inputs


def _to_dataset(inputs, targets):
    if targets is None:
        return tf.data.Dataset.from_tensor_slices(inputs)
    return tf.data.Dataset.from_tensor_slices((inputs, targets))


def _specs_of(structure, task_specs):
    """``tf.TensorSpec`` (or a dict of them) -> package ``TensorSpec`` tuple."""
    if isinstance(structure, dict):
        named = structure
    else:
        named = {task_specs[0].name if task_specs else "inputs": structure}
    return tuple(specs.TensorSpec(name, tuple(spec.shape), spec.dtype.name)
                 for name, spec in named.items())


def pipeline(dataset, batch_size, training=False, augment=None, seed=0,
             shuffle_buffer=2048, drop_remainder=False, target_map=None):
    """Batches a split for ``model.fit``: shuffle, batch (padding), augment, prefetch.

    Elements whose tensors vary in length (boxes per image, caption tokens)
    are padded to the longest in each batch with ``PADDING`` (-1).

    Args:
        dataset: an unbatched split of a ``DataBundle``.
        batch_size: global batch size (a distribution strategy splits it).
        training: shuffle each epoch and apply ``augment``.
        augment: callable on a batch, ``(inputs, targets) -> (inputs,
            targets)`` (``inputs -> inputs`` without targets), or ``None``.
        seed: shuffling seed, so runs are repeatable.
        shuffle_buffer: size of the shuffle buffer.
        drop_remainder: drop the last partial batch.
        target_map: applied to every batch's targets before ``augment``, e.g.
            the one-hot labels of a label-mixing augmentation.
    """
    if int(batch_size) < 1:
        raise KCCError(f"batch_size must be a positive integer, got {batch_size!r}")
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = _batch(dataset, int(batch_size), drop_remainder)
    return _map_and_prefetch(dataset, augment if training else None, target_map)


def training_stream(dataset, batch_size, epochs, augment=None, seed=0, shuffle_buffer=2048,
                    target_map=None, steps_multiple=1, start_step=0):
    """Every epoch's training batches, one after another, fixed by the seed alone.

    Epoch ``e`` is shuffled with the seed ``(seed, e)``, and a seeded
    augmentation (``tasks.Augmentation.seeded``) draws batch ``s`` from
    ``augment.BatchSeed(seed, s)``. What a step trains on therefore does not
    depend on what this process did before: a run resumed at step 1234
    (``start_step``) sees exactly the batches an uninterrupted run sees from
    there, and whole epochs before it are not even read. ``model.fit`` reads
    the stream with ``steps_per_epoch``, which keeps one iterator across epochs.

    Args:
        dataset: an unbatched training split.
        batch_size: the global batch size.
        epochs: the run's epochs.
        augment, target_map: as for ``pipeline``.
        seed: seed of the data order and of the augmentation.
        steps_multiple: each epoch keeps a multiple of this many batches
            (``steps_per_execution`` runs that many steps per call).
        start_step: the first step to return (a resumed run's steps done).

    Returns:
        ``(stream, steps_per_epoch)``. Each epoch drops its last partial
        batch, and fewer than ``steps_multiple`` full ones.
    """
    steps = epoch_steps(dataset, batch_size, steps_multiple)

    def one_epoch(epoch):
        shuffled = dataset.shuffle(shuffle_buffer, seed=seed * 1_000_003 + epoch,
                                   reshuffle_each_iteration=False)
        return _batch(shuffled, int(batch_size), drop_remainder=True).take(steps)

    first_epoch = min(start_step // steps, epochs - 1)
    stream = functools.reduce(lambda head, tail: head.concatenate(tail),
                              [one_epoch(epoch) for epoch in range(first_epoch, epochs)])
    if target_map is not None:
        stream = backend_map(stream, lambda inputs, targets: (inputs, target_map(targets)))
    stream = stream.enumerate(first_epoch * steps).skip(start_step - first_epoch * steps)
    if augment is not None:
        stream = backend_map(stream, lambda step, batch: _augmented(augment, batch, seed, step))
    else:
        stream = stream.map(lambda step, batch: batch)
    return stream.prefetch(tf.data.AUTOTUNE), steps


def epoch_steps(dataset, batch_size, steps_multiple=1):
    """Training steps per epoch: full batches, a multiple of ``steps_multiple``."""
    if int(batch_size) < 1:
        raise KCCError(f"batch_size must be a positive integer, got {batch_size!r}")
    examples = _count(dataset)
    if examples < int(batch_size):
        raise KCCError(f"batch_size is larger than the training split ({batch_size} > "
                       f"{examples} examples); choose a smaller one")
    steps = examples // int(batch_size) // steps_multiple * steps_multiple
    if steps < 1:
        raise KCCError(f"batch_size {batch_size} x steps_per_execution {steps_multiple} is "
                       f"more than the training split's {examples} examples")
    return steps


def _augmented(augment, batch, seed, step):
    """``augment`` on one batch, its draws seeded by the run's seed and the step."""
    from keras_cv_course.data.augment import BatchSeed

    if getattr(augment, "seeded", False):
        return augment(*batch, seed=BatchSeed(seed, step))
    return augment(*batch)


def _count(dataset):
    """The number of examples, read from the cardinality or, if unknown, counted."""
    known = int(dataset.cardinality())
    if known >= 0:
        return known
    return int(dataset.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1))


def _map_and_prefetch(dataset, augment, target_map):
    """Maps the targets, augments, prefetches."""
    if target_map is not None:
        dataset = backend_map(dataset, lambda inputs, targets: (inputs, target_map(targets)))
    if augment is not None:
        dataset = backend_map(dataset, augment)
    return dataset.prefetch(tf.data.AUTOTUNE)


def backend_map(dataset, function):
    """``dataset.map(function)`` for a ``function`` written with ``keras.ops``.

    On the TensorFlow backend ``keras.ops`` are TensorFlow ops, and the map is
    traced into the ``tf.data`` graph as usual. On another backend (JAX)
    they cannot run in that graph, so each element is handed to the function
    as NumPy arrays through ``tf.numpy_function``, and the backend runs it
    eagerly. The output's structure and dtypes come from one trial call on
    zeros; its dimensions stay unknown to ``tf.data``.
    """
    import keras

    if keras.backend.backend() == "tensorflow":
        return dataset.map(function, num_parallel_calls=tf.data.AUTOTUNE)
    element_spec = dataset.element_spec

    def run(*arrays):
        element = tf.nest.pack_sequence_as(element_spec, list(arrays))
        output = function(*element) if isinstance(element, tuple) else function(element)
        return output, [np.asarray(keras.ops.convert_to_numpy(part))
                        for part in tf.nest.flatten(output)]

    zeros = [np.zeros([size or 1 for size in spec.shape], spec.dtype.as_numpy_dtype)
             for spec in tf.nest.flatten(element_spec)]
    structure, trial = run(*zeros)

    def mapped(*element):
        flat = tf.numpy_function(lambda *arrays: run(*arrays)[1], tf.nest.flatten(element),
                                 Tout=[tf.as_dtype(part.dtype) for part in trial])
        for part, example in zip(flat, trial):
            part.set_shape([None] * example.ndim)
        return tf.nest.pack_sequence_as(structure, flat)

    return dataset.map(mapped, num_parallel_calls=tf.data.AUTOTUNE)


def _batch(dataset, batch_size, drop_remainder):
    """``batch``, or ``padded_batch`` when some tensor's length varies."""
    shapes = tf.nest.flatten(dataset.element_spec)
    if all(spec.shape.is_fully_defined() for spec in shapes):
        return dataset.batch(batch_size, drop_remainder=drop_remainder)
    padding = tf.nest.map_structure(lambda spec: tf.constant(PADDING, spec.dtype),
                                    dataset.element_spec)
    return dataset.padded_batch(batch_size, padding_values=padding,
                                drop_remainder=drop_remainder)


def pad_ragged(sequences, length=None, pad_value=PADDING, dtype=None):
    """Stacks arrays of different lengths (along axis 0) into one padded array.

    Args:
        sequences: arrays ``(n_i, ...)`` with equal trailing shapes, e.g. the
            ``(n_i, 4)`` boxes of each image.
        length: the padded length; ``None`` uses the longest.
        pad_value: the fill value of the padding.
        dtype: the result's dtype; defaults to the first array's.

    Returns:
        ``(len(sequences), length, ...)``.

    Raises:
        KCCError: a sequence is longer than ``length``.

    Example:
        >>> pad_ragged([np.ones((1, 4)), np.ones((3, 4))]).shape
        (2, 3, 4)
    """
    arrays = [np.asarray(seq, dtype=dtype) for seq in sequences]
    longest = max((len(array) for array in arrays), default=0)
    length = longest if length is None else int(length)
    if longest > length:
        raise KCCError(f"cannot pad sequences of length {longest} to length {length}")
    trailing = arrays[0].shape[1:] if arrays else ()
    out = np.full((len(arrays), length, *trailing), pad_value,
                  dtype=dtype or (arrays[0].dtype if arrays else "float32"))
    for index, array in enumerate(arrays):
        out[index, :len(array)] = array
    return out


def resize_and_format(image, image_size=None, channels=None):
    """Converts an image tensor to float32 [0, 1], a size and a channel count."""
    if image.dtype == tf.uint8:
        image = tf.cast(image, tf.float32) / 255.0
    image = tf.cast(image, tf.float32)
    if image_size is not None:
        image = tf.image.resize(image, image_size, method="bilinear", antialias=True)
    if channels is not None:
        image = set_channels(image, channels)
    return tf.clip_by_value(image, 0.0, 1.0)


def set_channels(image, channels):
    """Converts between grayscale and RGB; other counts are an error."""
    have = image.shape[-1]
    if have == channels:
        return image
    if have == 1 and channels == 3:
        return tf.image.grayscale_to_rgb(image)
    if have == 3 and channels == 1:
        return tf.image.rgb_to_grayscale(image)
    raise KCCError(f"cannot convert images with {have} channels to {channels} channels")
