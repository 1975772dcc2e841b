"""``train``: one entry point from a registered model and a dataset to a run.

    run = train("resnet18", "digits", epochs=5, image_size=(16, 16))
    run.metrics  # test-split metrics of the final model

It builds the model inside the chosen ``tf.distribute`` strategy, asks the
model's task (``keras_cv_course.tasks``) how to compile, augment, watch and
evaluate it, fits it with the standard callbacks (TensorBoard, checkpoints,
BackupAndRestore, TerminateOnNaN, CSV log), then saves the final model and
its test metrics into the run folder. Calling it again on an unfinished run
folder resumes from the last backup.

Failures leave nothing half-written: every argument and the data are
checked before the folder is created; a run that fails before its first
backup removes what it wrote; a later failure, Ctrl-C (SIGINT) or SIGTERM
leaves a backup and a message with the command that resumes it.
"""

import contextlib
import dataclasses
import errno
import math
import os
import shutil
import tempfile
import time

import keras
import numpy as np

from keras_cv_course import __version__, applications
from keras_cv_course.data import DataBundle, load_dataset, pipeline, training_stream
from keras_cv_course.data.bundle import epoch_steps
from keras_cv_course.errors import KCCError, unknown_name_error
from keras_cv_course.evaluation import evaluate_model
from keras_cv_course.runs import RunFolder, resume_command
from keras_cv_course.tasks import get_task
from keras_cv_course.training import callbacks as run_callbacks
from keras_cv_course.training.adversarial import Adversary, adversarial_loss
from keras_cv_course.training.interrupts import GracefulStop, Interrupted, RunBackup, resume_point
from keras_cv_course.training.strategies import (
    fitting_scope,
    get_strategy,
    is_chief,
    lost_worker_message,
)

PRECISIONS = (None, "float32", "mixed_float16", "mixed_bfloat16")


@dataclasses.dataclass
class Run:
    """A finished run: its folder, model, history and test metrics."""

    path: str
    model: keras.Model
    history: dict
    metrics: dict
    seconds: float


