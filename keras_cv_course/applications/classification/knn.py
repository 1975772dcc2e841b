"""k-nearest-neighbour classification: the course's first classifier.

Paper: T. Cover, P. Hart. "Nearest Neighbor Pattern Classification". IEEE
Transactions on Information Theory 13(1), 1967.

Training memorises the training set; prediction finds the ``k`` stored
images closest to the query and takes a majority vote of their labels.
Two distances are taught:

* L1 (Manhattan): ``d(a, b) = sum_p |a_p - b_p|``;
* L2 (Euclidean): ``d(a, b) = sqrt(sum_p (a_p - b_p)^2)``, computed for all
  pairs at once through ``|a|^2 - 2 a.b + |b|^2``, one matrix product.

``k`` (and the metric) are hyperparameters chosen on validation data, here
by ``choose_k`` with k-fold cross-validation.

Tie rules, named: equally distant neighbours are ranked by their index in
the training set (lower first), and a tied vote goes to the smallest class
index, as in scikit-learn's majority vote. scikit-learn itself breaks ties
in distance by the order its parallel chunks finish, so the two agree on
every query whose k nearest neighbours are unique (``tests/test_knn.py``).

Two forms are given: NumPy functions for the course (``knn_predict``,
``choose_k``), and a Keras model (``KNNClassifier``) whose memory lives in
non-trainable variables of a fixed ``memory_size``, filled by
``model.memorize(images, labels)`` instead of ``fit``. Its forward pass uses
only matmul, abs, sum, top-k, gather and one-hot, which TFLite and ONNX have
as built-in ops, so the memorised model exports like any other. It outputs
vote fractions, which sum to 1 once the memory holds at least ``k`` images.
"""

import warnings

import keras
import numpy as np
from keras import ops

from keras_cv_course.applications.classification.common import check_image_shape
from keras_cv_course.applications.registry import register_family
from keras_cv_course.errors import KCCError

PAPER = ("Cover, Hart. Nearest Neighbor Pattern Classification. IEEE Transactions on "
         "Information Theory 13(1), 1967")
METRICS = ("l1", "l2")
DIGITS_SHAPE = (8, 8, 1)
OUTPUT_LAYER = "predictions"  # the vote layer, named as the classification task's output


def _check_metric(metric):
    if metric not in METRICS:
        raise KCCError(f"metric must be one of {METRICS}, got {metric!r}")
    return metric


# --- NumPy reference ------------------------------------------------------------------


def pairwise_distances(queries, memory, metric="l2", squared=False, chunk=256):
    """Distances between every query row and every memory row, vectorised.

    Args:
        queries: ``(n, d)`` array.
        memory: ``(m, d)`` array.
        metric: ``"l1"`` or ``"l2"``.
        squared: for L2, return squared distances (same ranking, no sqrt).
        chunk: queries per block for L1, whose ``(n, m, d)`` differences
            would not fit in memory at once.

    Returns:
        ``(n, m)`` array.
    """
    _check_metric(metric)
    queries, memory = np.asarray(queries), np.asarray(memory)
    if metric == "l1":
        return np.concatenate([
            np.abs(queries[start:start + chunk, None, :] - memory[None]).sum(axis=-1)
            for start in range(0, len(queries), chunk)
        ])
    squared_distances = (
        (queries**2).sum(axis=1)[:, None] - 2.0 * queries @ memory.T + (memory**2).sum(axis=1)
    )
    squared_distances = np.maximum(squared_distances, 0.0)  # rounding can dip below 0
    return squared_distances if squared else np.sqrt(squared_distances)


def knn_predict(train_images, train_labels, test_images, k=1, metric="l2", classes=None):
    """Predicts labels by a majority vote of the ``k`` nearest training images.

    Args:
        train_images: ``(n, ...)`` training images (flattened internally).
        train_labels: ``(n,)`` integer labels.
        test_images: ``(m, ...)`` images to classify.
        k: number of neighbours.
        metric: ``"l1"`` or ``"l2"``.
        classes: number of classes; defaults to ``max(label) + 1``.

    Returns:
        ``(m,)`` integer predictions.
    """
    train = np.asarray(train_images).reshape(len(train_images), -1)
    test = np.asarray(test_images).reshape(len(test_images), -1)
    train_labels = np.asarray(train_labels).astype(int).reshape(-1)
    if not 1 <= k <= len(train):
        raise KCCError(f"k must be between 1 and the {len(train)} training images, got {k}")
    distances = pairwise_distances(test, train, metric, squared=True)
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :k]  # ties: lower index first
    classes = classes or int(train_labels.max()) + 1
    votes = np.zeros((len(test), classes), dtype=int)
    np.add.at(votes, (np.arange(len(test))[:, None], train_labels[nearest]), 1)
    return votes.argmax(axis=1)  # tied votes: smallest class index


