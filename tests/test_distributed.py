"""Distributed training computes the same model as one process, and survives faults.

Every run here is ``kcc train mlp --data digits`` (19 steps of 64 examples
per epoch), started in its own process by ``tests/drivers/train_driver.py``.
The reference is one process with the default strategy, the same global
batch, seed and data order. Tolerances: equal float32 sums taken in another
order differ by a few ulps, and Adam's steps carry such differences along;
after 2 epochs they stay below 1e-5 here.
"""

import csv
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = os.path.join(ROOT, "tests", "drivers", "train_driver.py")
STEPS_PER_EPOCH = 1257 // 64  # digits: 1,257 training examples, 19 full batches
TOLERANCE = 1e-5
DEAD_WORKER_BOUND_S = 120  # the surviving worker must have exited by then


def kcc_train(out, *arguments, epochs=2, strategy="default", driver=(), augment="standard"):
    """The driver's command line: its options, then ``kcc train``'s."""
    return [sys.executable, DRIVER, *driver, "--", "mlp", "--data", "digits", "--out", str(out),
            "--epochs", str(epochs), "--batch-size", "64", "--seed", "3", "--strategy", strategy,
            "--set", "hidden_units=32", "--backup-every-steps", "4", "--augment", augment,
            *arguments]


def run(command, env=None, timeout=600):
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": ROOT, **(env or {})})


def weights(path):
    with np.load(path) as saved:
        return [saved[key] for key in sorted(saved.files, key=lambda k: int(k.split("_")[1]))]