def train(model, data, out=None, *, epochs=10, batch_size=32, learning_rate=1e-3,
          optimizer="adam", strategy="auto", precision=None, jit_compile="auto", augment=None,
          image_size=None, channels=None, seed=0, backup_every_steps=None, verbose="auto",
          schedule=None, warmup_epochs=0, config="full", skip_bad_images=False,
          workers=None, task_index=None, deterministic=False, steps_per_execution=1,
          cache=None, adversarial_epsilon=None, adversarial_steps=7, **model_overrides):
    """Trains a registered model on a dataset and writes a run folder.

    Args:
        model: registry name, e.g. ``"resnet18"``.
        data: dataset name (see ``keras_cv_course.data``) or a ``DataBundle``.
        out: run folder; defaults to ``runs/<model>-<time>``. An unfinished
            run folder is resumed.
        epochs, batch_size, learning_rate: the usual.
        optimizer: a Keras optimizer name, e.g. ``"adam"`` or ``"sgd"``.
        strategy: one of ``training.strategies.STRATEGIES``.
        workers, task_index: for ``strategy="multiworker"``: every worker's
            ``host:port`` (the chief first) and this process's index. Every
            worker runs the same command with its own index and the same
            ``out``, which all of them must reach (one machine or a shared
            file system); only the chief writes there.
        deterministic: enable TensorFlow's op determinism, so that the same
            command gives the same weights, and a resumed run the weights of
            an uninterrupted one.
        steps_per_execution: training steps per compiled call; each epoch
            keeps a multiple of it.
        cache: keep the decoded splits after their first read: ``"memory"``
            or a folder of cache files (``DataBundle.cached``); ``None`` reads
            the source every epoch.
        adversarial_epsilon: train against PGD examples of this L-infinity
            radius (``training.adversarial``; Madry et al. 2018); ``None``
            trains on clean images only.
        adversarial_steps: PGD steps per training batch.
        precision: ``None``/``"float32"``, ``"mixed_float16"`` or
            ``"mixed_bfloat16"``.
        jit_compile: passed to ``model.compile`` (``"auto"``, True, False).
        augment: a policy name the model's task accepts (classification:
            ``"standard"``, ``"mixup"``, ``"cutmix"``; segmentation:
            ``"flip"``) or a callable on a batch ``(inputs, targets) ->
            (inputs, targets)``. Label-mixing policies train on one-hot
            labels with categorical cross-entropy.
        image_size, channels: data resizing when ``data`` is a name.
        seed: seed of data order and weight initialisation.
        backup_every_steps: back up mid-epoch this often (default: each epoch).
        verbose: Keras progress-bar setting.
        schedule: learning-rate schedule over the whole run, a name from
            ``training.schedules.SCHEDULES`` (e.g. ``"cosine"``), or ``None``
            for a constant rate.
        warmup_epochs: linear warm-up before the schedule.
        config: ``"full"`` (the registry's reference config; the default) or
            ``"tiny"`` (its test config, which trains in minutes on a CPU).
            The data decides the input shape and class count either way.
        skip_bad_images: for ``folder:PATH`` data, leave out bad image files
            instead of failing; ``config.json`` lists what was skipped.
        **model_overrides: builder arguments, e.g. ``stage_widths=(16, 32, 64, 64)``;
            they win over the config.

    Returns:
        A ``Run``.
    """
    info = applications.get_info(model)
    task = get_task(info.task)
    _check_arguments(info, precision, epochs, config, batch_size, learning_rate,
                     steps_per_execution)
    adversary = Adversary.from_options(adversarial_epsilon, adversarial_steps)
    run = _check_run_folder(out, info.name)
    # Multi-worker collectives must be configured before TensorFlow runs any op.
    distribution = get_strategy(strategy, workers, task_index)
    if deterministic:
        _enable_determinism()
    bundle = data if isinstance(data, DataBundle) else load_dataset(
        data, info.task, image_size, channels, seed, skip_bad_images=skip_bad_images)
    bundle = bundle.cached(_worker_cache(cache, task_index))
    task.check_data_task(bundle, info.name)
    augmentation = task.augmentation(augment, bundle, seed)
    data = _Data(bundle, batch_size, epochs, augmentation, seed, steps_per_execution)
    rate = learning_rate_over_run(learning_rate, schedule, epochs, data.steps, warmup_epochs)
    run_config = dict(model=info.name, config=config, model_overrides=model_overrides,
                      data=bundle.name, task=info.task, image_size=list(bundle.image_shape[:2]),
                      channels=bundle.image_shape[2], epochs=epochs, batch_size=batch_size,
                      learning_rate=learning_rate, schedule=schedule,
                      warmup_epochs=warmup_epochs, optimizer=optimizer, strategy=strategy,
                      precision=precision, seed=seed, workers=workers,
                      task_index=task_index, deterministic=deterministic,
                      steps_per_execution=steps_per_execution, cache=cache,
                      adversarial_epsilon=adversarial_epsilon,
                      adversarial_steps=adversarial_steps if adversary else None,
                      augment=augmentation.name if augmentation else None,
                      class_names=list(bundle.class_names),
                      skipped_images=list(bundle.skipped_files), package_version=__version__)
    chief = is_chief(distribution)
    stop = GracefulStop(resume_command(run_config, run.path))
    with stop.installed(), _cleaned_up_on_failure(run, run_config, chief):
        return _train_in_folder(info, task, run, run_config, distribution, data, rate, stop,
                                jit_compile, verbose, backup_every_steps, chief)


def _worker_cache(cache, task_index):
    """Each worker of a multi-worker run writes cache files of its own."""
    if cache in (None, "memory") or task_index is None:
        return cache
    return os.path.join(cache, f"worker{task_index}")


