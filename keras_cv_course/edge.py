"""Running an exported artifact the way a device does: NumPy and the runtime, no TensorFlow.

A phone or a board has the LiteRT interpreter (``ai_edge_litert``, formerly
TensorFlow Lite; https://ai.google.dev/edge/litert) or ONNX Runtime
(https://onnxruntime.ai), and no TensorFlow or Keras. This module imports
only NumPy and the standard library at the top, and its command line refuses
to run where TensorFlow can be imported:

    python -m keras_cv_course.edge --artifact model.tflite --format tflite \
        --inputs test.npz --threads 1 --xnnpack off --runs 50 --warmup 5 --out result.npz

Each runner is a callable ``runner({input name: array}) -> {output name: array}``
that takes and returns float arrays. Artifacts with integer inputs and outputs
(full-integer ``int8-io`` models) are fed quantized values,
``q = round(x / scale) + zero_point``, and their outputs are dequantized,
``x = (q - zero_point) * scale`` (Jacob et al., "Quantization and Training of
Neural Networks for Efficient Integer-Arithmetic-Only Inference", CVPR 2018,
arXiv:1712.05877).

Latency is measured at batch 1 with ``time.perf_counter`` after warm-up runs:
the median and the 90th percentile, as MLPerf Inference reports single-stream
latency (Reddi et al., ISCA 2020, arXiv:1911.02549). XNNPACK
(https://github.com/google/XNNPACK) is LiteRT's default CPU delegate; turning it
off leaves LiteRT's built-in kernels.
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

from keras_cv_course.errors import KCCError

SIGNATURE = "serve"
QUANTIZED_DTYPES = ("int8", "uint8", "int16")
BLOCKED_MODULES = ("tensorflow", "tf_keras", "keras")
"""What a device lacks; the command line makes these unimportable before it runs."""


class EdgeRunner:
    """An opened artifact: call it with ``{input name: float array}``.

    Attributes:
        input_names: the signature's input names.
        output_names: its output names.
        io_quantization: ``{tensor name: {"scale", "zero_point", "dtype"}}``
            for the integer inputs and outputs that are (de)quantized.
        delegated_nodes: nodes handed to a delegate (XNNPACK); 0 when off.
            LiteRT applies its default delegate at the first call, so read
            this after one.
    """

    def __init__(self, call, input_names, output_names, io_quantization, count_delegated=None,
                 batch_size=None):
        self._call = call
        self._count_delegated = count_delegated
        self.batch_size = batch_size  # an artifact exported at a static batch (a detector's 1)
        self.input_names = tuple(input_names)
        self.output_names = tuple(output_names)
        self.io_quantization = io_quantization

    @property
    def delegated_nodes(self):
        return self._count_delegated() if self._count_delegated else 0

    def __call__(self, inputs):
        if not isinstance(inputs, dict):
            if len(self.input_names) != 1:
                raise KCCError(f"this model takes inputs {list(self.input_names)}; pass a dict")
            inputs = {self.input_names[0]: inputs}
        missing = [name for name in self.input_names if name not in inputs]
        if missing:
            raise KCCError(f"missing inputs {missing}; the model takes {list(self.input_names)}")
        feed = {name: to_artifact(inputs[name], self.io_quantization.get(name))
                for name in self.input_names}
        rows = len(next(iter(feed.values())))
        if self.batch_size and rows != self.batch_size:
            outputs = in_slices(self._call, feed, self.batch_size)
        else:
            outputs = self._call(feed)
        return {name: from_artifact(outputs[name], self.io_quantization.get(name))
                for name in self.output_names}


def in_slices(call, named, size):
    """``call`` on consecutive slices of ``size`` examples of ``{name: array}``; the
    outputs (``{name: array}``, NumPy or tensors) concatenated as NumPy."""
    total = len(next(iter(named.values())))
    parts = [call({name: value[start:start + size] for name, value in named.items()})
             for start in range(0, total, size)]
    return {key: np.concatenate([np.asarray(part[key]) for part in parts]) for key in parts[0]}


def _static_batch(dimension):
    """The batch size of an input shape's first dimension when it is fixed, else ``None``."""
    return int(dimension) if isinstance(dimension, (int, np.integer)) and dimension > 0 else None