def cross_validate_k(images, labels, ks, folds=5, metric="l2"):
    """Accuracy of each ``k`` on each of ``folds`` contiguous validation folds.

    Returns:
        ``(len(ks), folds)`` array of accuracies.
    """
    images = np.asarray(images).reshape(len(images), -1)
    labels = np.asarray(labels).reshape(-1)
    if folds < 2 or folds > len(images):
        raise KCCError(f"folds must be between 2 and {len(images)}, got {folds}")
    image_folds = np.array_split(images, folds)
    label_folds = np.array_split(labels, folds)
    classes = int(labels.max()) + 1
    accuracy = np.zeros((len(ks), folds))
    for fold in range(folds):
        train = np.concatenate(image_folds[:fold] + image_folds[fold + 1:])
        train_labels = np.concatenate(label_folds[:fold] + label_folds[fold + 1:])
        for row, k in enumerate(ks):
            predictions = knn_predict(train, train_labels, image_folds[fold], k, metric, classes)
            accuracy[row, fold] = np.mean(predictions == label_folds[fold])
    return accuracy


def choose_k(images, labels, ks=(1, 3, 5, 8, 10, 12, 15, 20), folds=5, metric="l2"):
    """Chooses ``k`` by ``folds``-fold cross-validation: the best mean accuracy,
    the smallest such ``k`` on a tie.

    Example:
        >>> best_k = choose_k(x_train, y_train, ks=(1, 3, 5), folds=5, metric="l1")
    """
    mean_accuracy = cross_validate_k(images, labels, ks, folds, metric).mean(axis=1)
    best = np.flatnonzero(mean_accuracy == mean_accuracy.max())
    return int(min(np.asarray(ks)[best]))


# --- Keras model ----------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="keras_cv_course")
class NearestNeighborVote(keras.layers.Layer):
    """Holds the memorised training set and votes among the ``k`` nearest.

    Args:
        memory_size: how many training images the memory holds.
        k: number of neighbours.
        classes: number of classes.
        metric: ``"l1"`` or ``"l2"``.
        **kwargs: base ``Layer`` arguments.

    Call arguments:
        features: ``(batch, d)`` flattened images.

    Returns:
        ``(batch, classes)`` vote fractions. Empty memory slots (label -1)
        are never chosen while enough filled ones exist.
    """

    def __init__(self, memory_size, k=1, classes=10, metric="l2", **kwargs):
        super().__init__(**kwargs)
        if not 1 <= int(k) <= int(memory_size):
            raise KCCError(f"k must be between 1 and memory_size={memory_size}, got {k}")
        self.memory_size = int(memory_size)
        self.k = int(k)
        self.classes = int(classes)
        self.metric = _check_metric(metric)

    def build(self, input_shape):
        self.memory_images = self.add_weight(
            shape=(self.memory_size, input_shape[-1]), initializer="zeros",
            trainable=False, name="memory_images")
        self.memory_labels = self.add_weight(
            shape=(self.memory_size,), initializer=keras.initializers.Constant(-1),
            dtype="int32", trainable=False, name="memory_labels")

    def distances(self, features):
        """``(batch, memory_size)`` distances (squared for L2: same ranking)."""
        memory = ops.cast(self.memory_images, features.dtype)
        if self.metric == "l1":
            return ops.sum(ops.abs(features[:, None, :] - memory[None, :, :]), axis=-1)
        return (ops.sum(ops.square(features), axis=1, keepdims=True)
                - 2.0 * ops.matmul(features, ops.transpose(memory))
                + ops.sum(ops.square(memory), axis=1)[None, :])

    def call(self, features):
        filled = (self.memory_labels >= 0)[None, :]
        distances = ops.where(filled, self.distances(features), 3.0e38)
        _, nearest = ops.top_k(-distances, k=self.k)  # (batch, k); ties: lower index first
        neighbour_labels = ops.take(self.memory_labels, nearest)  # (batch, k)
        votes = ops.sum(ops.one_hot(neighbour_labels, self.classes), axis=1)
        return votes / float(self.k)

    def memorize(self, features, labels):
        """Stores ``(n, d)`` features and ``(n,)`` labels; the rest of the memory is emptied."""
        images = np.zeros((self.memory_size, features.shape[1]), dtype="float32")
        stored = np.full((self.memory_size,), -1, dtype="int32")
        images[:len(features)] = features
        stored[:len(labels)] = labels
        self.memory_images.assign(images)
        self.memory_labels.assign(stored)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.classes)

    def get_config(self):
        return {**super().get_config(), "memory_size": self.memory_size, "k": self.k,
                "classes": self.classes, "metric": self.metric}


