"""Choosing a ``tf.distribute`` strategy by name.

``auto`` picks a TPU if one is configured, mirrors over several GPUs, uses
the one GPU, or falls back to the default strategy on the CPU. On the JAX
backend, use ``keras.distribution.DataParallel`` instead (see
``jax_data_parallel``).
"""

from keras_cv_course.errors import KCCError, unknown_name_error

STRATEGIES = ("auto", "default", "one_device", "mirrored", "multiworker", "tpu")
"""Names ``get_strategy`` accepts; ``"auto"`` picks TPU, several GPUs, or one device."""


def get_strategy(name="auto"):
    """Returns the ``tf.distribute.Strategy`` called ``name``.

    Args:
        name: one of ``STRATEGIES``. ``multiworker`` reads the cluster from
            the ``TF_CONFIG`` environment variable and applies the Keras
            multi-worker fixes (``training.multiworker``).
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise unknown_name_error("strategy", name, STRATEGIES)
    if name == "multiworker":
        # Must come before anything that initialises TensorFlow's context.
        from keras_cv_course.training.multiworker import patch_keras_for_multiworker

        patch_keras_for_multiworker()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "auto":
        name = _automatic_choice(tf)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        return _mirrored(tf)
    return _tpu_strategy(tf)


def _automatic_choice(tf):
    """A TPU if configured, else mirrored GPUs, one GPU, or the default."""
    if _tpu_resolver() is not None:
        return "tpu"
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return "mirrored"
    return "one_device" if gpus else "default"


def _mirrored(tf):
    """Mirrors over all GPUs, or over every logical CPU when there is no GPU.

    On CPUs, gradients are reduced on one device rather than with collective
    ops: CPU collectives of two strategies created in one process can share
    instance keys and fail with "Shape mismatch in the collective instance".
    """
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return tf.distribute.MirroredStrategy(devices=[device.name for device in gpus])
    cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=cpus,
                                          cross_device_ops=tf.distribute.ReductionToOneDevice())


def _tpu_resolver():
    import tensorflow as tf

    try:
        return tf.distribute.cluster_resolver.TPUClusterResolver()
    except (ValueError, KeyError, RuntimeError):
        return None


def _tpu_strategy(tf):
    resolver = _tpu_resolver()
    if resolver is None:
        raise KCCError("strategy 'tpu' needs a TPU, and none was found")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy):
    """True for the worker that writes the run's files."""
    extended = strategy.extended
    if not getattr(extended, "_in_multi_worker_mode", lambda: False)():
        return True
    return extended.should_checkpoint


def jax_data_parallel():
    """Data parallelism over every JAX device (the JAX-backend counterpart)."""
    import keras

    distribution = keras.distribution.DataParallel(devices=keras.distribution.list_devices())
    keras.distribution.set_distribution(distribution)
    return distribution
