"""Runs ``kcc train`` in its own process, for the kill, resume and distributed tests.

    python tests/drivers/train_driver.py [--kill-at STEP] [--cpu-devices N]
        [--weights-out FILE.npz] [--shards-out FILE.json] -- KCC TRAIN ARGUMENTS...

Everything after ``--`` goes to ``kcc train`` unchanged, so the tests run the
command a user types. The options before it add what a test needs:

* ``--kill-at STEP``: the process sends itself SIGKILL after that many
  training steps, the harshest way a run can die;
* ``--cpu-devices N``: split the CPU into N logical devices (a
  ``MirroredStrategy`` with N replicas);
* ``--weights-out``: the trained weights, for equality checks;
* ``--shards-out``: the example indices this worker reads in the run's first
  epoch, through the run's own strategy and pipeline.
"""

import argparse
import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402


class KillAfterSteps(keras.callbacks.Callback):
    def __init__(self, steps):
        super().__init__()
        self.steps = steps
        self.seen = 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.steps:
            os.kill(os.getpid(), signal.SIGKILL)


def add_killer(steps):
    """``train`` builds its callbacks with ``standard_callbacks``; ours joins them."""
    from keras_cv_course.training import callbacks

    original = callbacks.standard_callbacks

    def with_killer(*args, **kwargs):
        return original(*args, **kwargs) + [KillAfterSteps(steps)]

    callbacks.standard_callbacks = with_killer


def split_cpu(devices):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * devices)


def record_run(output):
    """Wraps ``train`` and its ``get_strategy`` to keep the run and its strategy."""
    from keras_cv_course import training

    module = sys.modules["keras_cv_course.training.train"]
    original_train, original_strategy = training.train, module.get_strategy

    def recorded(*args, **kwargs):
        output["run"] = original_train(*args, **kwargs)
        output["kwargs"] = kwargs
        return output["run"]

    def recorded_strategy(*args, **kwargs):
        output["strategy"] = original_strategy(*args, **kwargs)
        return output["strategy"]

    training.train, module.get_strategy = recorded, recorded_strategy


def first_epoch_indices(output):
    """The training examples (by index) this worker reads in epoch 0."""
    import tensorflow as tf

    from keras_cv_course.data import load_dataset, training_stream

    module = sys.modules["keras_cv_course.training.train"]
    kwargs, strategy = output["kwargs"], output["strategy"]
    bundle = load_dataset("digits", "classification")
    count = int(bundle.train.cardinality())
    indices = tf.data.Dataset.range(count).map(lambda i: (i, i))
    stream, steps = training_stream(indices, kwargs["batch_size"], 1, seed=kwargs["seed"])
    seen = []
    for step, (batch, _) in enumerate(strategy.experimental_distribute_dataset(
            module._distributable(stream))):
        if step == steps:
            break
        for local in strategy.experimental_local_results(batch):
            seen += [int(i) for i in np.asarray(local)]
    return seen


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kill-at", type=int)
    parser.add_argument("--cpu-devices", type=int)
    parser.add_argument("--weights-out")
    parser.add_argument("--shards-out")
    ours, kcc_arguments = sys.argv[1:sys.argv.index("--")], sys.argv[sys.argv.index("--") + 1:]
    args = parser.parse_args(ours)
    if args.cpu_devices:
        split_cpu(args.cpu_devices)
    if args.kill_at:
        add_killer(args.kill_at)
    output = {}
    record_run(output)
    from keras_cv_course import cli

    status = cli.main(["train", *kcc_arguments])
    if status:
        sys.exit(status)
    run = output["run"]
    print("FINAL_ITERATIONS", int(run.model.optimizer.iterations.numpy()))
    print("FINAL_LOSSES", ",".join(f"{v:.6f}" for v in run.history["loss"]))
    if args.weights_out:
        np.savez(args.weights_out, *[np.asarray(w) for w in run.model.get_weights()])
    if args.shards_out:
        with open(args.shards_out, "w") as handle:
            json.dump(first_epoch_indices(output), handle)


if __name__ == "__main__":
    main()