def open_tflite(path, threads=None, xnnpack=True):
    """Opens a ``.tflite`` file with the LiteRT interpreter and its ``serve`` signature.

    Args:
        path: the ``.tflite`` file.
        threads: CPU threads for the kernels (and XNNPACK); ``None`` leaves
            LiteRT's default.
        xnnpack: apply the default XNNPACK delegate; ``False`` runs the
            built-in kernels only.

    Returns:
        An ``EdgeRunner``.

    Raises:
        KCCError: the file does not load or has no ``serve`` signature.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if xnnpack else \
        OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interpreter = Interpreter(model_path=str(path), num_threads=threads,
                                  experimental_op_resolver_type=resolver)
        runner = interpreter.get_signature_runner(SIGNATURE)
    except Exception as error:  # noqa: BLE001 - LiteRT raises ValueError and RuntimeError
        raise KCCError(f"cannot open LiteRT model {str(path)!r}: {_first_line(error)}") from None
    inputs, outputs = runner.get_input_details(), runner.get_output_details()
    quantization = {name: params for details in (inputs, outputs)
                    for name, detail in details.items()
                    if (params := tflite_quantization(detail)) is not None}

    def count_delegated():
        return sum(op["op_name"] == "DELEGATE" for op in interpreter._get_ops_details())

    signature = interpreter.get_signature_list()[SIGNATURE]["inputs"]
    batch = _static_batch(inputs[signature[0]]["shape_signature"][0]) if signature else None
    return EdgeRunner(lambda feed: runner(**feed), inputs, outputs, quantization,
                      count_delegated, batch_size=batch)


def open_onnx(path, threads=None, io_quantization=None):
    """Opens a ``.onnx`` file with ONNX Runtime on the CPU.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads; ``None`` leaves ONNX Runtime's default
            (one per physical core).
        io_quantization: ``{tensor name: {"scale", "zero_point", "dtype"}}``
            for integer inputs and outputs (ONNX keeps no such record on
            its graph inputs); usually from the export's manifest.

    Returns:
        An ``EdgeRunner``.

    Raises:
        KCCError: the file does not load.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    try:
        session = onnxruntime.InferenceSession(str(path), sess_options=options,
                                               providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - onnxruntime raises its own types
        raise KCCError(f"cannot open ONNX model {str(path)!r}: {_first_line(error)}") from None
    input_names = [item.name for item in session.get_inputs()]
    output_names = [item.name for item in session.get_outputs()]

    def call(feed):
        return dict(zip(output_names, session.run(output_names, feed)))

    return EdgeRunner(call, input_names, output_names, dict(io_quantization or {}),
                      batch_size=_static_batch(session.get_inputs()[0].shape[0]))


def open_artifact(path, fmt, threads=None, xnnpack=True, io_quantization=None):
    """``open_tflite`` or ``open_onnx`` by format name (``"tflite"`` or ``"onnx"``)."""
    if fmt == "tflite":
        return open_tflite(path, threads, xnnpack)
    if fmt == "onnx":
        return open_onnx(path, threads, io_quantization)
    raise KCCError(f"edge runtimes run 'tflite' or 'onnx' artifacts, got {fmt!r}")


def tflite_quantization(detail):
    """``{"scale", "zero_point", "dtype"}`` of a quantized integer tensor, else ``None``."""
    dtype = np.dtype(detail["dtype"]).name
    scales = detail["quantization_parameters"]["scales"]
    if dtype not in QUANTIZED_DTYPES or len(scales) != 1 or scales[0] == 0:
        return None
    zero_point = int(detail["quantization_parameters"]["zero_points"][0])
    return {"scale": float(scales[0]), "zero_point": zero_point, "dtype": dtype}


def quantize(values, params):
    """Float values -> the integers a quantized input expects (rounded and clipped)."""
    dtype = np.dtype(params["dtype"])
    scaled = np.round(np.asarray(values, "float32") / params["scale"]) + params["zero_point"]
    limits = np.iinfo(dtype)
    return np.clip(scaled, limits.min, limits.max).astype(dtype)


def dequantize(values, params):
    """Integers of a quantized output -> float32 values."""
    return ((np.asarray(values, "float32") - params["zero_point"]) * params["scale"]) \
        .astype("float32")


def to_artifact(value, params):
    """A caller's value as the artifact takes it: floats quantized where ``params`` say so."""
    value = np.asarray(value)
    if params is not None and np.dtype(value.dtype).kind == "f":
        value = quantize(value, params)
    return np.ascontiguousarray(value)


def from_artifact(value, params):
    """An artifact's output as callers read it: quantized integers back to float32."""
    value = np.asarray(value)
    if params is not None and np.dtype(value.dtype).name == params["dtype"]:
        return dequantize(value, params)
    return value


def measure_latency(run_one, runs=50, warmup=5):
    """Times ``run_one()``: ``warmup`` untimed calls, then ``runs`` timed ones.

    Args:
        run_one: a callable with no arguments, e.g. one batch-1 inference.
        runs: timed calls (at least 1).
        warmup: untimed calls first (allocation, caches, thread start-up).

    Returns:
        ``{"median_ms": float, "p90_ms": float}``.
    """
    if runs < 1 or warmup < 0:
        raise KCCError(f"runs must be >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    for _ in range(warmup):
        run_one()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run_one()
        times.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": statistics.median(times),
            "p90_ms": float(np.percentile(times, 90))}


def evaluate_outputs(runner, inputs, limit=None):
    """Runs ``runner`` over many examples one at a time; returns the stacked outputs.

    Args:
        runner: an ``EdgeRunner`` (or any ``{name: array} -> {name: array}``).
        inputs: an array (one input) or ``{input name: array}`` of equal lengths.
        limit: use at most this many examples.

    Returns:
        ``{output name: array}`` with one row per example.
    """
    named = inputs if isinstance(inputs, dict) else {runner.input_names[0]: inputs}
    total = len(next(iter(named.values())))
    total = total if limit is None else min(total, int(limit))
    if total == 0:
        raise KCCError("no examples to evaluate")
    parts = [runner({name: value[index:index + 1] for name, value in named.items()})
             for index in range(total)]
    return {name: np.concatenate([np.asarray(part[name]).reshape(1, *np.shape(part[name])[1:])
                                  for part in parts])
            for name in parts[0]}


def first_example(inputs):
    """The batch-1 slice ``[0:1]`` of every input."""
    return {name: value[:1] for name, value in inputs.items()}


# -- the device process -------------------------------------------------------------------


def block_tensorflow():
    """Makes TensorFlow and Keras unimportable in this process, as on a device.

    Returns:
        The blocked modules that were already imported; they cannot be
        unloaded, so then nothing is blocked and the caller should refuse
        to run.
    """
    loaded = [name for name in BLOCKED_MODULES if sys.modules.get(name) is not None]
    if not loaded:
        for name in BLOCKED_MODULES:
            sys.modules.setdefault(name, None)
    return loaded


def tensorflow_modules():
    """The TensorFlow and Keras modules loaded in this process (none on a device)."""
    return sorted(name for name, module in sys.modules.items()
                  if module is not None and name.split(".")[0] in BLOCKED_MODULES)


def tensorflow_importable():
    """True when ``import tensorflow`` succeeds here."""
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


def run_device(artifact, fmt, inputs, threads=None, xnnpack=True, runs=50, warmup=5,
               io_quantization=None):
    """Opens an artifact, times batch-1 inference on the first example and runs all examples.

    Args:
        artifact: the ``.tflite`` or ``.onnx`` file.
        fmt: ``"tflite"`` or ``"onnx"``.
        inputs: ``{input name: array}``, float test inputs.
        threads: CPU threads, or ``None`` for the runtime's default.
        xnnpack: LiteRT's XNNPACK delegate on or off (ignored for ONNX).
        runs: timed batch-1 calls.
        warmup: untimed calls before them.
        io_quantization: integer I/O parameters for ONNX (see ``open_onnx``).

    Returns:
        ``(meta, outputs)``: the latency and run facts, and ``{name: array}``.
    """
    runner = open_artifact(artifact, fmt, threads, xnnpack, io_quantization)
    example = first_example(inputs)
    latency = measure_latency(lambda: runner(example), runs, warmup)
    outputs = evaluate_outputs(runner, inputs)
    meta = {**latency, "format": fmt, "threads": threads,
            "xnnpack": bool(xnnpack) if fmt == "tflite" else None,
            "delegated_nodes": runner.delegated_nodes, "runs": runs, "warmup": warmup,
            "examples": len(next(iter(outputs.values()))),
            "io_quantization": runner.io_quantization}
    return meta, outputs


def write_result(path, meta, outputs):
    """Writes a device result: ``.json`` (outputs as lists) or ``.npz`` (arrays + ``meta``)."""
    temporary = f"{path}.tmp-{os.getpid()}{os.path.splitext(path)[1]}"
    if path.endswith(".json"):
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump({**meta, "outputs": {key: value.tolist() for key, value in outputs.items()},
                       "output_dtypes": {key: value.dtype.name for key, value in outputs.items()}},
                      handle)
    else:
        np.savez(temporary, meta=np.array(json.dumps(meta)),
                 **{f"outputs/{key}": value for key, value in outputs.items()})
    os.replace(temporary, path)


def read_result(path):
    """Reads ``write_result``'s file back: ``(meta, outputs)``."""
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as handle:
            meta = json.load(handle)
        dtypes = meta.pop("output_dtypes")
        return meta, {key: np.asarray(value, dtypes[key])
                      for key, value in meta.pop("outputs").items()}
    with np.load(path) as data:
        meta = json.loads(str(data["meta"]))
        outputs = {key.split("/", 1)[1]: data[key] for key in data.files
                   if key.startswith("outputs/")}
    return meta, outputs


def device_command(artifact, fmt, inputs_file, out, threads=None, xnnpack=True, runs=50,
                   warmup=5, io_quantization_file=None):
    """The argv that runs ``main`` in a fresh Python process (this interpreter)."""
    command = [sys.executable, "-m", "keras_cv_course.edge", "--artifact", str(artifact),
               "--format", fmt, "--inputs", str(inputs_file), "--out", str(out),
               "--xnnpack", "on" if xnnpack else "off", "--runs", str(runs),
               "--warmup", str(warmup)]
    if threads is not None:
        command += ["--threads", str(threads)]
    if io_quantization_file is not None:
        command += ["--io-quantization", str(io_quantization_file)]
    return command


def device_environment():
    """The child's environment: this one, with this package importable."""
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return env


def _parse(argv):
    parser = argparse.ArgumentParser(
        prog="python -m keras_cv_course.edge",
        description="Run a TFLite or ONNX artifact without TensorFlow; time it and save outputs.")
    parser.add_argument("--artifact", required=True, help="the .tflite or .onnx file")
    parser.add_argument("--format", required=True, choices=("tflite", "onnx"))
    parser.add_argument("--inputs", required=True,
                        help=".npz of float inputs, one array per input name")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: the runtime's)")
    parser.add_argument("--xnnpack", choices=("on", "off"), default="on",
                        help="LiteRT's XNNPACK delegate")
    parser.add_argument("--runs", type=int, default=50, help="timed batch-1 runs")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs first")
    parser.add_argument("--io-quantization", default=None,
                        help="JSON {name: {scale, zero_point, dtype}} for ONNX integer I/O")
    parser.add_argument("--out", required=True, help="result file, .npz or .json")
    return parser.parse_args(argv)


def main(argv=None):
    """The device process: refuses to run where TensorFlow is importable.

    Returns:
        The exit status: 0, 1 for a bad artifact or input (one line on
        stderr), 3 when TensorFlow is loaded or importable.
    """
    args = _parse(argv)
    already = block_tensorflow()
    if already or tensorflow_importable():
        print(f"error: TensorFlow is importable here ({already or 'import works'}); "
              "an edge run must be TensorFlow-free", file=sys.stderr)
        return 3
    io_quantization = None
    if args.io_quantization:
        with open(args.io_quantization, encoding="utf-8") as handle:
            io_quantization = json.load(handle)
    try:
        with np.load(args.inputs) as data:
            inputs = {key: data[key] for key in data.files}
        meta, outputs = run_device(args.artifact, args.format, inputs, args.threads,
                                   args.xnnpack == "on", args.runs, args.warmup, io_quantization)
    except (KCCError, OSError) as error:
        print(f"error: {_first_line(error)}", file=sys.stderr)
        return 1
    meta.update(tensorflow_importable=tensorflow_importable(),
                tensorflow_modules=tensorflow_modules(), python=sys.version.split()[0])
    write_result(args.out, meta, outputs)
    return 0


def _first_line(error):
    return (str(error).splitlines() or [type(error).__name__])[0][:200]


if __name__ == "__main__":
    sys.exit(main())
