"""``bench_run``: every exported artifact of a run, on every runtime, timed and scored.

One row per artifact, runtime and thread count, in the spirit of MLPerf
Inference's single-stream scenario (Reddi et al., "MLPerf Inference
Benchmark", ISCA 2020, arXiv:1911.02549): batch-1 latency as the median and
the 90th percentile of timed runs after warm-up, next to the file's size,
raw and gzipped (a pruned or clustered model is only smaller once compressed,
which is how the TensorFlow Model Optimization guides measure it), the
task's headline metric on the held-out split and the top-1 agreement with
Keras.

Runtimes:

=================  ===================================================================
``keras``          the model's serving function, called eagerly (``model(x)``)
``tensorflow``     the SavedModel's ``serve`` signature
``litert+xnnpack`` the ``.tflite`` file in LiteRT with its default XNNPACK delegate
``litert``         the same file on LiteRT's built-in kernels only
``onnxruntime``    the ``.onnx`` file in ONNX Runtime on the CPU
=================  ===================================================================

LiteRT and ONNX Runtime run in a child process where TensorFlow cannot be
imported (``keras_cv_course.edge``), as on a device. Keras and the SavedModel
run in this process; TensorFlow fixes its thread pools at its first op, so
where this process's pools do not have the thread count asked for (one
thread, usually), their latencies are measured in a TensorFlow child that
sets them first.
"""

import functools
import gzip
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile

import numpy as np

from keras_cv_course import edge
from keras_cv_course.errors import KCCError
from keras_cv_course.export.model_card import read_manifest

MANIFEST = "manifest.json"
CHILD_TIMEOUT_S = 3600
COLUMNS = (("folder", "export"), ("format", "format"), ("mode", "mode"),
           ("runtime", "runtime"), ("threads", "threads"), ("bytes", "size"),
           ("gzip_bytes", "gzip"), ("median_ms", "median ms"), ("p90_ms", "p90 ms"),
           ("metric_value", None), ("agreement", "agreement"))


def bench_run(run_path, runs=50, warmup=5, limit=None):
    """Benchmarks a run's Keras model and every artifact of its export folders.

    Args:
        run_path: a run folder written by ``train``, exported to ``RUN/export``
            and/or ``RUN/export-MODE`` folders (each with ``manifest.json``).
        runs: timed batch-1 runs per row.
        warmup: untimed runs before them.
        limit: score on at most this many test examples (all by default).

    Returns:
        A list of rows (dicts): ``folder``, ``path``, ``format``, ``mode``,
        ``runtime``, ``threads``, ``bytes``, ``gzip_bytes``, ``median_ms``,
        ``p90_ms``, ``metric``, ``metric_value``, ``agreement``, ``examples``.

    Raises:
        KCCError: not a finished run, no export folder, or a runtime that
            fails (its last error line).
    """
    from keras_cv_course.runs import load_run

    run_path = str(run_path)
    folders = export_folders(run_path)
    run = load_run(run_path)
    parts = run.task.serving_parts(run.model)
    if len(parts) > 1:
        raise KCCError(f"kcc bench times exports of one network; {run.config['model']} serves "
                       f"{len(parts)} ({', '.join(parts)}), timed per caption by "
                       "`kcc predict --artifact`")
    inputs, targets = held_out_split(run, limit)
    reference = keras_outputs(run, inputs)
    threads = thread_counts()
    with tempfile.TemporaryDirectory(prefix="kcc-bench-") as scratch:
        inputs_file = os.path.join(scratch, "inputs.npz")
        np.savez(inputs_file, **inputs)
        tf_latency = {count: _tf_latency(run, folders, inputs, inputs_file, count, runs,
                                         warmup, scratch) for count in threads}
        scorer = _Scorer(run.task, targets, reference)
        rows = _keras_rows(run, tf_latency, scorer)
        for folder in folders:
            rows += _folder_rows(folder, inputs, inputs_file, threads, tf_latency, scorer,
                                 runs, warmup, scratch)
    return rows


def export_folders(run_path):
    """The run's export folders: ``RUN/export`` first, then ``RUN/export-*`` by name.

    Raises:
        KCCError: the run has none with a ``manifest.json``.
    """
    names = sorted(name for name in os.listdir(run_path)
                   if name == "export" or name.startswith("export-"))
    names.sort(key=lambda name: name != "export")
    folders = [os.path.join(run_path, name) for name in names
               if os.path.isfile(os.path.join(run_path, name, MANIFEST))]
    if not folders:
        raise KCCError(f"run {run_path!r} has no export folder with a {MANIFEST}; "
                       f"export it first: kcc export {run_path}")
    return folders


