"""The three converters. SavedModel is the one intermediate form.

1. ``write_savedmodel``: a Keras model becomes a SavedModel whose ``serve``
   signature takes the model's named inputs (any number, dtypes and ranks)
   and returns a dictionary of named outputs (TFLite would otherwise return
   list outputs in reverse order, and ONNX would name them ``Identity:N``).
2. ``savedmodel_to_tflite``: ``TFLiteConverter.from_saved_model`` with the
   built-in op set only. Python's LiteRT interpreter cannot run Flex ops, so
   they are allowed only when asked for.
3. ``savedmodel_to_onnx``: tf2onnx over the same SavedModel, keeping the
   signature's input and output names.
"""

from keras_cv_course.errors import KCCError

ONNX_OPSET = 17


def output_dict(outputs, output_names):
    """Names a model's outputs: dict outputs keep their keys."""
    if isinstance(outputs, dict):
        return dict(outputs)
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    return dict(zip(output_names, outputs))


def model_output_names(model):
    """Output names: the dict keys, or the output layers' names."""
    if isinstance(model.output, dict):
        return sorted(model.output)
    return [tensor._keras_history.operation.name for tensor in model.outputs]


def write_savedmodel(model, path, serve, input_specs, batch_size=None):
    """Writes a SavedModel whose ``serve`` signature is ``serve``.

    Args:
        model: the Keras model whose variables the signature uses.
        path: the SavedModel folder to write.
        serve: ``{input name: tensor} -> {output name: tensor}``.
        input_specs: the inputs (``specs.TensorSpec``); the signature takes
            one tensor per spec, named as the spec.
        batch_size: the signature's batch size; ``None`` leaves it free
            (``Task.serving_batch_size``).
    """
    import keras
    import tensorflow as tf

    signature = {spec.name: tf.TensorSpec((batch_size, *spec.shape), spec.dtype, name=spec.name)
                 for spec in input_specs}
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", serve, input_signature=[signature])
    archive.write_out(path, verbose=False)


def savedmodel_to_tflite(savedmodel_dir, path, allow_flex=False, configure=None):
    """Converts the SavedModel to a ``.tflite`` file.

    Args:
        savedmodel_dir: the SavedModel from ``write_savedmodel``.
        path: where to write the ``.tflite`` file.
        allow_flex: also allow TensorFlow (Flex) ops.
        configure: optional callable ``(converter) -> None`` that sets
            quantization options.

    Raises:
        KCCError: the graph needs ops outside the allowed op sets.
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(savedmodel_dir, signature_keys=["serve"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if allow_flex:
        converter.target_spec.supported_ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    if configure is not None:
        configure(converter)
    try:
        flatbuffer = converter.convert()
    except Exception as error:  # noqa: BLE001 - the converter raises ConverterError and others
        lines = [line for line in str(error).splitlines() if "error" in line.lower()]
        lines = lines or [str(error)]
        raise KCCError(f"TFLite conversion failed: {lines[0].strip()[:200]}") from None
    with open(path, "wb") as handle:
        handle.write(flatbuffer)


def allow_inlining(graph_def):
    """Lets tf2onnx inline functions that Keras marks "XLA only".

    Keras' TensorFlow backend runs a grouped convolution (``Conv2D(groups=g)``)
    inside a nested function marked ``_XlaMustCompile`` and ``_noinline``,
    because TensorFlow's CPU kernel has no grouped convolution. tf2onnx does
    not inline such a function and leaves an unconvertible
    ``StatefulPartitionedCall``. Without the marks the function inlines and
    the convolution becomes one grouped ONNX ``Conv``.
    """
    marks = ("_XlaMustCompile", "_noinline")
    for function in graph_def.library.function:
        for key in [key for key in function.attr if key in marks]:
            del function.attr[key]
    for node in graph_def.node:
        if "_XlaMustCompile" in node.attr:
            del node.attr["_XlaMustCompile"]


def savedmodel_to_onnx(savedmodel_dir, path, opset=ONNX_OPSET):
    """Converts the SavedModel to ONNX and checks it with ``onnx.checker``.

    Raises:
        KCCError: tf2onnx cannot convert an op, or the file fails the check.
    """
    import onnx
    from tf2onnx import convert, tf_loader

    graph_def, inputs, outputs, renames = tf_loader.from_saved_model(
        savedmodel_dir, None, None, tag="serve", signatures=["serve"],
        return_tensors_to_rename=True)
    allow_inlining(graph_def)
    try:
        convert.from_graph_def(graph_def, input_names=inputs, output_names=outputs, opset=opset,
                               tensors_to_rename=renames, output_path=path)
        onnx.checker.check_model(onnx.load(path), full_check=True)
    except Exception as error:  # noqa: BLE001 - tf2onnx and onnx raise many types
        raise KCCError(f"ONNX conversion failed: {str(error).splitlines()[0][:200]}") from None
