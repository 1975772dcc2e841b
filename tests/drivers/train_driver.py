"""Runs ``train`` in its own process, for the kill/resume and multi-worker tests.

    python tests/drivers/train_driver.py OUT STRATEGY EPOCHS [KILL_AT_STEP]

With ``KILL_AT_STEP`` the process sends itself SIGKILL after that many
training steps, the harshest way a run can die.
"""

import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from keras_cv_course.training import train  # noqa: E402


class KillAfterSteps(keras.callbacks.Callback):
    def __init__(self, steps):
        super().__init__()
        self.steps = steps
        self.seen = 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.steps:
            os.kill(os.getpid(), signal.SIGKILL)


def main():
    out, strategy, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    kill_at = int(sys.argv[4]) if len(sys.argv) > 4 else None
    if kill_at:
        # The training loop of ``train`` runs our callback through the standard ones.
        from keras_cv_course.training import callbacks

        original = callbacks.standard_callbacks

        def with_killer(*args, **kwargs):
            return original(*args, **kwargs) + [KillAfterSteps(kill_at)]

        callbacks.standard_callbacks = with_killer
    run = train("mlp", "digits", out, epochs=epochs, batch_size=64, strategy=strategy,
                backup_every_steps=4, verbose=0, hidden_units=32)
    print("FINAL_ITERATIONS", int(run.model.optimizer.iterations.numpy()))
    print("FINAL_LOSSES", ",".join(f"{v:.6f}" for v in run.history["loss"]))


if __name__ == "__main__":
    main()
