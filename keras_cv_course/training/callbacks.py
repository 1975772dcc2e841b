"""Callbacks of a training run: logs, checkpoints, backups and image summaries."""

import os

import keras
import numpy as np

from keras_cv_course.training.run_folder import RunFolder


def standard_callbacks(run: RunFolder, task, golden_images=None, backup_every_steps=None,
                       chief=True):
    """The callbacks every run gets.

    Args:
        run: the run folder.
        task: the model's task; segmentation and generative models also log
            images to TensorBoard.
        golden_images: a fixed batch of images for the image summaries.
        backup_every_steps: also back up mid-epoch every this many steps, so
            a killed run loses at most that many steps.
        chief: False on non-chief workers, which keep backups but write no logs.
    """
    callbacks = [
        StopOnNonFiniteLoss(),
        keras.callbacks.BackupAndRestore(run.backup_dir, save_freq=backup_every_steps or "epoch",
                                         delete_checkpoint=True),
    ]
    if not chief:
        return callbacks
    callbacks += [
        keras.callbacks.TensorBoard(run.logs_dir, update_freq="epoch"),
        keras.callbacks.CSVLogger(run.history_csv, append=True),
        keras.callbacks.ModelCheckpoint(run.best_checkpoint, monitor="val_loss",
                                        save_best_only=True),
    ]
    if task in ("segmentation", "generative") and golden_images is not None:
        callbacks.append(ImageSummary(os.path.join(run.logs_dir, "images"), golden_images, task))
    return callbacks


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
    """Writes inputs and predictions as TensorBoard images after each epoch.

    Segmentation: input, predicted class map. Generative: input,
    reconstruction and, if the model has ``sample``, samples from the prior.
    """

    def __init__(self, log_dir, images, task, max_images=4):
        super().__init__()
        self.log_dir = log_dir
        self.images = np.asarray(images[:max_images])
        self.task = task
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        panels = {"inputs": self.images, **self._predictions()}
        with self._writer.as_default():
            for name, batch in panels.items():
                tf.summary.image(name, batch, step=epoch, max_outputs=len(batch))
        self._writer.flush()

    def _predictions(self):
        outputs = self.model(self.images, training=False)
        if self.task == "segmentation":
            classes = np.argmax(keras.ops.convert_to_numpy(outputs), axis=-1)
            scale = max(1, outputs.shape[-1] - 1)
            return {"predicted_masks": (classes[..., None] / scale).astype("float32")}
        panels = {"reconstructions": keras.ops.convert_to_numpy(outputs["reconstruction"])}
        if hasattr(self.model, "sample"):
            panels["samples"] = self.model.sample(len(self.images), seed=0)
        return panels

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
