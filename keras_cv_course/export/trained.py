"""Small models by training: QAT, magnitude pruning and weight clustering.

Each method fine-tunes the tf_keras twin of a Keras 3 model (``export.twin``)
with the TensorFlow Model Optimization Toolkit and converts the result with
``tf.lite.TFLiteConverter.from_keras_model``, built-in ops only:

* ``quantization_aware``: fake-quantized training, so that the weights learn
  to live with 8-bit rounding (Jacob et al., "Quantization and Training of
  Neural Networks for Efficient Integer-Arithmetic-Only Inference", CVPR
  2018, arXiv:1712.05877); converted to an int8 model with float I/O.
* ``magnitude_pruning``: the smallest weights are zeroed, the sparsity rising
  along a polynomial schedule ``s_t = s_f (1 - (1 - t / T)^3)`` (Zhu and
  Gupta, "To prune, or not to prune: exploring the efficacy of pruning for
  model compression", 2017, arXiv:1710.01878). Zeros do not shrink a dense
  .tflite file; they shrink its gzip, so the gzip size is reported.
* ``weight_clustering``: each kernel keeps only ``clusters`` distinct values
  (Han, Mao and Dally, "Deep Compression", ICLR 2016, arXiv:1510.00149),
  which also compresses well.

Every function returns ``(tflite_bytes, info)``; the caller gates the bytes
on the task metric. A layer that tfmot cannot wrap raises a one-line
``KCCError`` naming it.
"""

import gzip
import re
import tempfile

import numpy as np

from keras_cv_course.errors import KCCError
from keras_cv_course.export.runners import SIGNATURE
from keras_cv_course.export.twin import assert_twin_equal, to_tf_keras


def quantization_aware(model, train_data, epochs=1, learning_rate=1e-5,
                       representative_data=None, loss="sparse_categorical_crossentropy",
                       metrics=("accuracy",), signature_key=SIGNATURE):
    """Quantization-aware fine-tuning, converted to an int8 TFLite model with float I/O.

    Args:
        model: a Keras 3 functional model.
        train_data: a ``tf.data.Dataset`` of ``(inputs, targets)`` batches.
        epochs: fine-tuning epochs.
        learning_rate: Adam's learning rate.
        representative_data: optional input samples (an array, or a dict by
            input name, first axis the samples). They set every activation
            range before fine-tuning (``activation_ranges_from_data``; without
            them the training data do) and calibrate the tensors the
            fake-quantizers do not cover.
        loss: a tf_keras loss name or callable.
        metrics: tf_keras metric names reported in the history.
        signature_key: the .tflite signature's name (the export gate runs
            ``serve``; ``"serving_default"`` is plain ``from_keras_model``).

    Returns:
        ``(tflite_bytes, info)``; ``info["float_layers"]`` names the weightless
        layers tfmot's registry lacks (``Rescaling``, an SE ``Multiply``),
        which train unquantized: pass ``representative_data`` so that the
        converter calibrates their outputs too.

    Raises:
        KCCError: a layer with weights has no 8-bit rule (the ViT's
            ``ClassToken``, ``MultiHeadAttention``), or tfmot cannot place
            one (a ``BatchNormalization`` after an ``Add``).

    Example:
        >>> tflite, info = quantization_aware(model, pipeline(bundle.train, 64, training=True))
    """
    tfmot = _tfmot()
    twin, twin_error = _twin(model, train_data)
    registry = _quantize_registry()
    _refuse_unsupported(twin, lambda layer: registry.supports(layer)
                        or not layer.weights, "quantization-aware training")
    no_op = _no_op_quantize_config()
    with tfmot.quantization.keras.quantize_scope({no_op.__name__: no_op}):
        quantized = _apply(_quantize_annotated, twin, "quantize_model", registry=registry,
                           no_op=no_op)
    calibration = train_data if representative_data is None else representative_data
    ranges = activation_ranges_from_data(quantized, calibration)
    history = _fine_tune(quantized, train_data, epochs, learning_rate, loss, metrics)
    tflite = _convert(_named_like(quantized, twin), optimize=True,
                      representative_data=representative_data, signature_key=signature_key)
    info = _info("qat", tflite, twin_error, history, epochs)
    info["float_layers"] = [layer.name for layer in twin.layers
                            if not registry.supports(layer) and not isinstance(
                                layer, _import_tf_keras().layers.InputLayer)]
    info["calibrated"] = representative_data is not None
    info["activation_ranges"] = ranges
    return tflite, info


