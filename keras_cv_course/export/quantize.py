"""Post-training quantization: smaller, faster artifacts from the same SavedModel.

TFLite modes (the converter's options; Jacob et al., "Quantization and
Training of Neural Networks for Efficient Integer-Arithmetic-Only
Inference", CVPR 2018, arXiv:1712.05877, give the affine int8 scheme):

=========  =================================================================
mode       what is stored and computed
=========  =================================================================
fp16       weights in float16, computed in float32
dynamic    weights in int8, activations quantized on the fly (float I/O)
int8       weights and activations in int8, calibrated on training images;
           float input and output
int8-io    as int8, and the input and output themselves int8 (or uint8),
           their scale and zero point recorded in the manifest
16x8       int16 activations and int8 weights, where every op supports it
=========  =================================================================

ONNX: ``dynamic`` uses ``onnxruntime.quantization.quantize_dynamic``; the
int8 modes use static QDQ quantization (``quantize_static``) on the same
calibration images, with optional per-channel weights. ONNX keeps float
input and output in both int8 modes.

The modes trained on a tf_keras twin (``qat``, ``prune``, ``cluster``) live
in ``export.trained``; every mode is gated by ``export.api`` on the task's
metric over held-out data.
"""

import dataclasses

import numpy as np

from keras_cv_course.errors import KCCError

PTQ_MODES = ("fp16", "dynamic", "int8", "int8-io", "16x8")
"""Post-training modes."""
TRAINED_MODES = ("qat", "prune", "cluster")
"""Modes trained on the tf_keras twin (``export.trained``)."""
QUANTIZE_MODES = PTQ_MODES + TRAINED_MODES
ONNX_MODES = ("dynamic", "int8", "int8-io")
"""Modes with an ONNX artifact; the others write TFLite (and SavedModel) only."""
CALIBRATION_SAMPLES = 200
"""Training images used to calibrate the int8 ranges, by default."""
CALIBRATED_MODES = ("int8", "int8-io", "16x8")


@dataclasses.dataclass(frozen=True)
class QuantizeOptions:
    """A quantization mode and its knobs (``export(..., quantize=QuantizeOptions(...))``).

    Attributes:
        mode: one of ``QUANTIZE_MODES``.
        samples: calibration images drawn from the training split (int8 modes).
        per_channel: ONNX: one scale per output channel of each weight.
        io_dtype: ``"int8"`` or ``"uint8"``, the input and output type of ``int8-io``.
        epochs: fine-tuning epochs of ``qat``, ``prune`` and ``cluster``.
        learning_rate: their fine-tuning learning rate; ``None`` takes the mode's
            default (``FINE_TUNE_RATES``: QAT starts from calibrated ranges and
            needs only a nudge).
        sparsity: ``prune``'s final fraction of zero weights.
        clusters: ``cluster``'s number of shared values per weight tensor.
    """

    mode: str
    samples: int = CALIBRATION_SAMPLES
    per_channel: bool = False
    io_dtype: str = "int8"
    epochs: int = 1
    learning_rate: float | None = None
    sparsity: float = 0.5
    clusters: int = 16

    def fine_tune_rate(self):
        """The learning rate of ``qat``, ``prune`` and ``cluster``."""
        return self.learning_rate or FINE_TUNE_RATES.get(self.mode, 1e-4)


FINE_TUNE_RATES = {"qat": 1e-5, "prune": 1e-4, "cluster": 1e-4}
"""Default fine-tuning learning rates (Adam); see docs/benchmarks.md for QAT's."""


def options_of(quantize):
    """``None``, a mode name or ``QuantizeOptions`` -> ``QuantizeOptions`` or ``None``."""
    if quantize is None or isinstance(quantize, QuantizeOptions):
        return quantize
    return QuantizeOptions(mode=str(quantize))


def default_formats(options):
    """All three formats for float32; the formats a quantized mode writes."""
    if options is None:
        return ("savedmodel", "tflite", "onnx")
    return ("tflite", "onnx") if options.mode in ONNX_MODES else ("tflite",)


