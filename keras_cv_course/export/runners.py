"""Running each exported artifact the way a deployer would.

Every runner is a callable ``runner(inputs) -> {output_name: array}``, where
``inputs`` is ``{input name: array}`` (or one array for a one-input model),
so verification and evaluation treat SavedModel, TFLite and ONNX alike. Each
runner also reports its ``input_names``, ``input_dtypes()`` and
``op_counts()``.
"""

import numpy as np

from keras_cv_course import edge
from keras_cv_course.edge import in_slices
from keras_cv_course.errors import KCCError

SIGNATURE = "serve"


class Runner:
    """What every runner shares: naming the inputs of a call, and feeding an artifact
    exported at a static batch size (a detector's, at 1) one slice at a time."""

    input_names = ()
    batch_size = None

    def __call__(self, inputs):
        named = self.named(inputs)
        if self.batch_size is None or len(next(iter(named.values()))) == self.batch_size:
            return self.run(named)
        return in_slices(self.run, named, self.batch_size)

    def run(self, named):
        """Runs one batch of the artifact's size: ``{input name: array}`` -> outputs."""
        raise NotImplementedError

    def named(self, inputs):
        """An array (one-input models) or a dict -> ``{input name: array}``."""
        if isinstance(inputs, dict):
            return {name: np.ascontiguousarray(value) for name, value in inputs.items()}
        if len(self.input_names) != 1:
            raise KCCError(f"this model takes inputs {list(self.input_names)}; pass a dict")
        return {self.input_names[0]: np.ascontiguousarray(inputs)}


class SavedModelRunner(Runner):
    """Calls the ``serve`` signature of a SavedModel with TensorFlow."""

    def __init__(self, path):
        import tensorflow as tf

        self.loaded = tf.saved_model.load(path)
        if SIGNATURE not in self.loaded.signatures:
            raise KCCError(f"SavedModel {path!r} has no {SIGNATURE!r} signature")
        self.function = self.loaded.signatures[SIGNATURE]
        self.input_specs = self.function.structured_input_signature[1]
        self.input_names = tuple(self.input_specs)
        self.batch_size = next(iter(self.input_specs.values())).shape[0]

    def run(self, named):
        outputs = self.function(**named)
        return {name: value.numpy() for name, value in outputs.items()}

    def input_dtypes(self):
        return {name: spec.dtype.name for name, spec in self.input_specs.items()}

    def op_counts(self):
        graph = self.function.graph.as_graph_def()
        ops = [node.op for node in graph.node]
        for function in graph.library.function:
            ops += [node.op for node in function.node_def]
        return _count(ops)


class TFLiteRunner(Runner):
    """Runs a ``.tflite`` file with the LiteRT interpreter (``ai_edge_litert``)."""

    def __init__(self, path):
        from ai_edge_litert.interpreter import Interpreter

        self.path = path
        self.interpreter = Interpreter(model_path=path)
        self.runner = self.interpreter.get_signature_runner(SIGNATURE)
        self.input_details = self.runner.get_input_details()
        self.input_names = tuple(self.input_details)
        self.input_params = {name: edge.tflite_quantization(detail)
                             for name, detail in self.input_details.items()}
        self.output_params = {name: edge.tflite_quantization(detail)
                              for name, detail in self.runner.get_output_details().items()}
        first = next(iter(self.input_details.values()))
        static = int(first.get("shape_signature", first["shape"])[0])
        self.batch_size = static if static > 0 else None

    def run(self, named):
        """Runs the model; float inputs of an int8 (or uint8) input are quantized with its
        scale and zero point, and int8 outputs are dequantized, so callers see floats."""
        named = {name: edge.to_artifact(value, self.input_params[name])
                 for name, value in named.items()}
        outputs = self.runner(**named)
        return {name: edge.from_artifact(value, self.output_params[name])
                for name, value in outputs.items()}

    def input_dtypes(self):
        """The dtypes callers pass: float32 where the file quantizes its own input."""
        return {name: "float32" if self.input_params[name] else np.dtype(detail["dtype"]).name
                for name, detail in self.input_details.items()}

    def op_counts(self):
        """Op counts of the graph itself, before any delegate replaces nodes."""
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        plain = Interpreter(
            model_path=self.path,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        return _count(op["op_name"] for op in plain._get_ops_details())


class ONNXRunner(Runner):
    """Runs a ``.onnx`` file with onnxruntime on the CPU."""

    # onnxruntime names element types as "tensor(float)"; NumPy names them "float32".
    ONNX_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64",
                  "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(uint8)": "uint8",
                  "tensor(int8)": "int8", "tensor(bool)": "bool", "tensor(float16)": "float16"}

    def __init__(self, path):
        import onnxruntime

        self.path = path
        self.session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.input_names = tuple(item.name for item in self.session.get_inputs())
        self.output_names = [output.name for output in self.session.get_outputs()]
        first = self.session.get_inputs()[0].shape[0]
        self.batch_size = first if isinstance(first, int) and first > 0 else None

    def run(self, named):
        values = self.session.run(None, named)
        return dict(zip(self.output_names, values))

    def input_dtypes(self):
        return {item.name: self.ONNX_TYPES.get(item.type, item.type)
                for item in self.session.get_inputs()}

    def op_counts(self):
        import onnx

        return _count(node.op_type for node in onnx.load(self.path).graph.node)


RUNNERS = {"savedmodel": SavedModelRunner, "tflite": TFLiteRunner, "onnx": ONNXRunner}


def load_runner(fmt, path):
    """Opens an artifact; a file that does not load is a one-line error."""
    try:
        return RUNNERS[fmt](path)
    except KCCError:
        raise
    except Exception as error:  # noqa: BLE001 - each runtime raises its own types
        reason = (str(error).splitlines() or [""])[0][:160]
        raise KCCError(f"cannot load {fmt} artifact {path!r}: {reason}") from None


def run_in_batches(runner, inputs, batch_size=64):
    """Runs a runner over many examples; returns the concatenated outputs.

    Args:
        runner: any runner.
        inputs: an array, or ``{input name: array}`` with equal lengths.
        batch_size: examples per call.
    """
    if isinstance(inputs, dict):
        return in_slices(runner, inputs, batch_size)
    return in_slices(lambda part: runner(part[None]), {None: inputs}, batch_size)


def _count(ops):
    counts = {}
    for op in ops:
        counts[op] = counts.get(op, 0) + 1
    return dict(sorted(counts.items()))