@keras.saving.register_keras_serializable(package="keras_cv_course")
class KNNClassifier(keras.Model):
    """A k-nearest-neighbour classifier as a Keras model.

    Args:
        input_shape: image shape ``(height, width, channels)``.
        memory_size: number of training images it can memorise.
        k: number of neighbours.
        classes: number of classes.
        metric: ``"l1"`` or ``"l2"``.
        name: model name.

    Example:
        >>> model = KNNClassifier(input_shape=(8, 8, 1), memory_size=1437, k=3)
        >>> model.memorize(x_train, y_train)
        >>> probabilities = model.predict(x_test)  # vote fractions
    """

    def __init__(self, input_shape=DIGITS_SHAPE, memory_size=1437, k=1, classes=10,
                 metric="l2", name="knn", **kwargs):
        input_shape = check_image_shape(input_shape)
        if None in input_shape:
            raise KCCError(f"kNN needs a fixed input_shape, got {input_shape}")
        image = keras.Input(shape=input_shape, name="images")
        features = keras.layers.Flatten(name="flatten")(image)  # (batch, H*W*C)
        votes = NearestNeighborVote(memory_size, k, classes, metric,
                                    name=OUTPUT_LAYER)(features)
        super().__init__(inputs=image, outputs=votes, name=name, **kwargs)
        self.image_shape = tuple(input_shape)
        self.memory_size = int(memory_size)
        self.k = int(k)
        self.classes = int(classes)
        self.metric = metric

    def memorize(self, images, labels):
        """"Trains" the model: stores the training set in the memory.

        Args:
            images: ``(n, height, width, channels)`` NumPy images.
            labels: ``(n,)`` integer labels in ``[0, classes)``.

        Returns:
            The model. When ``n > memory_size``, the first ``memory_size``
            examples are stored and a warning names how many were dropped.
        """
        images = np.asarray(images, dtype="float32")
        labels = np.asarray(labels).reshape(-1).astype("int32")
        if images.shape[1:] != self.image_shape or len(images) != len(labels):
            raise KCCError(
                f"memorize expects images (n, {', '.join(map(str, self.image_shape))}) and "
                f"n labels, got images {images.shape} and {labels.shape[0]} labels")
        if labels.size and (labels.min() < 0 or labels.max() >= self.classes):
            raise KCCError(f"labels must lie in [0, {self.classes}), got "
                           f"[{labels.min()}, {labels.max()}]")
        if len(images) > self.memory_size:
            warnings.warn(f"{self.name}: memory holds {self.memory_size} images; "
                          f"dropping the last {len(images) - self.memory_size} of {len(images)}",
                          stacklevel=2)
            images, labels = images[:self.memory_size], labels[:self.memory_size]
        self.get_layer(OUTPUT_LAYER).memorize(images.reshape(len(images), -1), labels)
        return self

    def get_config(self):
        return {"input_shape": self.image_shape, "memory_size": self.memory_size, "k": self.k,
                "classes": self.classes, "metric": self.metric, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def KNN(**kwargs):
    return KNNClassifier(**kwargs)


VARIANTS = (
    dict(name="knn", builder=KNN, reference_params=None, params_source="non-parametric",
         full_config=dict(input_shape=DIGITS_SHAPE, memory_size=1437, k=1, classes=10),
         tiny_config=dict(input_shape=DIGITS_SHAPE, memory_size=64, k=3, classes=10),
         training="memorize",
         description="k-nearest neighbours (L1/L2), memorises the training set"),
)

# Measured: the neighbours' vote (TOPK_V2 over distances) crashes the LiteRT interpreter
# (an abort, not an error) in full-integer form, and has no 16x8 kernel.
INT8_REFUSED = "TOPK_V2 over int8 distances aborts the LiteRT interpreter"

register_family("knn", VARIANTS, task="classification", paper=PAPER, unsupported_quantize={
    "int8": INT8_REFUSED, "int8-io": INT8_REFUSED,
    "16x8": "TOPK_V2 (the neighbours' vote) has no 16x8 kernel"})