def check_mode(options, formats):
    """Raises a one-line error for an unknown mode or knob, or a format the mode cannot write."""
    if options is None:
        return
    mode = options.mode
    if mode not in QUANTIZE_MODES:
        raise KCCError(f"quantize must be one of {', '.join(QUANTIZE_MODES)}, got {mode!r}")
    if "onnx" in formats and mode not in ONNX_MODES:
        raise KCCError(f"ONNX supports the quantize modes {', '.join(ONNX_MODES)}; for {mode!r} "
                       "export only tflite (--formats tflite)")
    if "savedmodel" in formats:
        raise KCCError("a SavedModel holds the float model; export it without quantize, and "
                       "the quantized formats (tflite, onnx) with it")
    if options.io_dtype not in ("int8", "uint8"):
        raise KCCError(f"io_dtype must be 'int8' or 'uint8', got {options.io_dtype!r}")
    if not (isinstance(options.samples, int) and options.samples > 0):
        raise KCCError(f"calibration samples must be a positive integer, got {options.samples!r}")
    if not 0 < options.sparsity < 1:
        raise KCCError(f"sparsity must be between 0 and 1, got {options.sparsity!r}")


def tflite_options(mode, calibration, io_dtype="int8"):
    """A ``configure(converter)`` callable setting the TFLite converter for ``mode``.

    Args:
        mode: one of ``PTQ_MODES``.
        calibration: ``{input name: array}`` of training inputs (int8 modes).
        io_dtype: ``"int8"`` or ``"uint8"``, the input and output type of ``int8-io``.
    """
    import tensorflow as tf

    def configure(converter):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode == "fp16":
            converter.target_spec.supported_types = [tf.float16]
        if mode in CALIBRATED_MODES:
            converter.representative_dataset = representative_dataset(calibration)
        if mode in ("int8", "int8-io"):
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if mode == "int8-io":
            converter.inference_input_type = getattr(tf, io_dtype)
            converter.inference_output_type = getattr(tf, io_dtype)
        if mode == "16x8":
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]

    return configure


def representative_dataset(calibration):
    """The converter's calibration generator: one example at a time, by input name."""
    count = len(next(iter(calibration.values())))

    def examples():
        for index in range(count):
            yield {name: value[index:index + 1] for name, value in calibration.items()}

    return examples


def calibration_inputs(inputs, samples=CALIBRATION_SAMPLES, seed=0):
    """``samples`` examples drawn without replacement from ``{input name: array}``."""
    count = len(next(iter(inputs.values())))
    if count == 0:
        raise KCCError("calibration needs at least one image")
    chosen = np.sort(np.random.default_rng(seed).permutation(count)[:samples])
    return {name: np.ascontiguousarray(value[chosen]) for name, value in inputs.items()}


def quantize_onnx(float_path, path, mode, calibration, per_channel=False):
    """Quantizes an fp32 ONNX file: dynamic range, or static QDQ calibrated on ``calibration``.

    Raises:
        KCCError: onnxruntime cannot quantize the graph.
    """
    from onnxruntime import quantization

    try:
        if mode == "dynamic":
            quantization.quantize_dynamic(float_path, path, per_channel=per_channel,
                                          weight_type=quantization.QuantType.QInt8)
            return
        quantization.quantize_static(
            float_path, path, _CalibrationReader(calibration),
            quant_format=quantization.QuantFormat.QDQ, per_channel=per_channel,
            activation_type=quantization.QuantType.QInt8,
            weight_type=quantization.QuantType.QInt8)
    except KCCError:
        raise
    except Exception as error:  # noqa: BLE001 - onnxruntime raises many types
        raise KCCError(f"ONNX {mode} quantization failed: {' '.join(str(error).split())[:200]}") \
            from None


class _CalibrationReader:
    """onnxruntime's calibration interface over ``{input name: array}``, one example a call."""

    def __init__(self, calibration):
        self.generate = representative_dataset(calibration)
        self.examples = self.generate()

    def get_next(self):
        return next(self.examples, None)

    def rewind(self):
        self.examples = self.generate()


def io_quantization(tflite_path):
    """``{name: {"dtype", "scale", "zero_point"}}`` of a TFLite file's int8 inputs and outputs."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=tflite_path).get_signature_runner("serve")
    found = {}
    for details in (runner.get_input_details(), runner.get_output_details()):
        for name, detail in details.items():
            if np.dtype(detail["dtype"]).name in ("int8", "uint8"):
                scale, zero_point = detail["quantization"]
                found[name] = {"dtype": np.dtype(detail["dtype"]).name, "scale": float(scale),
                               "zero_point": int(zero_point)}
    return found