def activation_ranges_from_data(quantized, samples, batch_size=32):
    """Sets every quantizer's range from ``samples`` before fine-tuning starts.

    tfmot's ``MovingAverageQuantizer`` starts each activation range at
    [-6, 6] and moves it by an exponential average with decay 0.999, so a
    short fine-tuning ends with ranges several times too wide and wastes most
    of the 256 levels. Jacob et al. (2018, section 3.1) collect the ranges
    from the data; this does it the way post-training calibration does, with
    the model in inference mode (batch normalization and dropout as served):

    * an activation range is set to its first batch's min and max, then grows
      to the min and max over all batches (widened to include 0);
    * the input's ``AllValuesQuantizer`` and the weights' ``LastValueQuantizer``
      run as in training, which sets their ranges from the values they see.

    The moving average then only tracks the changes fine-tuning makes.

    Args:
        quantized: a model returned by ``tfmot.quantization.keras.quantize_apply``.
        samples: input samples (an array, or a dict by input name, first axis
            the samples) or a ``tf.data.Dataset`` of ``(inputs, targets)`` batches.
        batch_size: the batch size when ``samples`` are arrays.

    Returns:
        ``{activation quantizer: [min, max]}`` as set, for the record.
    """
    quantizers = _tfmot().quantization.keras.quantizers
    ranges = {}

    def activation(quantizer, inputs, training, weights, **kwargs):
        name = weights["min_var"].name.rsplit("_min", 1)[0]
        seen = name in ranges
        outputs = _quant_ops().AllValuesQuantize(
            inputs, weights["min_var"], weights["max_var"], is_training=True,
            num_bits=quantizer.num_bits, narrow_range=quantizer.narrow_range,
            symmetric=quantizer.symmetric) if seen else _quant_ops().MovingAvgQuantize(
            inputs, weights["min_var"], weights["max_var"], ema_decay=0.0, is_training=True,
            num_bits=quantizer.num_bits, per_channel=quantizer.per_axis,
            symmetric=quantizer.symmetric, narrow_range=quantizer.narrow_range)
        ranges[name] = [weights["min_var"].numpy().tolist(), weights["max_var"].numpy().tolist()]
        return outputs

    def as_in_training(call):
        return lambda quantizer, inputs, training, weights, **kwargs: call(
            quantizer, inputs, True, weights, **kwargs)

    replaced = {quantizers.MovingAverageQuantizer: activation,
                quantizers.AllValuesQuantizer: as_in_training(
                    quantizers.AllValuesQuantizer.__call__),
                quantizers.LastValueQuantizer: as_in_training(
                    quantizers.LastValueQuantizer.__call__)}
    originals = {kind: kind.__call__ for kind in replaced}
    try:
        for kind, call in replaced.items():
            kind.__call__ = call
        for batch in _input_batches(quantized, samples, batch_size):
            quantized(batch, training=False)
    finally:
        for kind, call in originals.items():
            kind.__call__ = call
    return ranges


def _input_batches(model, samples, batch_size):
    """Input batches (a tensor, or a list in input order) from arrays or a dataset."""
    if hasattr(samples, "element_spec"):
        for inputs, _ in samples:
            yield inputs
        return
    names, samples, count = _by_input(model, samples)
    for start in range(0, count, batch_size):
        batch = [np.asarray(samples[name][start:start + batch_size], np.float32)
                 for name in names]
        yield batch if len(batch) > 1 else batch[0]


def _by_input(model, samples):
    """``(input names, {input name: samples}, sample count)`` of an array or a dict."""
    names = list(model.input_names)
    if not isinstance(samples, dict):
        samples = {names[0]: samples}
    return names, samples, len(next(iter(samples.values())))


