"""Choosing a distribution strategy by name, on either Keras backend.

On TensorFlow, ``auto`` picks a TPU if one is configured, mirrors over
several GPUs, uses the one GPU, or falls back to the default strategy on the
CPU; ``multiworker`` runs one process per machine (``cluster_config`` writes
the ``TF_CONFIG`` that describes them). On JAX, ``auto`` and ``mirrored``
split each batch over every visible device with
``keras.distribution.DataParallel`` (``JaxDataParallel``).

The batch size given to ``train`` is always the *global* batch: the strategy
splits it over replicas, so adding workers at a fixed batch size computes the
same updates (``tests/test_distributed.py`` shows it). To train faster by
growing the batch with the workers, scale the learning rate with it (the
linear scaling rule of Goyal et al., 2017, "Accurate, Large Minibatch SGD",
with a few epochs of warm-up, ``--warmup-epochs``): ``scaled_learning_rate``.
"""

import contextlib
import json
import os
import re

import keras

from keras_cv_course.errors import KCCError, unknown_name_error

STRATEGIES = ("auto", "default", "one_device", "mirrored", "multiworker", "tpu")
"""Names ``get_strategy`` accepts; ``"auto"`` picks TPU, several GPUs, or one device."""


def get_strategy(name="auto", workers=None, task_index=None):
    """Returns the strategy called ``name`` for the current Keras backend.

    Args:
        name: one of ``STRATEGIES``. ``multiworker`` reads the cluster from
            ``workers`` and ``task_index`` (which write ``TF_CONFIG``) or from
            a ``TF_CONFIG`` already in the environment, and applies the Keras
            multi-worker fixes (``training.multiworker``).
        workers: ``"host:port,host:port"``, every worker of a multi-worker
            run, the chief first.
        task_index: this process's position in ``workers``.

    Returns:
        A ``tf.distribute.Strategy`` on TensorFlow, a ``JaxDataParallel`` on JAX.
    """
    if name not in STRATEGIES:
        raise unknown_name_error("strategy", name, STRATEGIES)
    if (workers is not None or task_index is not None) and name != "multiworker":
        raise KCCError("--workers and --task-index need --strategy multiworker")
    if keras.backend.backend() == "jax":
        return _jax_strategy(name)
    import tensorflow as tf

    if name == "multiworker":
        return _multiworker(tf, workers, task_index)
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
    extended = getattr(strategy, "extended", None)
    if extended is None or not getattr(extended, "_in_multi_worker_mode", lambda: False)():
        return True
    return extended.should_checkpoint


def fitting_scope(strategy):
    """The context ``fit`` and ``evaluate`` run in.

    ``tf.distribute`` strategies need none: their models remember them, and a
    variable that a chief-only callback makes inside the scope would be
    broadcast from the chief alone and stall the other workers. A JAX
    distribution must be active while ``fit`` shards the batches.
    """
    enter = getattr(strategy, "fitting_scope", None)
    return enter() if enter is not None else contextlib.nullcontext()


def scaled_learning_rate(base_rate, global_batch, base_batch=256):
    """The linear scaling rule: the rate grows with the global batch.

    ``base_rate`` is the rate that works at ``base_batch`` (Goyal et al. 2017
    use 0.1 at 256 for ResNet-50 with SGD).
    """
    if global_batch < 1 or base_batch < 1:
        raise KCCError("batch sizes must be positive")
    return base_rate * global_batch / base_batch


# ----------------------------------------------------------------------------- multi-worker

_ADDRESS = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")


def cluster_config(workers, task_index):
    """The ``TF_CONFIG`` of one worker of a multi-worker run.

    Args:
        workers: ``"host:port,host:port"`` or a list of addresses; the first
            is the chief, which writes the run folder.
        task_index: this worker's position in ``workers``.

    Raises:
        KCCError: a malformed address, a repeated one, or an index out of range.
    """
    addresses = workers.split(",") if isinstance(workers, str) else list(workers or ())
    addresses = [address.strip() for address in addresses]
    bad = [address for address in addresses if not _ADDRESS.match(address)]
    if len(addresses) < 1 or bad:
        raise KCCError(f"--workers must be host:port,host:port (e.g. "
                       f"localhost:12345,localhost:12346), got {workers!r}")
    if len(set(addresses)) != len(addresses):
        raise KCCError(f"--workers lists an address twice: {workers!r}")
    if task_index is None or not 0 <= int(task_index) < len(addresses):
        raise KCCError(f"--task-index must be 0 to {len(addresses) - 1} for "
                       f"{len(addresses)} workers, got {task_index!r}")
    return {"cluster": {"worker": addresses},
            "task": {"type": "worker", "index": int(task_index)}}