def assert_same_weights(actual, expected, tolerance):
    assert len(actual) == len(expected)
    worst = max(float(np.max(np.abs(a - e))) for a, e in zip(actual, expected))
    assert worst <= tolerance, f"largest weight difference {worst:.3g} > {tolerance}"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def final(output, key):
    line = next(line for line in output.splitlines() if line.startswith(key))
    return line.split(" ", 1)[1]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The reference: one process, the default strategy, deterministic ops."""
    folder = tmp_path_factory.mktemp("one_process")
    result = run(kcc_train(folder / "run", "--deterministic",
                           driver=["--weights-out", str(folder / "weights.npz")]))
    assert result.returncode == 0, result.stderr[-3000:]
    return weights(folder / "weights.npz")


def test_sigkilled_run_resumes_to_the_weights_of_an_uninterrupted_run(one_process, tmp_path):
    """Killed at step 30 (epoch 2, step 11); the last backup was at step 28.

    The resumed run restores the step-28 weights and optimizer state, skips the
    9 batches of epoch 2 it had already trained on, and goes on: 2 x 19
    updates, none lost, none repeated, and the same weights as without the kill.
    """
    out = tmp_path / "killed"
    killed = run(kcc_train(out, "--deterministic", driver=["--kill-at", "30"]))
    assert killed.returncode == -9
    assert os.path.exists(out / "backup" / "training_metadata.json")
    with open(out / "backup" / "training_metadata.json") as handle:
        assert json.load(handle) == {"epoch": 1, "steps_in_epoch": 9}
    resumed = run(kcc_train(out, "--deterministic",
                            driver=["--weights-out", str(tmp_path / "resumed.npz")]))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert int(final(resumed.stdout, "FINAL_ITERATIONS")) == 2 * STEPS_PER_EPOCH
    with open(out / "history.csv") as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["0", "1"]
    assert not os.path.exists(out / "backup")
    assert_same_weights(weights(tmp_path / "resumed.npz"), one_process, 0.0)


def test_mirrored_over_two_replicas_equals_one_process(one_process, tmp_path):
    result = run(kcc_train(tmp_path / "mirrored", "--deterministic", strategy="mirrored",
                           driver=["--cpu-devices", "2",
                                   "--weights-out", str(tmp_path / "mirrored.npz")]))
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_weights(weights(tmp_path / "mirrored.npz"), one_process, TOLERANCE)


def test_jax_data_parallel_over_two_devices_equals_one_device(tmp_path):
    env = {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    finished = {}
    for strategy in ("default", "auto"):  # auto: DataParallel over both devices
        # The augmentation runs eagerly on JAX, through tf.numpy_function (bundle.backend_map).
        result = run(kcc_train(tmp_path / strategy, strategy=strategy, augment="standard",
                               driver=["--weights-out", str(tmp_path / f"{strategy}.npz")]),
                     env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        finished[strategy] = weights(tmp_path / f"{strategy}.npz")
    assert_same_weights(finished["auto"], finished["default"], TOLERANCE)


def start_workers(out, addresses, extra_driver, epochs=2, logs=None):
    """One process per worker; their output goes to files in ``logs``.

    Not to pipes: a worker blocked on a full pipe stops joining the
    collectives, and then every worker waits.
    """
    logs = logs or out.parent
    workers = []
    for index in range(len(addresses)):
        command = kcc_train(out, "--deterministic", "--workers", ",".join(addresses),
                            "--task-index", str(index), epochs=epochs, strategy="multiworker",
                            driver=[*extra_driver(index)])
        log = open(logs / f"worker{index}-{time.monotonic_ns()}.log", "w+")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True,
                                   env={**os.environ, "PYTHONPATH": ROOT})
        process.log = log
        workers.append(process)
    return workers


def finish(worker, timeout=600):
    """Waits for a worker; returns its exit status and its output."""
    try:
        worker.wait(timeout=timeout)
    finally:
        if worker.returncode is None:
            worker.kill()
            worker.wait()
        worker.log.seek(0)
        output = worker.log.read()
        worker.log.close()
    return worker.returncode, output


def test_two_workers_from_the_cli_equal_one_process(one_process, tmp_path):
    """Two ``kcc train --strategy multiworker`` processes, one run folder.

    Each worker reads half of every global batch (``AutoShardPolicy.DATA``
    after rebatching), so every example is read once per epoch, by one worker.
    """
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    workers = start_workers(tmp_path / "run", addresses, lambda index: [
        "--weights-out", str(tmp_path / f"worker{index}.npz"),
        "--shards-out", str(tmp_path / f"shard{index}.json")])
    for status, output in [finish(worker) for worker in workers]:
        assert status == 0, output[-3000:]
    assert_same_weights(weights(tmp_path / "worker0.npz"), one_process, TOLERANCE)
    assert_same_weights(weights(tmp_path / "worker1.npz"), weights(tmp_path / "worker0.npz"),
                        0.0)
    assert sorted(os.listdir(tmp_path / "run")) == sorted(
        ["config.json", "history.csv", "logs", "checkpoints", "model.keras", "metrics.json"])
    with open(tmp_path / "run" / "config.json") as handle:
        assert json.load(handle)["task_index"] == 0  # the chief wrote it
    shards = [set(json.load(open(tmp_path / f"shard{index}.json"))) for index in range(2)]
    assert not shards[0] & shards[1]
    assert len(shards[0]) == len(shards[1]) == STEPS_PER_EPOCH * 32
    assert len(shards[0] | shards[1]) == STEPS_PER_EPOCH * 64  # each example once per epoch


def test_a_dead_worker_stops_the_other_and_both_resume_from_the_chief(tmp_path):
    """Worker 1 is SIGKILLed once the chief has a backup.

    The chief notices within seconds (``lost_worker_message``; 12 s measured
    here), exits non-zero with one line naming the lost worker, and keeps its
    backup. The same two commands, run again, resume from it and finish.
    """
    epochs = 8  # long enough to be killed mid-run
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    out = tmp_path / "run"
    workers = start_workers(out, addresses, lambda index: [], epochs=epochs)
    metadata = out / "backup" / "training_metadata.json"
    deadline = time.time() + 300
    while not metadata.exists() and time.time() < deadline and workers[0].poll() is None:
        time.sleep(0.2)
    assert metadata.exists(), finish(workers[0])[1][-3000:]
    workers[1].kill()
    killed_at = time.time()
    status, output = finish(workers[0], timeout=DEAD_WORKER_BOUND_S)
    assert status is not None and time.time() - killed_at < DEAD_WORKER_BOUND_S, (
        f"the surviving worker still ran {DEAD_WORKER_BOUND_S} s after its peer died")
    finish(workers[1])
    print(f"the chief exited {time.time() - killed_at:.0f} s after worker 1 died")
    assert status != 0
    assert "kcc: error:" in output, output[-3000:]
    message = output[output.rindex("kcc: error:"):].splitlines()[0]  # after the progress bar
    assert message.startswith(f"kcc: error: lost worker 1 ({addresses[1]})"), message[:700]
    assert "restart every worker" in message
    with open(metadata) as handle:
        assert json.load(handle)["epoch"] < epochs - 1  # it died mid-run

    restarted = start_workers(out, addresses, lambda index: [], epochs=epochs)  # same command
    outputs = [finish(worker) for worker in restarted]
    for status, output in outputs:
        assert status == 0, output[-3000:]
    iterations = [int(final(output, "FINAL_ITERATIONS")) for _, output in outputs]
    assert iterations == [epochs * STEPS_PER_EPOCH] * 2  # nothing lost, nothing repeated
    with open(out / "history.csv") as handle:
        assert int(list(csv.DictReader(handle))[-1]["epoch"]) == epochs - 1
    assert os.path.exists(out / "model.keras")


SWEEP = os.path.join(ROOT, "tests", "drivers", "precision_sweep.py")
# XLA's lowest optimisation level compiles several times faster; speed does not matter here.
FAST_XLA = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


@pytest.mark.parametrize("backend, models", [
    ("tensorflow", "mlp,resnet18,mobilenet_v2"),
    ("jax", "mlp,resnet18,vit_tiny_16"),
])
def test_mixed_precision_xla_training_step(backend, models):
    """One ``mixed_bfloat16`` step compiled by XLA, on each backend.

    A few families here; ``precision_sweep.py`` with no ``--models`` runs one model
    of every family (docs/distributed.md records that run).
    """
    result = run([sys.executable, SWEEP, "--models", models],
                 env={"KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": FAST_XLA})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"DONE {backend} mixed_bfloat16 failures=0" in result.stdout
    assert result.stdout.count("\nOK ") + result.stdout.startswith("OK ") == 3


# ----------------------------------------------------------------------------- in-process


def test_cluster_config_from_the_cli_arguments():
    from keras_cv_course.training.strategies import cluster_config

    assert cluster_config("localhost:12345,10.0.0.2:12346", 1) == {
        "cluster": {"worker": ["localhost:12345", "10.0.0.2:12346"]},
        "task": {"type": "worker", "index": 1}}


@pytest.mark.parametrize("workers, index, expected", [
    ("localhost", 0, "host:port"),
    ("localhost:1,localhost:1", 0, "twice"),
    ("localhost:1,localhost:2", 2, "--task-index must be 0 to 1"),
    ("localhost:1,localhost:2", None, "--task-index must be 0 to 1"),
])
def test_bad_cluster_arguments_get_one_line_errors(workers, index, expected):
    from keras_cv_course.errors import KCCError
    from keras_cv_course.training.strategies import cluster_config

    with pytest.raises(KCCError, match=expected) as raised:
        cluster_config(workers, index)
    assert "\n" not in str(raised.value)


def test_workers_need_the_multiworker_strategy_and_multiworker_needs_workers(monkeypatch):
    from keras_cv_course.errors import KCCError
    from keras_cv_course.training.strategies import get_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(KCCError, match="need --strategy multiworker"):
        get_strategy("mirrored", workers="localhost:1,localhost:2", task_index=0)
    with pytest.raises(KCCError, match="needs --workers"):
        get_strategy("multiworker")


@pytest.fixture
def two_workers(monkeypatch):
    """A ``TF_CONFIG`` of two workers, ``a:1`` (this one) and ``b:2``."""
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                                "task": {"type": "worker", "index": 0}}))


def test_lost_worker_messages_name_the_worker(two_workers):
    from keras_cv_course.training.strategies import lost_worker_message

    heartbeat = ("Collective ops is aborted by: Error reported from /job:worker/task:1: The "
                 "following tasks are unhealthy (stopped sending heartbeats):\n"
                 "/job:worker/replica:0/task:1\nThe tasks have crashed.")
    health_check = "cluster check alive failed, /job:worker/replica:0/task:1 is down"
    for text in (heartbeat, health_check):
        assert lost_worker_message(RuntimeError(text)).startswith("lost worker 1 (b:2):")
    assert lost_worker_message(RuntimeError("/job:worker/replica:0/task:0/device:CPU:0")) is None


def test_learning_rate_scales_linearly_with_the_global_batch():
    from keras_cv_course.training.strategies import scaled_learning_rate

    assert scaled_learning_rate(0.1, 1024) == pytest.approx(0.4)  # Goyal et al.: 0.1 at 256


def test_training_stream_orders_each_epoch_by_the_seed_alone():
    """Epoch e's batches do not depend on the epochs read before it."""
    import tensorflow as tf

    from keras_cv_course.data import training_stream

    examples = tf.data.Dataset.range(100).map(lambda i: (i, i))
    whole, steps = training_stream(examples, 10, epochs=3, seed=5)
    batches = [labels.numpy().tolist() for _, labels in whole]
    assert steps == 10 and len(batches) == 30
    assert batches[:10] != batches[10:20]  # each epoch its own order
    for start in (10, 13, 25):
        resumed, _ = training_stream(examples, 10, epochs=3, seed=5, start_step=start)
        assert [labels.numpy().tolist() for _, labels in resumed] == batches[start:]


def test_a_reset_connection_names_the_lost_worker_too(two_workers):
    from keras_cv_course.training.strategies import lost_worker_message

    reset = ("Collective ops is aborted by: recvmsg:Connection reset by peer\nAdditional GRPC "
             "error information from remote target /job:worker/replica:0/task:1 while calling "
             "/tensorflow.WorkerService/RecvBuf:")
    assert lost_worker_message(RuntimeError(reset)).startswith("lost worker 1 (b:2):")
