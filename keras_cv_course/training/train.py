"""``train``: one entry point from a registered model and a dataset to a run.

    run = train("resnet18", "digits", epochs=5, image_size=(16, 16))
    run.metrics  # test-split metrics of the final model

It builds the model inside the chosen ``tf.distribute`` strategy, compiles
it for its task, fits it with the standard callbacks (TensorBoard,
checkpoints, BackupAndRestore, TerminateOnNaN, CSV log), then saves the
final model and its test metrics into the run folder. Calling it again on
an unfinished run folder resumes from the last backup.
"""

import dataclasses
import os
import time

import keras

from keras_cv_course import applications
from keras_cv_course.data import DataBundle, load_dataset, pipeline
from keras_cv_course.errors import KCCError, unknown_name_error
from keras_cv_course.training import callbacks as run_callbacks
from keras_cv_course.training.run_folder import RunFolder
from keras_cv_course.training.strategies import get_strategy, is_chief

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
          schedule=None, warmup_epochs=0, **model_overrides):
    """Trains a registered model on a dataset and writes a run folder.

    Args:
        model: registry name, e.g. ``"resnet18"``.
        data: dataset name (see ``keras_cv_course.data``) or a ``DataBundle``.
        out: run folder; defaults to ``runs/<model>-<time>``. An unfinished
            run folder is resumed.
        epochs, batch_size, learning_rate: the usual.
        optimizer: a Keras optimizer name, e.g. ``"adam"`` or ``"sgd"``.
        strategy: one of ``training.strategies.STRATEGIES``.
        precision: ``None``/``"float32"``, ``"mixed_float16"`` or
            ``"mixed_bfloat16"``.
        jit_compile: passed to ``model.compile`` (``"auto"``, True, False).
        augment: a policy name from ``data.augment.POLICIES`` (``"standard"``,
            ``"mixup"``, ``"cutmix"``) or a callable on a batch
            ``(images, targets) -> (images, targets)``. Label-mixing
            policies train on one-hot labels with categorical cross-entropy.
        image_size, channels: data resizing when ``data`` is a name.
        seed: seed of data order and weight initialisation.
        backup_every_steps: back up mid-epoch this often (default: each epoch).
        verbose: Keras progress-bar setting.
        schedule: learning-rate schedule over the whole run, a name from
            ``training.schedules.SCHEDULES`` (e.g. ``"cosine"``), or ``None``
            for a constant rate.
        warmup_epochs: linear warm-up before the schedule.
        **model_overrides: builder arguments, e.g. ``stage_widths=(16, 32, 64, 64)``.

    Returns:
        A ``Run``.
    """
    info = applications.get_info(model)
    if precision not in PRECISIONS:
        raise KCCError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if int(epochs) < 1:
        raise KCCError(f"epochs must be a positive integer, got {epochs!r}")
    run = _check_run_folder(out, info.name)
    # Multi-worker collectives must be configured before TensorFlow runs any op.
    distribution = get_strategy(strategy)
    bundle = data if isinstance(data, DataBundle) else load_dataset(
        data, info.task, image_size, channels, seed)
    if bundle.task != info.task:
        raise KCCError(f"model {info.name!r} needs {info.task} data, got {bundle.task} data")
    augment = _augmentation(augment, info, bundle, seed)
    one_hot = bool(getattr(augment, "mixes_labels", False))
    train_data, val_data = _pipelines(bundle, batch_size, augment, seed, one_hot)
    rate = learning_rate_over_run(learning_rate, schedule, epochs,
                                  _steps_per_epoch(train_data), warmup_epochs)
    config = dict(model=info.name, model_overrides=model_overrides, data=bundle.name,
                  task=info.task, image_size=list(bundle.image_shape[:2]),
                  channels=bundle.image_shape[2], epochs=epochs, batch_size=batch_size,
                  learning_rate=learning_rate, schedule=schedule, warmup_epochs=warmup_epochs,
                  optimizer=optimizer, strategy=strategy, precision=precision, seed=seed,
                  one_hot_labels=one_hot,
                  augment=getattr(augment, "name", None if augment is None else "custom"))

    keras.utils.set_random_seed(seed)
    previous_policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(precision or "float32")
    try:
        with distribution.scope():
            net = build_for_data(info, bundle, **model_overrides)
            compile_for_task(net, info, bundle.num_classes, optimizer, rate, jit_compile, one_hot)
        chief = is_chief(distribution)
        run.create()
        if chief:
            run.write_json(run.config_json, config)
        started = time.time()
        history = _fit(net, info, bundle, run, train_data, val_data, epochs,
                       backup_every_steps, verbose, chief)
        seconds = time.time() - started
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)
    metrics = evaluate_model(net, bundle, batch_size, one_hot=one_hot)
    if chief:
        run.save_model(net)
        run.write_json(run.metrics_json, {**metrics, "train_seconds": seconds})
    return Run(path=run.path, model=net, history=history, metrics=metrics, seconds=seconds)


def _check_run_folder(out, model_name):
    out = out or os.path.join("runs", f"{model_name}-{time.strftime('%Y%m%d-%H%M%S')}")
    run = RunFolder(out)
    if os.path.exists(run.model_file):
        raise KCCError(f"run folder {out!r} already holds a finished model; choose a new --out")
    if os.path.exists(out) and not os.path.isdir(out):
        raise KCCError(f"--out must be a folder, got the file {out!r}")
    return run


