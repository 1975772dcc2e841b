"""Stopping a training run cleanly on Ctrl-C (SIGINT) or SIGTERM.

A signal that arrives while ``model.fit`` runs is remembered; at the end of
the current batch the run saves a backup and raises ``Interrupted``, whose
message says how to resume. A signal outside ``fit`` (while data loads or
the model builds), or a second signal, interrupts at once. SIGKILL cannot
be caught; the backups of ``RunBackup`` cover it.

Resuming restarts the interrupted epoch from the backed-up weights, as
Keras' ``BackupAndRestore`` does for any mid-epoch backup.
"""

import contextlib
import json
import os
import shutil
import signal
import tempfile
import threading

import keras

from keras_cv_course.errors import KCCError

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KCCError):
    """Training stopped on a signal; ``exit_status`` is the shell's 128 + signal number."""

    def __init__(self, message, signum):
        super().__init__(message)
        self.exit_status = 128 + int(signum)


class RunBackup(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` that knows the step it stopped at and can save on demand.

    ``double_checkpoint=True`` keeps the previous backup beside the current
    one, so a write that fails halfway (a full disk) falls back to it.
    The run folder deletes the backup itself once the final model is saved,
    so a run that fails after ``fit`` still resumes.

    Besides Keras' epoch, the metadata records ``steps_in_epoch``, the
    training steps done in that epoch, which ``resume_point`` reads back:
    a resumed run skips exactly those batches (``data.training_stream``)
    instead of replaying the epoch from its start, as Keras would.

    Args:
        backup_dir: where the backup lives.
        save_freq: ``"epoch"`` or a number of steps.
        writes: False on the non-chief workers of a multi-worker run. They
            restore the chief's backup, and save theirs (saving is a
            collective operation all workers join) to a scratch folder.
        steps_done: steps of the first epoch done before this ``fit`` began
            (a resumed epoch), so that the recorded count stays right.
        restores: load the backup when ``fit`` begins. False for a ``fit``
            that continues where this process's previous one ended.
    """

    def __init__(self, backup_dir, save_freq="epoch", writes=True, steps_done=0,
                 restores=True):
        self.chief_backup_dir = backup_dir
        if not writes:
            backup_dir = tempfile.mkdtemp(prefix="kcc-worker-backup-")
        super().__init__(backup_dir, save_freq=save_freq, double_checkpoint=True,
                         delete_checkpoint=not writes)
        self.writes = writes
        self.restores = restores
        self._offset = steps_done
        self._steps_in_epoch = 0

    def on_train_begin(self, logs=None):
        if self.restores and not self.writes and os.path.isdir(self.chief_backup_dir):
            shutil.copytree(self.chief_backup_dir, self.backup_dir, dirs_exist_ok=True)
        if self.restores:
            super().on_train_begin(logs)
        else:  # an earlier restore's epoch must not override this fit's initial_epoch
            self.model._initial_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch  # correct after a resume, before any epoch has ended
        self._steps_in_epoch = self._offset

    def on_train_batch_end(self, batch, logs=None):
        self._steps_in_epoch = self._offset + batch + 1
        super().on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._offset = self._steps_in_epoch = 0
        super().on_epoch_end(epoch, logs)

    def _save_model(self):
        super()._save_model()
        metadata = os.path.join(self.backup_dir, "training_metadata.json")
        with open(metadata, "w") as handle:
            json.dump({"epoch": self._current_epoch, "steps_in_epoch": self._steps_in_epoch},
                      handle)

    def save_now(self):
        """Backs up the weights and the epoch now (mid-epoch, on a signal)."""
        self._save_model()

    @staticmethod
    def exists(backup_dir):
        """True when ``backup_dir`` holds a state to resume from."""
        return os.path.exists(os.path.join(backup_dir, "training_metadata.json"))


def resume_point(backup_dir):
    """``(epoch, steps_in_epoch)`` of the backup in ``backup_dir``; ``(0, 0)`` if none.

    When the latest weights cannot be read (a write cut off by a full disk),
    Keras restores the previous backup, and so this reads the previous metadata.
    """
    names = ["training_metadata.json", "training_metadata.json.bkp"]
    if not _readable(os.path.join(backup_dir, "latest.weights.h5")):
        names.reverse()
    for name in names:
        try:
            with open(os.path.join(backup_dir, name)) as handle:
                metadata = json.load(handle)
            return int(metadata["epoch"]), int(metadata.get("steps_in_epoch", 0))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return 0, 0


class GracefulStop(keras.callbacks.Callback):
    """Turns SIGINT and SIGTERM into a backup and an ``Interrupted`` error.

    Args:
        resume_hint: the command that resumes the run, for the message.
        backup: the run's ``RunBackup`` (``standard_callbacks`` sets it).
    """

    def __init__(self, resume_hint, backup=None):
        super().__init__()
        self.backup = backup
        self.resume_hint = resume_hint
        self.received = None
        self._fitting = False
        self._epoch = 0

    @contextlib.contextmanager
    def installed(self):
        """Handles the signals inside the ``with`` block (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {signum: signal.signal(signum, self._handle) for signum in SIGNALS}
        try:
            yield self
        finally:
            self._fitting = False
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.received is not None:
            raise Interrupted(f"interrupted by {name} again, without a new backup; resume from "
                              f"the last one with: {self.resume_hint}", signum)
        if not self._fitting:
            raise Interrupted(f"interrupted by {name} before training started; "
                              "nothing was written", signum)
        self.received = signum  # stop at the end of this batch; after fit, finish the run

    def on_train_begin(self, logs=None):
        self._fitting = True

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.received is None:
            return
        self.backup.save_now()
        name = signal.Signals(self.received).name
        raise Interrupted(f"interrupted by {name} at epoch {self._epoch + 1}, batch {batch + 1}; "
                          f"backup saved; resume with: {self.resume_hint}", self.received)


def _readable(weights_path):
    """False for a weights file that exists but is not a readable HDF5 file."""
    if not os.path.exists(weights_path):
        return True
    import h5py

    try:
        with h5py.File(weights_path, "r"):
            return True
    except OSError:
        return False