def _train_in_folder(info, task, run, run_config, distribution, data, rate, stop, jit_compile,
                     verbose, backup_every_steps, chief):
    """Builds, compiles and fits inside the strategy; saves the model and metrics.

    Only the chief writes the run folder; other workers train alongside it.
    """
    keras.utils.set_random_seed(run_config["seed"])
    previous_policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(run_config["precision"] or "float32")
    try:
        with distribution.scope():  # variables are made once, on every replica
            net = build_for_data(info, data.bundle, run_config["config"],
                                 **run_config["model_overrides"])
            task.compile(net, info, data.bundle,
                         _optimizer_factory(run_config["optimizer"], rate), jit_compile,
                         data.augmentation, run_config["steps_per_execution"])
        with fitting_scope(distribution):
            if chief:
                run.create()
                run.write_json(run.config_json, run_config)
            started = time.time()
            adversary = Adversary.from_options(run_config["adversarial_epsilon"],
                                               run_config["adversarial_steps"])
            with adversarial_loss(net, adversary):
                history = _fit(net, info, task, run, data, backup_every_steps, verbose, chief,
                               stop)
            seconds = time.time() - started
            metrics = evaluate_model(net, data.bundle, run_config["batch_size"],
                                     augmentation=data.augmentation)
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)
    if chief:
        run.save_model(net)
        run.write_json(run.metrics_json, {**metrics, "train_seconds": seconds})
        shutil.rmtree(run.backup_dir, ignore_errors=True)  # finished: nothing left to resume
    return Run(path=run.path, model=net, history=history, metrics=metrics, seconds=seconds)