def magnitude_pruning(model, train_data, target_sparsity=0.5, epochs=1, learning_rate=1e-4,
                      loss="sparse_categorical_crossentropy", metrics=("accuracy",),
                      dynamic_range=False, signature_key=SIGNATURE):
    """Magnitude pruning along a polynomial schedule, stripped and converted.

    Args:
        model: a Keras 3 functional model.
        train_data: a ``tf.data.Dataset`` of ``(inputs, targets)`` batches.
        target_sparsity: the final fraction of zero weights in each pruned kernel.
        epochs: fine-tuning epochs; the schedule ends on the last step.
        learning_rate: Adam's learning rate.
        loss: a tf_keras loss name or callable.
        metrics: tf_keras metric names reported in the history.
        dynamic_range: convert with dynamic-range int8 weights instead of fp32.
        signature_key: the .tflite signature's name (see ``quantization_aware``).

    Returns:
        ``(tflite_bytes, info)``; ``info["sparsity"]`` maps each kernel to its
        measured fraction of zeros, ``info["gzip_ratio"]`` compares the gzip
        size with that of the unpruned twin's conversion.
    """
    if not 0.0 <= target_sparsity < 1.0:
        raise KCCError(f"target_sparsity must be in [0, 1); received {target_sparsity}")
    tfmot = _tfmot()
    sparsity = tfmot.sparsity.keras
    twin, twin_error = _twin(model, train_data)
    baseline = _convert(twin, optimize=dynamic_range, signature_key=signature_key)
    registry = _prune_registry()
    _refuse_unsupported(twin, lambda layer: registry.supports(layer)
                        or not layer.trainable_weights, "magnitude pruning")
    steps = _steps_per_epoch(train_data) * epochs
    frequency = max(1, steps // 20)
    end_step = max(frequency, (steps - 1) // frequency * frequency)
    schedule = sparsity.PolynomialDecay(initial_sparsity=0.0, final_sparsity=target_sparsity,
                                        begin_step=0, end_step=end_step, frequency=frequency)
    pruned = _apply(_prune_weighted_layers, twin, "prune_low_magnitude",
                    registry=registry, schedule=schedule)
    history = _fine_tune(pruned, train_data, epochs, learning_rate, loss, metrics,
                         callbacks=[sparsity.UpdatePruningStep()])
    stripped = sparsity.strip_pruning(pruned)
    tflite = _convert(stripped, optimize=dynamic_range, signature_key=signature_key)
    info = _info("prune", tflite, twin_error, history, epochs, baseline=baseline)
    kernels = _kernels(stripped)
    info["sparsity"] = {name: float(np.mean(value == 0)) for name, value in kernels.items()}
    info["overall_sparsity"] = _overall(kernels, lambda value: np.sum(value == 0))
    info["target_sparsity"] = float(target_sparsity)
    return tflite, info


def weight_clustering(model, train_data, clusters=16, epochs=1, learning_rate=1e-4,
                      loss="sparse_categorical_crossentropy", metrics=("accuracy",),
                      init="kmeans++", dynamic_range=False, signature_key=SIGNATURE):
    """Weight clustering: each kernel keeps ``clusters`` shared values.

    Args:
        model: a Keras 3 functional model.
        train_data: a ``tf.data.Dataset`` of ``(inputs, targets)`` batches.
        clusters: the number of centroids per kernel.
        epochs: fine-tuning epochs (the centroids are trained).
        learning_rate: Adam's learning rate.
        loss: a tf_keras loss name or callable.
        metrics: tf_keras metric names reported in the history.
        init: centroid initialisation, ``"kmeans++"`` or ``"linear"``.
        dynamic_range: convert with dynamic-range int8 weights instead of fp32.
        signature_key: the .tflite signature's name (see ``quantization_aware``).

    Returns:
        ``(tflite_bytes, info)``; ``info["unique_values"]`` maps each kernel to
        its number of distinct values.
    """
    if clusters < 2:
        raise KCCError(f"clusters must be at least 2; received {clusters}")
    tfmot = _tfmot()
    clustering = tfmot.clustering.keras
    inits = {"kmeans++": clustering.CentroidInitialization.KMEANS_PLUS_PLUS,
             "linear": clustering.CentroidInitialization.LINEAR}
    if init not in inits:
        raise KCCError(f"init must be one of {sorted(inits)}; received {init!r}")
    twin, twin_error = _twin(model, train_data)
    baseline = _convert(twin, optimize=dynamic_range, signature_key=signature_key)
    _refuse_unsupported(twin, _cluster_registry().supports, "weight clustering")
    clustered = _apply(clustering.cluster_weights, twin, "cluster_weights",
                       number_of_clusters=int(clusters), cluster_centroids_init=inits[init])
    history = _fine_tune(clustered, train_data, epochs, learning_rate, loss, metrics)
    stripped = clustering.strip_clustering(clustered)
    tflite = _convert(stripped, optimize=dynamic_range, signature_key=signature_key)
    info = _info("cluster", tflite, twin_error, history, epochs, baseline=baseline)
    kernels = _kernels(stripped)
    info["unique_values"] = {name: int(np.unique(value).size) for name, value in kernels.items()}
    info["clusters"] = int(clusters)
    return tflite, info


def gzip_size(data):
    """Size in bytes of ``data`` compressed with gzip at its highest level."""
    return len(gzip.compress(data, compresslevel=9))


def _tfmot():
    import tensorflow_model_optimization as tfmot

    return tfmot


def _quantize_registry():
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry,
    )

    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
    tf_keras = _import_tf_keras()
    # Handled by the default 8-bit layout transforms (folding, activation fusing).
    handled = (tf_keras.layers.BatchNormalization, tf_keras.layers.Activation,
               tf_keras.layers.InputLayer)

    def supports(layer):
        return isinstance(layer, handled) or registry.supports(layer)

    return type("QuantizeSupport", (), {"supports": staticmethod(supports)})


def _prune_registry():
    from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry

    return prune_registry.PruneRegistry


def _cluster_registry():
    from tensorflow_model_optimization.python.core.clustering.keras import clustering_registry

    return clustering_registry.ClusteringRegistry


def _quant_ops():
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

    return quant_ops


def _import_tf_keras():
    import tf_keras

    return tf_keras


def _quantize_annotated(twin, registry, no_op):
    """``quantize_model``, but weightless layers outside the registry stay float.

    ``Rescaling`` and an SE block's ``Multiply`` have nothing to quantize, yet
    ``quantize_model`` refuses them. Annotated with a no-op config they run in
    float during fine-tuning; the converter calibrates their outputs on the
    representative data, when given.
    """
    tf_keras = _import_tf_keras()
    quantize = _tfmot().quantization.keras

    def annotate(layer):
        if registry.supports(layer):
            return quantize.quantize_annotate_layer(layer)
        return quantize.quantize_annotate_layer(layer, quantize_config=no_op())

    annotated = tf_keras.models.clone_model(twin, clone_function=annotate)
    return quantize.quantize_apply(annotated)


_NO_OP = []


def _no_op_quantize_config():
    """A ``QuantizeConfig`` that quantizes nothing (defined once, on first use)."""
    if _NO_OP:
        return _NO_OP[0]
    base = _tfmot().quantization.keras.QuantizeConfig

    class NoOpQuantizeConfig(base):
        """Leaves a weightless layer's output in float."""

        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return []

        def get_config(self):
            return {}

    _NO_OP.append(NoOpQuantizeConfig)
    return NoOpQuantizeConfig


def _prune_weighted_layers(twin, registry, schedule):
    """Wraps every layer that has weights in ``PruneLowMagnitude``; the others stay.

    ``prune_low_magnitude`` on a whole model also wraps weightless layers and
    refuses those its registry lacks (``Rescaling``, ``MaxPooling2D``), though
    they have nothing to prune.
    """
    tf_keras = _import_tf_keras()
    prune = _tfmot().sparsity.keras.prune_low_magnitude

    def wrap(layer):
        if layer.trainable_weights and registry.supports(layer):
            return prune(layer, pruning_schedule=schedule)
        return layer

    return tf_keras.models.clone_model(twin, clone_function=wrap)


def _refuse_unsupported(twin, supports, method):
    """Raises a one-line ``KCCError`` naming the first layer tfmot cannot wrap."""
    tf_keras = _import_tf_keras()
    for layer in twin.layers:
        if not isinstance(layer, tf_keras.layers.InputLayer) and not supports(layer):
            raise KCCError(f"{method} does not support layer {layer.name!r} "
                           f"({type(layer).__name__}); tfmot's registry has no rule for it")


def _apply(function, twin, what, **kwargs):
    """Calls a tfmot wrapper, turning its errors into one line."""
    try:
        wrapped = function(twin, **kwargs)
    except (ValueError, RuntimeError, TypeError) as error:
        found = re.search(r"Layer (\S+):<class '[\w.]*?(\w+)'> is not supported", str(error))
        if found:
            raise KCCError(f"tfmot {what} does not support layer {found.group(1)!r} "
                           f"({found.group(2)}) in this position") from None
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise KCCError(f"tfmot {what} refused model {twin.name!r}: {first_line}") from None
    if wrapped is None:
        raise KCCError(f"tfmot {what} returned None for model {twin.name!r}")
    return wrapped


def _twin(model, train_data):
    """The tf_keras twin, checked equal to ``model`` on one training batch."""
    twin = to_tf_keras(model)
    inputs, _ = next(iter(train_data.take(1)))
    error = assert_twin_equal(model, twin, inputs)
    return twin, error


def _fine_tune(model, train_data, epochs, learning_rate, loss, metrics, callbacks=()):
    tf_keras = _import_tf_keras()
    model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate), loss=_loss(loss),
                  metrics=list(metrics or []))
    history = model.fit(train_data, epochs=epochs, verbose=0, callbacks=list(callbacks))
    return {key: [float(value) for value in values] for key, values in history.history.items()}