def thread_counts():
    """``[1, all cores]``: the cores this process may run on (one entry on one core)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return sorted({1, cores or 1})


def held_out_split(run, limit=None):
    """The run's held-out inputs (``{input name: array}``) and targets, at most ``limit``."""
    from keras_cv_course.export.api import golden_inputs
    from keras_cv_course.export.gate import split_arrays

    inputs, targets = split_arrays(run.bundle, "test", limit)
    return golden_inputs(run.model, run.task, inputs), targets


def keras_outputs(run, inputs, batch_size=64):
    """The model's serving outputs (the Keras reference) on ``inputs``."""
    import keras

    from keras_cv_course.export.api import serving_function
    from keras_cv_course.export.runners import run_in_batches

    serve = serving_function(run.model, run.task)

    def call(batch):
        return {key: keras.ops.convert_to_numpy(value) for key, value in serve(batch).items()}

    return run_in_batches(call, inputs, batch_size)


class _Scorer:
    """The task's headline metric and the agreement with Keras, of one runtime's outputs."""

    def __init__(self, task, targets, reference):
        self.task, self.targets, self.reference = task, targets, reference

    def __call__(self, outputs):
        try:
            scores = self.task.score(outputs, self.targets)
        except KCCError:  # a task that cannot score exported outputs: no metric column
            scores = {}
        name = next((key for key in self.task.headline_metrics if key in scores),
                    next(iter(scores), None))
        examples = len(next(iter(outputs.values())))
        return {"metric": name, "metric_value": scores.get(name),
                "agreement": self.task.agreement(outputs, self.reference),
                "examples": examples}


def _keras_rows(run, tf_latency, scorer):
    path = run.folder.model_file
    measures = scorer(scorer.reference)
    mode = run.config.get("precision") or "fp32"
    return [_row(None, path, "keras", mode, "keras", count, latency["keras"], measures)
            for count, latency in tf_latency.items()]


def _folder_rows(folder, inputs, inputs_file, threads, tf_latency, scorer, runs, warmup,
                 scratch):
    """The rows of one export folder: SavedModel, LiteRT (XNNPACK on, off), ONNX Runtime."""
    from keras_cv_course.export.runners import load_runner, run_in_batches

    manifest = read_manifest(folder)
    artifacts = manifest.get("artifacts", {})
    rows = []
    if "savedmodel" in artifacts:
        path = os.path.join(folder, artifacts["savedmodel"]["path"])
        measures = scorer(run_in_batches(load_runner("savedmodel", path), inputs))
        mode = artifact_mode(manifest, "savedmodel")
        rows += [_row(folder, path, "savedmodel", mode, "tensorflow", count,
                      latency["savedmodel"][folder], measures)
                 for count, latency in tf_latency.items()]
    configs = [("tflite", "litert+xnnpack", True), ("tflite", "litert", False),
               ("onnx", "onnxruntime", False)]
    for fmt, runtime, xnnpack in configs:
        if fmt not in artifacts:
            continue
        entry = artifacts[fmt]
        path = os.path.join(folder, entry["path"])
        for count in threads:
            meta, outputs = _device_run(path, fmt, inputs_file, count, xnnpack, runs, warmup,
                                        entry.get("io_quantization"), scratch)
            rows.append(_row(folder, path, fmt, artifact_mode(manifest, fmt), runtime, count,
                             meta, scorer(outputs)))
    return rows


def artifact_mode(manifest, fmt):
    """An artifact's quantization mode: its own ``mode``, else the folder's, else ``"fp32"``.

    The folder's ``manifest["quantize"]`` is a mode name or ``{"mode": name, ...}``.
    """
    mode = manifest.get("artifacts", {}).get(fmt, {}).get("mode")
    quantize = manifest.get("quantize")
    if mode is None and isinstance(quantize, dict):
        mode = quantize.get("mode")
    elif mode is None:
        mode = quantize
    return mode or "fp32"


