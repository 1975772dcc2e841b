"""The gate of quantized artifacts: the task's metric on held-out data.

A quantized artifact cannot match Keras to 1e-4, and need not: what a
deployer needs is the same answers. So an int8, 16x8, dynamic-range or
trained (QAT, pruned, clustered) artifact runs over the whole held-out
split, the task scores its outputs (``Task.score``) as it scores Keras', and
the task's ``QuantizedRule`` decides: the metric may drop by at most so
much, and the artifact must agree with Keras on at least so many decisions.
An artifact that fails is not written, and the error says by how much it
missed.
"""

import dataclasses

import keras

from keras_cv_course.errors import KCCError
from keras_cv_course.export.runners import in_slices, run_in_batches

GATED_MODES = ("dynamic", "int8", "int8-io", "16x8", "qat", "prune", "cluster")
"""Modes judged by the task metric; fp32 and fp16 are judged by parity with Keras."""
FP16_TOLERANCE = 1e-2


@dataclasses.dataclass
class HeldOut:
    """Held-out examples, Keras' serving outputs on them, and their scores.

    Attributes:
        inputs: ``{input name: array}``.
        targets: the targets, as ``Task.score`` takes them.
        keras_outputs: ``{output name: array}`` of the serving function.
        keras_scores: ``Task.score`` of ``keras_outputs``.
    """

    inputs: dict
    targets: object
    keras_outputs: dict
    keras_scores: dict


def held_out(task, serve, inputs, targets, batch_size=64):
    """Runs the Keras serving function over held-out data and scores it."""
    def numpy_outputs(batch):
        return {key: keras.ops.convert_to_numpy(value) for key, value in serve(batch).items()}

    outputs = in_slices(numpy_outputs, inputs, batch_size)
    return HeldOut(inputs, targets, outputs, task.score(outputs, targets))


def split_arrays(bundle, split, limit=None):
    """``(inputs, targets)`` of a bundle's split as NumPy, at most ``limit`` examples."""
    import tensorflow as tf

    if bundle.arrays is not None:
        inputs, targets = bundle.arrays[split]
        return tf.nest.map_structure(lambda array: None if array is None else array[:limit],
                                     (inputs, targets))  # a task without targets has None
    dataset = getattr(bundle, split)
    dataset = dataset if limit is None else dataset.take(limit)
    batch = next(iter(dataset.batch(1 << 20)))
    return tf.nest.map_structure(lambda tensor: tensor.numpy(), batch)


def judge(fmt, mode, runner, task, data):
    """The task's verdict on one quantized artifact; returns the manifest's ``gate`` entry.

    Raises:
        KCCError: the artifact misses the rule, saying by how much.
    """
    outputs = run_in_batches(runner, data.inputs)
    scores = task.score(outputs, data.targets)
    agreement = task.agreement(outputs, data.keras_outputs)
    verdict = task.quantized_rule().judge(data.keras_scores, scores, agreement)
    if not verdict["passed"]:
        raise KCCError(
            f"{fmt} {mode} artifact misses the gate ({verdict['rule']}): {verdict['metric']} "
            f"{verdict['artifact']:.4f} against Keras' {verdict['keras']:.4f} (drop "
            f"{verdict['drop']:.4f}), agreement {agreement:.4f}; it was not written")
    return {**verdict, "examples": len(next(iter(data.inputs.values())))}