def worker_address(task):
    """The ``host:port`` of worker ``task`` in ``TF_CONFIG``, or ``None``."""
    try:
        return json.loads(os.environ["TF_CONFIG"])["cluster"]["worker"][int(task)]
    except (KeyError, IndexError, ValueError, TypeError):
        return None


# How TensorFlow says a peer died: the coordination service's missed heartbeats,
# a gRPC call to the peer that failed (its connection reset or refused), and
# MultiWorkerMirroredStrategy's own health check.
_LOST_PEER = (
    re.compile(r"stopped sending heartbeats\):\s*/job:worker/replica:\d+/task:(\d+)"),
    re.compile(r"(?:Connection reset|Connection refused|Socket closed|failed to connect)"
               r"[^\n]*\n[^\n]*from remote target /job:worker/replica:\d+/task:(\d+)"),
    re.compile(r"/job:worker/replica:\d+/task:(\d+) is down"),
)


def lost_worker_message(error):
    """A one-line message naming the lost worker, if ``error`` says a peer died.

    TensorFlow's coordination service expects a heartbeat from every worker
    and aborts the collectives when one stops; ``MultiWorkerMirroredStrategy``
    also checks its peers every 30 s (10 s timeout, 3 tries). Either way a
    worker whose peer dies fails instead of hanging: within about 20 s on
    one machine (``tests/test_distributed.py`` bounds it at 120 s).
    """
    found = [match for pattern in _LOST_PEER if (match := pattern.search(str(error)))]
    if not found:
        return None
    task = int(found[0].group(1))
    address = worker_address(task)
    where = f"worker {task}" + (f" ({address})" if address else "")
    return (f"lost {where}: it stopped answering, so training stopped; restart every worker "
            "with the same command to resume from the chief's backup")


def _multiworker(tf, workers, task_index):
    if workers is not None or task_index is not None:
        os.environ["TF_CONFIG"] = json.dumps(cluster_config(workers, task_index))
    elif not os.environ.get("TF_CONFIG"):
        raise KCCError("--strategy multiworker needs --workers host:port,host:port and "
                       "--task-index I (or a TF_CONFIG environment variable)")
    # Must come before anything that initialises TensorFlow's context.
    from keras_cv_course.training.multiworker import patch_keras_for_multiworker

    patch_keras_for_multiworker()
    return tf.distribute.MultiWorkerMirroredStrategy()


# ----------------------------------------------------------------------------- JAX


class JaxDataParallel:
    """``keras.distribution.DataParallel`` behind the strategy interface ``train`` uses.

    Each batch is split over ``devices`` and the gradients are averaged, as
    ``MirroredStrategy`` does on TensorFlow. With one device it distributes
    nothing. ``scope()`` sets the distribution while the model is built, so
    its variables are replicated on every device.
    """

    def __init__(self, devices=None):
        self.devices = list(devices or keras.distribution.list_devices())
        self.distribution = (keras.distribution.DataParallel(devices=self.devices)
                             if len(self.devices) > 1 else None)

    @property
    def num_replicas_in_sync(self):
        return len(self.devices)

    @contextlib.contextmanager
    def scope(self):
        if self.distribution is None:
            yield self
            return
        with self.distribution.scope():
            yield self

    fitting_scope = scope  # ``fit`` shards each batch over the devices


def _jax_strategy(name):
    if name in ("multiworker", "tpu"):
        raise KCCError(f"strategy {name!r} needs the TensorFlow backend; on JAX use "
                       "'auto' (all local devices) or 'default' (one device)")
    if name in ("auto", "mirrored"):
        return JaxDataParallel()
    return JaxDataParallel(keras.distribution.list_devices()[:1])