def _loss(loss):
    if callable(loss) or isinstance(loss, dict):
        return loss
    tf_keras = _import_tf_keras()
    try:
        return tf_keras.losses.get(loss)
    except ValueError:
        raise KCCError(f"unknown tf_keras loss {loss!r}; pass a name such as "
                       "'sparse_categorical_crossentropy' or a callable") from None


def _steps_per_epoch(train_data):
    import tensorflow as tf

    steps = int(train_data.cardinality())
    if steps == tf.data.INFINITE_CARDINALITY:
        raise KCCError("train_data repeats forever; pass a finite dataset (one epoch)")
    if steps < 0:
        steps = sum(1 for _ in train_data)
    if steps == 0:
        raise KCCError("train_data is empty")
    return steps


def _convert(model, optimize, representative_data=None, signature_key=SIGNATURE):
    """Converts with built-in ops only; the signature is named ``signature_key``."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="kcc-trained-") as folder:
        converter = _converter(model, signature_key, folder)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if optimize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if representative_data is not None:
            converter.representative_dataset = _representative(model, representative_data)
        try:
            return converter.convert()
        except Exception as error:  # the converter raises ConverterError and friends
            first_line = str(error).strip().splitlines()[0] if str(error).strip() \
                else repr(error)
            raise KCCError(f"TFLite conversion of {model.name!r} failed: {first_line}") \
                from None


def _converter(model, signature_key, folder):
    """``TFLiteConverter.from_keras_model``, or a SavedModel for another signature name.

    ``from_keras_model`` always names the signature ``serving_default``; the
    export gate's LiteRT runner calls ``serve`` (``export.runners.SIGNATURE``),
    so for any other name the model is saved in ``folder`` with that
    signature, its outputs a dict by output name, and converted from there.
    """
    import tensorflow as tf

    if signature_key == tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY:
        return tf.lite.TFLiteConverter.from_keras_model(model)
    specs = [tf.TensorSpec(tensor.shape, tensor.dtype, name=name)
             for name, tensor in zip(model.input_names, model.inputs)]

    @tf.function(input_signature=specs)
    def serve(*inputs):
        outputs = model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)
        return dict(zip(model.output_names, tf.nest.flatten(outputs)))

    module = tf.Module()
    module.model = model
    tf.saved_model.save(module, folder, signatures={signature_key: serve.get_concrete_function()})
    return tf.lite.TFLiteConverter.from_saved_model(folder, signature_keys=[signature_key])


def _named_like(wrapped, twin):
    """``wrapped`` with ``twin``'s output names (tfmot prefixes them with ``quant_``).

    The TFLite signature names its outputs after the output layers, and the
    export gate checks those names, so each renamed output gets an identity
    layer carrying the original name.
    """
    if list(wrapped.output_names) == list(twin.output_names):
        return wrapped
    tf_keras = _import_tf_keras()
    outputs = [tf_keras.layers.Activation("linear", name=name)(tensor)
               for name, tensor in zip(twin.output_names, wrapped.outputs)]
    return tf_keras.Model(wrapped.inputs, outputs if len(outputs) > 1 else outputs[0],
                          name=twin.name)


def _representative(model, samples):
    """A representative-dataset generator yielding one sample at a time, in input order."""
    names, samples, count = _by_input(model, samples)

    def generate():
        for index in range(count):
            yield [np.asarray(samples[name][index:index + 1], np.float32) for name in names]

    return generate


def _kernels(model):
    """The model's kernels (dense, convolution, depthwise), by layer name."""
    kernels = {}
    for layer in model.layers:
        for weight in layer.weights:
            short = weight.name.split("/")[-1].split(":")[0]
            if short in ("kernel", "depthwise_kernel"):
                kernels[f"{layer.name}/{short}"] = weight.numpy()
    return kernels


def _overall(kernels, count):
    total = sum(value.size for value in kernels.values())
    return float(sum(count(value) for value in kernels.values()) / total) if total else 0.0


def _info(method, tflite, twin_error, history, epochs, baseline=None):
    info = {
        "method": method,
        "epochs": int(epochs),
        "twin_error": float(twin_error),
        "history": history,
        "tflite_bytes": len(tflite),
        "gzip_bytes": gzip_size(tflite),
    }
    if baseline is not None:
        info["baseline_tflite_bytes"] = len(baseline)
        info["baseline_gzip_bytes"] = gzip_size(baseline)
        info["gzip_ratio"] = info["gzip_bytes"] / info["baseline_gzip_bytes"]
    return info
