"""The main job, end to end on embedded data: train, export, verify, evaluate.

``kcc quickstart`` trains a small ResNet-18 (narrow stages, one block per
stage, a 3x3 stem for small images) on scikit-learn's handwritten digits
upsampled to 16x16, exports it to SavedModel, TFLite and ONNX through the
verified export path, then measures test accuracy of the Keras model and of
every artifact on the same held-out split, and prints one table.
"""

import os
import time

import numpy as np

from keras_cv_course.data import load_dataset
from keras_cv_course.export import FILE_NAMES, export, load_runner, run_in_batches
from keras_cv_course.training import train

QUICKSTART_MODEL = dict(
    model="resnet18", stage_widths=(16, 32, 64, 64), blocks_per_stage=(1, 1, 1, 1),
    stem_type="small",
)
IMAGE_SIZE = (16, 16)
TARGET_ACCURACY = 0.97
MAX_SPREAD = 0.005


def run_quickstart(out=None, epochs=12, batch_size=64, learning_rate=3e-3, verbose="auto",
                   log=print):
    """Runs the main job and returns its summary rows.

    Returns:
        ``(rows, passed)``: one row per artifact with accuracy, size and
        parity error, and whether every accuracy reaches 97% and they agree
        within 0.5 points.
    """
    out = out or os.path.join("runs", f"quickstart-{time.strftime('%Y%m%d-%H%M%S')}")
    started = time.time()
    bundle = load_dataset("digits", image_size=IMAGE_SIZE)
    log(f"[1/3] training resnet18 (small) on digits {IMAGE_SIZE}: "
        f"{len(bundle.arrays['train'][0])} train / {len(bundle.arrays['test'][0])} test images")
    overrides = {key: value for key, value in QUICKSTART_MODEL.items() if key != "model"}
    run = train(QUICKSTART_MODEL["model"], bundle, out, epochs=epochs, batch_size=batch_size,
                learning_rate=learning_rate, verbose=verbose, **overrides)
    log(f"[2/3] exporting to SavedModel, TFLite and ONNX with the parity gate -> {out}/export")
    export_dir = os.path.join(out, "export")
    manifest = export(run.model, export_dir, golden_batch=bundle.golden_batch(8),
                      model_name=QUICKSTART_MODEL["model"])
    log("[3/3] evaluating the Keras model and every artifact on the test split")
    images, labels = bundle.arrays["test"]
    rows = [{"format": "keras", "accuracy": run.metrics["accuracy"],
             "bytes": os.path.getsize(os.path.join(out, "model.keras")), "parity": 0.0}]
    for fmt, entry in manifest["artifacts"].items():
        runner = load_runner(fmt, os.path.join(export_dir, FILE_NAMES[fmt]))
        probabilities = run_in_batches(runner, images)["predictions"]
        rows.append({"format": fmt, "accuracy": float(np.mean(probabilities.argmax(-1) == labels)),
                     "bytes": entry["bytes"], "parity": max(entry["parity"]["errors"].values())})
    accuracies = [row["accuracy"] for row in rows]
    passed = min(accuracies) >= TARGET_ACCURACY and max(accuracies) - min(accuracies) <= MAX_SPREAD
    log(summary_table(rows, passed, time.time() - started, out))
    return rows, passed


def summary_table(rows, passed, seconds, out):
    """Formats the quickstart summary as a plain-text table."""
    lines = [
        "",
        f"{'artifact':<12}{'test accuracy':>15}{'size':>12}{'max error vs Keras':>21}",
        "-" * 60,
    ]
    for row in rows:
        lines.append(f"{row['format']:<12}{row['accuracy']:>14.2%}{_human(row['bytes']):>12}"
                     f"{row['parity']:>21.2e}")
    verdict = "PASS" if passed else "FAIL"
    lines += ["-" * 60,
              f"{verdict}: every artifact >= {TARGET_ACCURACY:.0%} and within "
              f"{MAX_SPREAD * 100:.1f} points of each other; {seconds:.0f} s; run folder {out}"]
    return "\n".join(lines)


def _human(size):
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
