"""Callbacks of a training run: logs, checkpoints, backups and image summaries."""

import os

import keras
import numpy as np

from keras_cv_course.runs import RunFolder, save_keras_atomically
from keras_cv_course.training.interrupts import RunBackup


def standard_callbacks(run: RunFolder, task, golden_inputs=None, backup_every_steps=None,
                       chief=True, graceful_stop=None, steps_done=0, restores=True):
    """The callbacks every run gets.

    Args:
        run: the run folder.
        task: the model's task object; its ``summaries`` (if any) are logged
            to TensorBoard as images each epoch.
        golden_inputs: a fixed batch of inputs for the image summaries, or
            ``(inputs, targets)`` for tasks that draw the truth too.
        backup_every_steps: also back up mid-epoch every this many steps, so
            a killed run loses at most that many steps.
        chief: False on non-chief workers, which restore the chief's backup
            but write nothing.
        graceful_stop: the run's ``GracefulStop``, which turns SIGINT and
            SIGTERM into a backup and a clean exit; ``None`` for none.
        steps_done, restores: see ``RunBackup``.

    The backup comes first, so that the other callbacks see restored state;
    ``GracefulStop`` comes last, so that a signal stops the run after every
    other callback has seen the batch.
    """
    backup = RunBackup(run.backup_dir, save_freq=backup_every_steps or "epoch", writes=chief,
                       steps_done=steps_done, restores=restores)
    callbacks = [backup, StopOnNonFiniteLoss()]
    if chief:
        callbacks += [
            keras.callbacks.TensorBoard(run.logs_dir, update_freq="epoch"),
            keras.callbacks.CSVLogger(run.history_csv, append=True),
            BestModelCheckpoint(run.best_checkpoint),
        ]
    if chief and golden_inputs is not None:
        inputs, targets = (golden_inputs if isinstance(golden_inputs, tuple)
                           else (golden_inputs, None))
        callbacks.append(ImageSummary(os.path.join(run.logs_dir, "images"), inputs, task,
                                      targets=targets))
    if graceful_stop is not None:
        graceful_stop.backup = backup
        callbacks.append(graceful_stop)
    return callbacks


class BestModelCheckpoint(keras.callbacks.Callback):
    """Saves the model whenever the validation loss improves, atomically.

    Like ``keras.callbacks.ModelCheckpoint(save_best_only=True)``, but the
    file is written to a temporary name and renamed, so a failed write (a
    full disk) leaves the previous best checkpoint intact and says so.
    """

    def __init__(self, path, monitor="val_loss"):
        super().__init__()
        self.path = path
        self.monitor = monitor
        self.best = np.inf

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not float(value) < self.best:
            return
        self.best = float(value)
        save_keras_atomically(self.model, self.path)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first NaN or infinite batch loss and remembers where.

    Like ``keras.callbacks.TerminateOnNaN``, but keeps ``stopped_at``
    (epoch, batch, loss) so the caller can report it.
    """

    def __init__(self):
        super().__init__()
        self.stopped_at = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            self.stopped_at = (self._epoch, batch, float(loss))
            self.model.stop_training = True


class ImageSummary(keras.callbacks.Callback):
    """Writes the task's image summaries to TensorBoard after each epoch.

    What is drawn is the task's choice (``Task.summaries``): segmentation
    shows inputs and predicted class maps, generative models show inputs,
    reconstructions and samples. Tasks without summaries write nothing.
    """

    def __init__(self, log_dir, inputs, task, max_images=4, targets=None):
        super().__init__()
        self.log_dir = log_dir
        self.inputs = _first(inputs, max_images)
        self.targets = None if targets is None else _first(targets, max_images)
        self.task = task
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        panels = self.task.summaries(self.model, self.inputs, self.targets)
        if not panels:
            return
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default():
            for name, batch in panels.items():
                tf.summary.image(name, np.asarray(batch), step=epoch, max_outputs=len(batch))
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()


def _first(inputs, count):
    """The first ``count`` examples of an array or a dict of arrays."""
    if isinstance(inputs, dict):
        return {name: np.asarray(value[:count]) for name, value in inputs.items()}
    return np.asarray(inputs[:count])
