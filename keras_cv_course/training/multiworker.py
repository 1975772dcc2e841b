"""Two small fixes that let Keras 3.15 ``model.fit`` run multi-worker.

Keras 3.15's TensorFlow trainer fails under ``MultiWorkerMirroredStrategy``
(reproduced with two workers on localhost; ``tests/test_training.py`` runs them):

1. ``TensorFlowTrainer._maybe_symbolic_build`` reduces the first data batch
   with ``strategy.reduce("MEAN", batch)`` to build the model symbolically.
   Multi-worker strategies cannot reduce a ``PerReplica`` batch eagerly and
   raise "Attempt to convert a value (PerReplica...)". The batch is only
   needed for its shapes, so the first local replica's value serves.
2. ``reduce_per_replica`` reduces metrics with ``axis=0`` in multi-worker
   mode, which fails for scalar metrics ("Invalid reduction dimension 0 for
   input with 0 dimensions"). Scalars are reduced with ``axis=None``.

``patch_keras_for_multiworker`` applies both once; it changes nothing for
single-worker strategies. Remove it when Keras fixes the trainer.
"""

import functools

_PATCHED = False


def patch_keras_for_multiworker():
    """Applies both fixes to the Keras TensorFlow trainer (idempotent)."""
    global _PATCHED
    if _PATCHED:
        return
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build
    original_reduce = tf_trainer.reduce_per_replica

    @functools.wraps(original_build)
    def symbolic_build_from_local_batch(self, iterator=None, data_batch=None):
        if iterator is not None and self._distribute_strategy is not None and _multi_worker(self):
            for _, _, batches in iterator:
                data_batch = _first_local_value(self.distribute_strategy, next(batches))
                break
            with self.distribute_strategy.scope():
                self._symbolic_build(data_batch=data_batch)
            return
        original_build(self, iterator=iterator, data_batch=data_batch)

    @functools.wraps(original_reduce)
    def reduce_scalars_without_axis(values, strategy, reduction):
        multi_worker = tf_trainer._collective_all_reduce_multi_worker(strategy)
        if reduction in ("mean", "auto") and multi_worker:
            import tensorflow as tf

            def mean(value):
                local = strategy.experimental_local_results(value)[0]
                axis = 0 if local.shape.rank else None
                return strategy.reduce("MEAN", value, axis=axis)

            return tf.nest.map_structure(mean, values)
        return original_reduce(values, strategy, reduction)

    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = symbolic_build_from_local_batch
    tf_trainer.reduce_per_replica = reduce_scalars_without_axis
    _PATCHED = True


def _multi_worker(trainer):
    extended = trainer.distribute_strategy.extended
    return getattr(extended, "_in_multi_worker_mode", lambda: False)()


def _first_local_value(strategy, batch):
    import tensorflow as tf

    def first(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    return tf.nest.map_structure(first, batch)