def _row(folder, path, fmt, mode, runtime, threads, latency, measures):
    return {"folder": os.path.basename(folder) if folder else "", "path": path,
            "format": fmt, "mode": mode, "runtime": runtime, "threads": threads,
            "bytes": size_of(path), "gzip_bytes": gzip_size_of(path),
            "median_ms": latency["median_ms"], "p90_ms": latency["p90_ms"], **measures}


def size_of(path):
    """Bytes of a file, or of every file in a folder."""
    return sum(os.path.getsize(name) for name in _files(path))


def gzip_size_of(path):
    """Bytes after gzip (level 9) of a file, or the sum over a folder's files."""
    return sum(_gzip_size(name, os.stat(name).st_mtime_ns) for name in _files(path))


@functools.lru_cache(maxsize=256)
def _gzip_size(name, mtime_ns):
    """One file's gzip size, remembered while the file is unchanged (rows share files)."""
    with open(name, "rb") as handle:
        return len(gzip.compress(handle.read(), compresslevel=9, mtime=0))


def _files(path):
    if os.path.isfile(path):
        return [path]
    return sorted(os.path.join(root, name) for root, _, names in os.walk(path) for name in names)


# -- child processes ----------------------------------------------------------------------


def _device_run(path, fmt, inputs_file, threads, xnnpack, runs, warmup, io_quantization,
                scratch):
    """Runs one artifact in a TensorFlow-free child (``keras_cv_course.edge``)."""
    out = os.path.join(scratch, f"device-{os.getpid()}.npz")
    quantization_file = None
    if io_quantization and fmt == "onnx":
        quantization_file = os.path.join(scratch, "io_quantization.json")
        with open(quantization_file, "w", encoding="utf-8") as handle:
            json.dump(io_quantization, handle)
    command = edge.device_command(path, fmt, inputs_file, out, threads, xnnpack, runs, warmup,
                                  quantization_file)
    delegate = f"XNNPACK {'on' if xnnpack else 'off'}, " if fmt == "tflite" else ""
    _check_child(subprocess.run(command, capture_output=True, text=True,
                                env=edge.device_environment(), timeout=CHILD_TIMEOUT_S),
                 f"{fmt} ({delegate}{threads} threads) on {path!r}")
    meta, outputs = edge.read_result(out)
    os.remove(out)
    if meta["tensorflow_importable"] or meta["tensorflow_modules"]:
        raise KCCError(f"the device process for {path!r} could load TensorFlow")
    return meta, outputs


TF_CHILD = """
import sys
import tensorflow as tf
threads = int(sys.argv[1])
tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(threads)
from keras_cv_course.export.bench import tf_latency_main
sys.exit(tf_latency_main(sys.argv[2:]))
"""


def _tf_latency(run, folders, inputs, inputs_file, threads, runs, warmup, scratch):
    """Keras and SavedModel batch-1 latencies with TensorFlow limited to ``threads``.

    TensorFlow's thread pools are fixed at its first op. Where this
    process's pools already have ``threads`` threads (the default is one per
    core) the model is timed here; otherwise in a TensorFlow child process
    that sets them first.
    """
    import tensorflow as tf

    savedmodels = [folder for folder in folders
                   if "savedmodel" in read_manifest(folder).get("artifacts", {})]
    configured = tf.config.threading.get_intra_op_parallelism_threads()
    if configured == threads or (configured == 0 and threads == thread_counts()[-1]):
        return tf_latencies(run.model, run.task, edge.first_example(inputs), savedmodels, runs,
                            warmup)
    out = os.path.join(scratch, f"tf-{threads}.json")
    run_path = run.folder.path
    command = [sys.executable, "-c", TF_CHILD, str(threads), run_path, inputs_file, out,
               str(runs), str(warmup), *savedmodels]
    _check_child(subprocess.run(command, capture_output=True, text=True,
                                env=edge.device_environment(), timeout=CHILD_TIMEOUT_S),
                 f"Keras and SavedModel ({threads} threads) of run {run_path!r}")
    with open(out, encoding="utf-8") as handle:
        return json.load(handle)