def _enable_determinism():
    """The same command gives the same weights (TensorFlow's op determinism).

    Seeds are set by ``train`` itself. JAX on the CPU is deterministic already.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


@contextlib.contextmanager
def _cleaned_up_on_failure(run, run_config, chief=True):
    """Leaves a failed run either resumable or as if it had never started.

    A run that fails before it has a backup to resume from (before its
    first epoch ends) removes everything it wrote. A later failure keeps the
    folder, whose backup resumes it, and its message says how. Non-chief
    workers wrote nothing, and remove nothing.
    """
    existed = set(os.listdir(run.path)) if os.path.isdir(run.path) else None
    try:
        yield
    except BaseException as error:
        if not RunBackup.exists(run.backup_dir):
            if chief:
                _remove_new_files(run.path, existed)
            lost = lost_worker_message(error)
            if lost:
                raise KCCError(lost) from error
            raise
        if isinstance(error, Interrupted) or not isinstance(error, Exception):
            raise
        raise KCCError(f"{_failure(error)}; resume with: {resume_command(run_config, run.path)}") \
            from error


def _failure(error):
    """What went wrong, in a few words, for a run that keeps its backup."""
    if isinstance(error, KCCError):
        return str(error)
    lost = lost_worker_message(error)
    if lost:
        return lost
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return "disk full while training; the last backup is intact; free some space"
    reason = " ".join(str(error).split())[:300]
    return f"training failed ({type(error).__name__}: {reason})"


def _remove_new_files(path, existed):
    if existed is None:
        shutil.rmtree(path, ignore_errors=True)
        return
    for name in set(os.listdir(path)) - existed if os.path.isdir(path) else ():
        target = os.path.join(path, name)
        shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)


def _check_arguments(info, precision, epochs, config, batch_size, learning_rate,
                     steps_per_execution=1):
    if precision not in PRECISIONS:
        raise KCCError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size),
                        ("steps_per_execution", steps_per_execution)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise KCCError(f"{name} must be a positive integer, got {value!r}")
    if not callable(learning_rate) and not (isinstance(learning_rate, int | float)
                                            and math.isfinite(learning_rate)
                                            and learning_rate > 0):
        raise KCCError(f"learning_rate must be a positive number, got {learning_rate!r}")
    info.config(config)  # an unknown config name fails here, before anything is written


def _check_run_folder(out, model_name):
    out = out or os.path.join("runs", f"{model_name}-{time.strftime('%Y%m%d-%H%M%S')}")
    run = RunFolder(out)
    _check_writable(out)
    if os.path.exists(run.model_file):
        raise KCCError(f"run folder {out!r} already holds a finished model; choose a new --out")
    if os.path.exists(out) and not os.path.isdir(out):
        raise KCCError(f"--out must be a folder, got the file {out!r}")
    return run


def _check_writable(out):
    """Fails before any work when the run folder cannot be created or written."""
    existing = out
    while existing and not os.path.exists(existing):
        existing = os.path.dirname(existing)
    existing = existing or "."
    if not os.path.isdir(existing):
        raise KCCError(f"cannot write the run folder {out!r}: {existing!r} is not a folder")
    try:  # a real write: permission bits do not stop root, but read-only mounts do
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".kcc-write-test-"))
    except OSError as error:
        raise KCCError(f"cannot write the run folder {out!r}: {error.strerror or error}") \
            from None


def build_for_data(info, bundle, config="full", **overrides):
    """Builds ``info``'s model for the data: its input shape and class count.

    Builder arguments are, from weakest to strongest: the registry's
    ``config`` (``"full"`` or ``"tiny"``), what the task reads from the data
    (``Task.build_arguments``), and ``overrides``.

    Raises:
        KCCError: the built model's inputs disagree with the data's.
    """
    task = get_task(info.task)
    arguments = {**info.config(config), **task.build_arguments(bundle), **overrides}
    try:
        model = applications.build(info.name, **arguments)
    except KCCError:
        raise
    except (ValueError, TypeError) as error:  # a bad --set value or an unusable input size
        reason = " ".join(str(error).split())[:300]
        raise KCCError(f"cannot build {info.name} with {_describe(arguments)}: {reason}") \
            from None
    check_model_fits_data(model, bundle)
    return model


def _describe(arguments):
    return ", ".join(f"{key}={value!r}" for key, value in sorted(arguments.items()))


def check_model_fits_data(model, bundle, where="the model"):
    """Raises a one-line error when a model's inputs cannot take the data's inputs.

    The model's training inputs are its task's to say (``Task.training_inputs``):
    a generator serves latents but trains on the data's images."""
    model_specs = get_task(bundle.task).training_inputs(model)
    data_specs = bundle.input_specs
    if len(model_specs) == 1 and len(data_specs) == 1:  # one input: names need not agree
        data_specs = (dataclasses.replace(data_specs[0], name=model_specs[0].name),)
    found = {spec.name: spec for spec in data_specs}
    for spec in model_specs:
        if spec.name not in found:
            raise KCCError(f"{where}'s input {spec.name!r} is not in the data, which has "
                           f"{sorted(found)}")
        data_shape = tuple(found[spec.name].shape)
        fits = len(spec.shape) == len(data_shape) and all(
            m is None or d is None or m == d for m, d in zip(spec.shape, data_shape))
        if not fits:
            raise KCCError(f"{where}'s input {spec.name!r} has shape {spec.shape}, which does "
                           f"not match the data's shape {data_shape}")


def _optimizer_factory(name, learning_rate):
    """A zero-argument callable making a new optimizer (a GAN's task calls it twice)."""

    def make_optimizer():
        return keras.optimizers.get({"class_name": name,
                                     "config": {"learning_rate": learning_rate}})

    return make_optimizer


class _Data:
    """A run's data: the training stream from any step, and the validation pipeline.

    Training drops each epoch's last partial batch: a smaller final batch
    would be traced as a second training step and would skew BatchNorm
    statistics.
    """

    def __init__(self, bundle, batch_size, epochs, augmentation, seed, steps_per_execution):
        self.bundle, self.augmentation = bundle, augmentation
        self.epochs = epochs
        self._stream = dict(dataset=bundle.train, batch_size=batch_size, epochs=epochs,
                            augment=augmentation, seed=seed,
                            target_map=augmentation.target_map if augmentation else None,
                            steps_multiple=steps_per_execution)
        self.steps = epoch_steps(bundle.train, batch_size, steps_per_execution)
        self.validation = _distributable(pipeline(bundle.val, batch_size,
                                                  target_map=self._stream["target_map"]))

    def training(self, start_step):
        """The training batches from global step ``start_step`` to the end of the run."""
        stream, _ = training_stream(**self._stream, start_step=start_step)
        return _distributable(stream)