def build_for_data(info, bundle, **overrides):
    """Builds ``info``'s model with the data's image shape and class count.

    Raises:
        KCCError: an ``input_shape`` override disagrees with the data.
    """
    kwargs = {"input_shape": bundle.image_shape}
    if info.task in ("classification", "segmentation"):
        kwargs["classes"] = bundle.num_classes
    kwargs.update(overrides)
    if tuple(kwargs["input_shape"]) != tuple(bundle.image_shape):
        raise KCCError(
            f"model input_shape {tuple(kwargs['input_shape'])} does not match the data's "
            f"image shape {tuple(bundle.image_shape)}"
        )
    return applications.build(info.name, **kwargs)


def compile_for_task(model, info, num_classes, optimizer="adam", learning_rate=1e-3,
                     jit_compile="auto", one_hot=False):
    """Compiles a model with its task's loss and metrics.

    Args:
        model: the model, built in the strategy scope it will train in.
        info: its ``ModelInfo``; the task picks loss and metrics.
        num_classes: classes of the labels (for segmentation's mean IoU).
        optimizer: Keras optimizer name.
        learning_rate: the optimizer's learning rate.
        jit_compile: passed to ``model.compile``.
        one_hot: classification labels arrive one-hot (mixup, cutmix).
    """
    optimizer = keras.optimizers.get({"class_name": optimizer,
                                      "config": {"learning_rate": learning_rate}})
    if info.task == "generative":
        model.compile(optimizer=optimizer, jit_compile=jit_compile)
        return model
    if one_hot:
        loss = keras.losses.CategoricalCrossentropy()
        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=jit_compile)
        return model
    loss = info.loss() if info.loss else keras.losses.SparseCategoricalCrossentropy()
    metrics = ["accuracy"]
    if info.task == "segmentation":
        metrics.append(keras.metrics.MeanIoU(num_classes, sparse_y_pred=False, name="mean_iou"))
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=jit_compile)
    return model


def _augmentation(augment, info, bundle, seed):
    """Resolves an augmentation policy name to a callable."""
    if augment is None or callable(augment):
        return augment
    from keras_cv_course.data import augment as policies

    if info.task != "classification" and augment != "none":
        raise KCCError(f"augmentation policies apply to classification, not {info.task}")
    return policies.get_policy(augment, num_classes=bundle.num_classes, seed=seed)


def _pipelines(bundle, batch_size, augment, seed, one_hot):
    """The training and validation pipelines.

    Training drops the last partial batch: a smaller final batch would be
    traced as a second training step and would skew BatchNorm statistics.
    """
    classes = _classes_if(one_hot, bundle)
    train_data = pipeline(bundle.train, batch_size, True, augment, seed, drop_remainder=True,
                          one_hot_classes=classes)
    val_data = pipeline(bundle.val, batch_size, one_hot_classes=classes)
    return _distributable(train_data), _distributable(val_data)


def _steps_per_epoch(train_data):
    steps = int(train_data.cardinality())
    if steps == 0:
        raise KCCError("batch_size is larger than the training split; choose a smaller one")
    return steps if steps > 0 else None


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


def _fit(net, info, bundle, run, train_data, val_data, epochs, backup_every_steps, verbose,
         chief):
    if info.training == "memorize":
        net.memorize(*bundle.arrays["train"])
        return {}
    golden = bundle.golden_batch(4)
    callbacks = run_callbacks.standard_callbacks(run, info.task, golden, backup_every_steps, chief)
    history = net.fit(train_data, validation_data=val_data, epochs=epochs, callbacks=callbacks,
                      verbose=verbose, shuffle=False)  # the pipeline shuffles
    guard = next(c for c in callbacks if isinstance(c, run_callbacks.StopOnNonFiniteLoss))
    if guard.stopped_at is not None:
        epoch, batch, loss = guard.stopped_at
        raise KCCError(
            f"training stopped: the loss became {loss} at epoch {epoch + 1}, batch {batch + 1}; "
            "check the data for NaN and try a lower learning rate"
        )
    return history.history


def _classes_if(one_hot, bundle):
    return bundle.num_classes if one_hot else None


def _distributable(dataset):
    """Shards by example rather than by file, which in-memory data needs."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def evaluate_run(path, batch_size=64):
    """Reloads a run's final model and data and evaluates it on the test split."""
    run = RunFolder(path)
    config = run.read_config()
    model = run.load_model()
    bundle = load_dataset(config["data"], config["task"], config["image_size"],
                          config["channels"], config["seed"])
    return evaluate_model(model, bundle, batch_size, one_hot=config.get("one_hot_labels", False))


def evaluate_model(model, bundle, batch_size=64, split="test", one_hot=False):
    """Evaluates a compiled model on a split; returns ``{metric: value}``."""
    dataset = pipeline(getattr(bundle, split), batch_size,
                       one_hot_classes=_classes_if(one_hot, bundle))
    results = model.evaluate(dataset, verbose=0, return_dict=True)
    return {name: float(value) for name, value in results.items()}