def tf_latencies(model, task, example, folders, runs, warmup):
    """Times the Keras serving function and each folder's SavedModel on one example.

    Keras is called eagerly, ``model(x)``, as Keras recommends for a batch
    that fits in one call; the SavedModel through its ``serve`` signature.

    Returns:
        ``{"keras": latency, "savedmodel": {folder: latency}, "threads":
        {"intra_op": n, "inter_op": n}}`` (0 threads: TensorFlow's default,
        one per core).
    """
    import tensorflow as tf

    from keras_cv_course.export.api import serving_function
    from keras_cv_course.export.runners import SavedModelRunner

    serve = serving_function(model, task)
    result = {"keras": edge.measure_latency(lambda: serve(example), runs, warmup),
              "savedmodel": {},
              "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                          "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}}
    for folder in folders:
        runner = SavedModelRunner(os.path.join(folder, read_manifest(folder)["artifacts"]
                                               ["savedmodel"]["path"]))
        result["savedmodel"][folder] = edge.measure_latency(
            lambda runner=runner: runner(example), runs, warmup)
    return result


def tf_latency_main(argv):
    """The TensorFlow child: ``RUN INPUTS.npz OUT.json RUNS WARMUP [EXPORT_FOLDER ...]``.

    Writes ``tf_latencies`` of the run's model on the first input example.
    """
    from keras_cv_course.runs import RunFolder
    from keras_cv_course.tasks import get_task

    run_path, inputs_file, out, runs, warmup, *folders = argv
    with np.load(inputs_file) as data:
        example = {key: data[key][:1] for key in data.files}
    run_folder = RunFolder(run_path)
    task = get_task(run_folder.read_config()["task"])
    result = tf_latencies(run_folder.load_model(), task, example, folders, int(runs),
                          int(warmup))
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return 0


def _check_child(done, what):
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower()]
        reason = (errors or lines or [f"exit status {done.returncode}"])[-1][:300]
        raise KCCError(f"benchmarking {what} failed: {reason}")


# -- the report ---------------------------------------------------------------------------


def machine():
    """The CPU model, core counts and runtime versions of this machine."""
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "threads_all": thread_counts()[-1],
            "platform": platform.platform(), "python": platform.python_version(),
            **{name: _version(package) for name, package in
               (("keras", "keras"), ("tensorflow", "tensorflow"), ("litert", "ai-edge-litert"),
                ("onnxruntime", "onnxruntime"), ("numpy", "numpy"))}}


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def write_bench(rows, folder, settings=None):
    """Writes ``bench.md`` (a table and the machine) and ``bench.json``, each atomically.

    Args:
        rows: ``bench_run``'s rows.
        folder: where to write (created if missing).
        settings: optional facts to record, e.g. ``{"run": ..., "runs": 50, "warmup": 5}``.

    Returns:
        ``(md_path, json_path)``.
    """
    os.makedirs(folder, exist_ok=True)
    facts = machine()
    md_path, json_path = os.path.join(folder, "bench.md"), os.path.join(folder, "bench.json")
    _write_atomically(json_path, json.dumps({"machine": facts, "settings": settings or {},
                                             "rows": rows}, indent=2, default=_plain))
    _write_atomically(md_path, markdown(rows, facts, settings))
    return md_path, json_path


def markdown(rows, facts, settings=None):
    """The Markdown report: settings, the table, the machine."""
    metric = next((row["metric"] for row in rows if row.get("metric")), "metric")
    headers = [title or metric for _, title in COLUMNS]
    lines = ["# Benchmark", ""]
    if settings:
        lines += [", ".join(f"{key}: {value}" for key, value in settings.items()), ""]
    lines += ["Batch-1 latency over timed runs after warm-up; metric and top-1 agreement with "
              "Keras on the held-out split.", "",
              "| " + " | ".join(headers) + " |",
              "|" + "|".join("---" if key in ("folder", "format", "mode", "runtime") else "---:"
                             for key, _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(_cell(key, row.get(key)) for key, _ in COLUMNS) + " |"
              for row in rows]
    lines += ["", "## Machine", ""] + [f"- {key}: {value}" for key, value in facts.items()]
    return "\n".join(lines) + "\n"


def _cell(key, value):
    if value is None:
        return "-"
    if key in ("bytes", "gzip_bytes"):
        return human_size(value)
    if key in ("median_ms", "p90_ms"):
        return f"{value:.3f}"
    if key in ("metric_value", "agreement"):
        return f"{value:.2%}"
    return str(value) if value != "" else "(run)"


def human_size(size):
    """``1536`` -> ``"1.5 KB"``: bytes in the largest unit below 1024."""
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def _plain(value):
    return value.item() if isinstance(value, np.generic) else str(value)


def _write_atomically(path, text):
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)