def learning_rate_over_run(learning_rate, schedule, epochs, steps_per_epoch, warmup_epochs=0):
    """A constant rate, or a named schedule stretched over the whole run."""
    if schedule is None:
        return learning_rate
    from keras_cv_course.training import schedules

    if steps_per_epoch is None:
        raise KCCError("a learning-rate schedule needs a training split of known size")
    warmup = warmup_epochs * steps_per_epoch
    total = max(1, epochs * steps_per_epoch - warmup)  # the schedule starts after the warm-up
    arguments = {
        "cosine": dict(initial_learning_rate=learning_rate, decay_steps=total),
        "linear": dict(initial_learning_rate=learning_rate, decay_steps=total),
        "step": dict(initial_learning_rate=learning_rate, step_size=max(1, total // 3)),
        "inverse_sqrt": dict(initial_learning_rate=learning_rate, timescale=steps_per_epoch),
        "one_cycle": dict(max_learning_rate=learning_rate, total_steps=total),
    }
    if schedule not in arguments:
        raise unknown_name_error("learning-rate schedule", schedule, arguments)
    return schedules.get(schedule, warmup_steps=warmup, **arguments[schedule])


def _fit(net, info, task, run, data, backup_every_steps, verbose, chief, stop):
    """``model.fit`` from the backup's step (or the start) to the last epoch.

    A run resumed mid-epoch first finishes that epoch (a ``fit`` of its
    remaining steps), then fits the epochs after it, so every epoch sees the
    batches it would have seen without the interruption.
    """
    if info.training == "memorize":
        net.memorize(*data.bundle.arrays["train"])
        return {}
    epoch, done = resume_point(run.backup_dir)
    if done >= data.steps:  # backed up on the last step of an epoch
        epoch, done = epoch + 1, 0
    history = {}
    if done:
        history = _fit_epochs(net, task, run, data, epoch, epoch + 1, done,
                              backup_every_steps, verbose, chief, stop, restores=True)
        epoch += 1
    if epoch < data.epochs:
        later = _fit_epochs(net, task, run, data, epoch, data.epochs, 0, backup_every_steps,
                            verbose, chief, stop, restores=not done)
        history = {key: history.get(key, []) + values for key, values in later.items()}
    return history


def _fit_epochs(net, task, run, data, first, end, done, backup_every_steps, verbose, chief,
                stop, restores):
    """Fits epochs ``first`` to ``end - 1``, the first of them from its step ``done``.

    ``restores``: the backup (if any) is loaded first; False when this
    process has just trained up to here.
    """
    callbacks = run_callbacks.standard_callbacks(
        run, task, data.bundle.golden_examples(4), backup_every_steps, chief,
        graceful_stop=stop, steps_done=done, restores=restores)
    steps = data.steps - done
    history = net.fit(data.training(first * data.steps + done), steps_per_epoch=steps,
                      validation_data=data.validation, initial_epoch=first, epochs=end,
                      callbacks=callbacks, verbose=verbose, shuffle=False)
    guard = next(c for c in callbacks if isinstance(c, run_callbacks.StopOnNonFiniteLoss))
    if guard.stopped_at is not None:
        epoch, batch, loss = guard.stopped_at
        raise KCCError(
            f"training stopped: the loss became {loss} at epoch {epoch + 1}, batch {batch + 1}; "
            "check the data for NaN and try a lower learning rate"
        )
    return history.history


def _distributable(dataset):
    """Shards by example rather than by file, which in-memory data needs."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
