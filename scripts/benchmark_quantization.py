"""Quantization on one run: size, accuracy and latency of int8 against float32.

    python scripts/benchmark_quantization.py --out runs/quantization --epochs 8

Trains ResNet-18 (the full, reference configuration) on the embedded digits
at 32x32, exports it as float32 TFLite, as post-training full-integer int8
(TFLite and ONNX, calibrated on 200 training images) and as int8 after
quantization-aware training on the tf_keras twin (activation ranges calibrated
on the same 200 images first, then one epoch at Adam 1e-5), then benchmarks every
artifact with ``kcc bench`` (``export.bench``: TFLite and ONNX in a process
without TensorFlow). It prints the ratios the export layer promises:

* int8 TFLite size / fp32 TFLite size (goal: at most 0.27);
* int8 accuracy drop against Keras, in points (goal: at most 0.5);
* int8 / fp32 TFLite batch-1 latency, one thread, XNNPACK (goal: at most 0.6);
* QAT accuracy against post-training int8 accuracy (goal: at least equal).
"""

import argparse
import json
import os
import time

from keras_cv_course.export import export
from keras_cv_course.export.bench import bench_run, write_bench
from keras_cv_course.export.quantize import QuantizeOptions
from keras_cv_course.training import train


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/quantization")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--qat-epochs", type=int, default=1)
    parser.add_argument("--qat-lr", type=float, default=1e-5,
                        help="QAT's Adam learning rate (ranges are calibrated first)")
    parser.add_argument("--runs", type=int, default=200, help="timed calls per latency")
    return parser.parse_args()


def train_once(out, epochs):
    if os.path.exists(os.path.join(out, "model.keras")):
        return
    train("resnet18", "digits", out, epochs=epochs, image_size=(32, 32), channels=1,
          batch_size=64, learning_rate=1e-3, schedule="cosine", verbose=2)


def export_all(out, qat_epochs, qat_lr):
    """The three exports (each kept if it is already there); seconds each took."""
    timings = {}
    for name, folder, arguments in [
            ("fp32", "export", dict(formats=("tflite", "onnx"))),
            ("int8", "export-int8", dict(quantize="int8")),
            ("qat", "export-qat", dict(quantize=QuantizeOptions("qat", epochs=qat_epochs,
                                                                learning_rate=qat_lr)))]:
        if os.path.exists(os.path.join(out, folder, "manifest.json")):
            continue
        started = time.time()
        export(out, **arguments)
        timings[name] = time.time() - started
    return timings


def pick(rows, folder, fmt, runtime="litert+xnnpack", threads=1):
    return next(row for row in rows if row["folder"] == folder and row["format"] == fmt
                and row["runtime"] == runtime and row["threads"] == threads)


def summary(rows):
    keras_row = next(row for row in rows if row["format"] == "keras")
    fp32, int8 = pick(rows, "export", "tflite"), pick(rows, "export-int8", "tflite")
    qat = pick(rows, "export-qat", "tflite")
    return {
        "keras_accuracy": keras_row["metric_value"],
        "fp32_tflite_bytes": fp32["bytes"], "int8_tflite_bytes": int8["bytes"],
        "size_ratio": int8["bytes"] / fp32["bytes"],
        "int8_accuracy": int8["metric_value"],
        "accuracy_drop_points": 100 * (keras_row["metric_value"] - int8["metric_value"]),
        "int8_agreement": int8["agreement"],
        "fp32_median_ms": fp32["median_ms"], "int8_median_ms": int8["median_ms"],
        "latency_ratio": int8["median_ms"] / fp32["median_ms"],
        "qat_accuracy": qat["metric_value"],
        "qat_minus_ptq_points": 100 * (qat["metric_value"] - int8["metric_value"]),
    }


def main():
    args = parse_arguments()
    started = time.time()
    train_once(args.out, args.epochs)
    timings = export_all(args.out, args.qat_epochs, args.qat_lr)
    rows = bench_run(args.out, runs=args.runs, warmup=20)
    markdown, _ = write_bench(rows, args.out, settings={"runs": args.runs})
    result = {**summary(rows), "export_seconds": timings, "seconds": time.time() - started}
    with open(os.path.join(args.out, "quantization_summary.json"), "w") as handle:
        json.dump(result, handle, indent=2)
    for key, value in result.items():
        print(f"{key:>24}: {value}")
    print(f"bench table: {markdown}")


if __name__ == "__main__":
    main()
