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
import os
import signal
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
    """``BackupAndRestore`` that keeps the previous backup and can save on demand.

    ``double_checkpoint=True`` keeps the previous backup beside the current
    one, so a write that fails halfway (a full disk) falls back to it.
    The run folder deletes the backup itself once the final model is saved,
    so a run that fails after ``fit`` still resumes.
    """

    def __init__(self, backup_dir, save_freq="epoch"):
        super().__init__(backup_dir, save_freq=save_freq, double_checkpoint=True,
                         delete_checkpoint=False)

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch  # correct after a resume, before any epoch has ended

    def save_now(self):
        """Backs up the weights and the epoch now (mid-epoch, on a signal)."""
        self._save_model()

    @staticmethod
    def exists(backup_dir):
        """True when ``backup_dir`` holds a state to resume from."""
        return os.path.exists(os.path.join(backup_dir, "training_metadata.json"))


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
