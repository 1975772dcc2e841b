"""Running each exported artifact the way a deployer would.

Every runner is a callable ``runner(batch) -> {output_name: array}``, so
verification and evaluation treat SavedModel, TFLite and ONNX alike.
"""

import numpy as np

from keras_cv_course.errors import KCCError

SIGNATURE = "serve"


class SavedModelRunner:
    """Calls the ``serve`` signature of a SavedModel with TensorFlow."""

    def __init__(self, path):
        import tensorflow as tf

        self.loaded = tf.saved_model.load(path)
        if SIGNATURE not in self.loaded.signatures:
            raise KCCError(f"SavedModel {path!r} has no {SIGNATURE!r} signature")
        self.function = self.loaded.signatures[SIGNATURE]
        self.input_name = list(self.function.structured_input_signature[1])[0]

    def __call__(self, batch):
        outputs = self.function(**{self.input_name: batch})
        return {name: value.numpy() for name, value in outputs.items()}

    def op_counts(self):
        graph = self.function.graph.as_graph_def()
        ops = [node.op for node in graph.node]
        for function in graph.library.function:
            ops += [node.op for node in function.node_def]
        return _count(ops)


class TFLiteRunner:
    """Runs a ``.tflite`` file with the LiteRT interpreter (``ai_edge_litert``)."""

    def __init__(self, path):
        from ai_edge_litert.interpreter import Interpreter

        self.path = path
        self.interpreter = Interpreter(model_path=path)
        self.runner = self.interpreter.get_signature_runner(SIGNATURE)
        self.input_name = list(self.runner.get_input_details())[0]

    def __call__(self, batch):
        outputs = self.runner(**{self.input_name: np.ascontiguousarray(batch)})
        return {name: np.asarray(value) for name, value in outputs.items()}

    def op_counts(self):
        """Op counts of the graph itself, before any delegate replaces nodes."""
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        plain = Interpreter(
            model_path=self.path,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        return _count(op["op_name"] for op in plain._get_ops_details())


class ONNXRunner:
    """Runs a ``.onnx`` file with onnxruntime on the CPU."""

    def __init__(self, path):
        import onnxruntime

        self.path = path
        self.session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [output.name for output in self.session.get_outputs()]

    def __call__(self, batch):
        values = self.session.run(None, {self.input_name: batch})
        return dict(zip(self.output_names, values))

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


def run_in_batches(runner, images, batch_size=64):
    """Runs a runner over many images; returns the concatenated outputs."""
    parts = [runner(images[start:start + batch_size])
             for start in range(0, len(images), batch_size)]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def _count(ops):
    counts = {}
    for op in ops:
        counts[op] = counts.get(op, 0) + 1
    return dict(sorted(counts.items()))
