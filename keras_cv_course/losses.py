"""Losses of the course that Keras does not ship.

``MulticlassHinge`` is the multiclass support vector machine loss in the
Weston-Watkins form taught in CS231n: for class scores ``s`` and the true
class ``y``,

    L = sum_{j != y} max(0, s_j - s_y + margin),     margin = 1,

averaged over the batch. It asks the true class to beat every other class
by at least the margin, and is zero once it does. (Weston & Watkins,
"Support Vector Machines for Multi-Class Pattern Recognition", ESANN 1999.
Keras' ``categorical_hinge`` is the Crammer-Singer form, which keeps only the
largest violating class.)

``replica_share`` is for models that write their own ``compute_loss`` from
``keras.ops`` (a diffusion model, Faster R-CNN): Keras' ``Loss`` objects
divide by the replica count themselves, a hand-written loss must too.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_cv_course")
class MulticlassHinge(keras.losses.Loss):
    """The multiclass SVM loss on raw class scores (no softmax).

    Args:
        margin: the required gap between the true score and each other score.
        name: loss name.
        **kwargs: base ``Loss`` arguments (``reduction``, ``dtype``).

    Call arguments:
        y_true: integer labels ``(batch,)`` or ``(batch, 1)``, or one-hot
            ``(batch, classes)``.
        y_pred: class scores ``(batch, classes)``.

    Example:
        >>> MulticlassHinge()([0], [[3.2, 5.1, -1.7]])  # CS231n's cat example: 2.9
    """

    def __init__(self, margin=1.0, name="multiclass_hinge", **kwargs):
        super().__init__(name=name, **kwargs)
        self.margin = margin

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        classes = y_pred.shape[-1]
        y_true = ops.convert_to_tensor(y_true)
        if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == classes and classes > 1:
            true_class = ops.cast(y_true, y_pred.dtype)  # already one-hot
        else:
            labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
            true_class = ops.one_hot(labels, classes, dtype=y_pred.dtype)
        true_score = ops.sum(y_pred * true_class, axis=-1, keepdims=True)
        margins = ops.maximum(0.0, y_pred - true_score + self.margin)
        return ops.sum(margins * (1.0 - true_class), axis=-1)  # j == y is excluded

    def get_config(self):
        return {**super().get_config(), "margin": self.margin}


def replica_share(loss):
    """Under a ``tf.distribute`` strategy, this replica's share of the mean loss.

    Keras' TensorFlow step sums the replicas' gradients and multiplies the
    logged loss back by the replica count, as it does for compiled losses.
    Other backends get ``loss`` unchanged.
    """
    if keras.backend.backend() != "tensorflow":
        return loss
    import tensorflow as tf  # the TF backend is loaded already

    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / replicas if replicas > 1 else loss
