"""Every registered detector, trained with ``kcc train`` on the embedded shapes, then scored.

    python scripts/benchmark_detection.py --out runs/detection

Each detector's tiny config trains on ``shapes`` (32x32, one shape per image, 840 training
images) through the real command line, with the settings in ``RECIPES``; then
``kcc evaluate`` scores the 240 held-out images with pycocotools' COCOeval and VOC mAP@0.5.
Then ``kcc export RUN --formats tflite onnx`` writes the end-to-end artifacts (decode and
NMS in the graph), and each runs over the first ``--device-images`` test images in a
process where TensorFlow cannot be imported (``python -m keras_cv_course.edge``); the
detection task's parity rule compares its detections with Keras' (same class, IoU >= 0.99,
score within 1e-3, equal counts).

It prints one row per detector: training seconds, COCO AP, AP50, AP75, VOC mAP@0.5 (goal:
>= 0.5 for every detector, >= 0.8 for at least one), and the detections each artifact
failed to match (goal: 0), and writes ``summary.json``. A run folder that already has
``metrics.json`` is scored, not retrained.
"""

import argparse
import json
import os
import subprocess
import sys

# name -> (epochs, learning rate, augmentation, extra ``kcc train`` arguments)
# yolov8s's tiny config is yolov8n's network (the variants differ only in their full
# width and depth), so one run covers both.
RECIPES = {
    "yolo_v1": (30, 1e-3, "flip", []),
    "yolov8n": (12, 1e-3, "flip", []),
    "retinanet_resnet50_fpn": (15, 1e-3, "flip", []),
    "fcos_resnet50_fpn": (15, 1e-3, "flip", []),
    "fasterrcnn_resnet50_fpn": (15, 1e-3, "flip", []),
    "maskrcnn_resnet50_fpn": (15, 1e-3, "none", []),  # instance_segmentation: no flip yet
}


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/detection")
    parser.add_argument("--models", nargs="+", default=list(RECIPES))
    parser.add_argument("--device-images", type=int, default=60)
    return parser.parse_args()


def kcc(*arguments):
    """Runs ``kcc`` with this Python; returns its stdout (fails loudly)."""
    done = subprocess.run([sys.executable, "-m", "keras_cv_course", *arguments],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"kcc {' '.join(arguments)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def device_check(folder, images):
    """Unmatched detections of each artifact, run without TensorFlow, against Keras, and
    whether every output passed its rule (masks too, for instance segmentation)."""
    import numpy as np

    from keras_cv_course.edge import read_result
    from keras_cv_course.export.api import serving_function
    from keras_cv_course.runs import load_run

    if not os.path.exists(os.path.join(folder, "export", "manifest.json")):
        kcc("export", folder, "--formats", "tflite", "onnx")
    run = load_run(folder)
    inputs = run.bundle.arrays["test"][0][:images]
    expected = {key: np.asarray(value) for key, value in
                serving_function(run.model, run.task)({"images": inputs}).items()}
    np.savez(os.path.join(folder, "device_inputs.npz"), images=inputs)
    unmatched, passed = {}, {}
    for fmt in ("tflite", "onnx"):
        result = os.path.join(folder, f"device_{fmt}.npz")
        done = subprocess.run(
            [sys.executable, "-m", "keras_cv_course.edge", "--artifact",
             os.path.join(folder, "export", f"model.{fmt}"), "--format", fmt, "--inputs",
             os.path.join(folder, "device_inputs.npz"), "--runs", "5", "--out", result],
            capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{fmt} device run failed:\n{done.stderr[-2000:]}")
        meta, actual = read_result(result)
        assert not meta["tensorflow_modules"], meta
        checks = run.task.compare_outputs(actual, expected, 1e-4)
        unmatched[fmt] = int(checks["boxes"]["error"])
        # Every output's rule: equal counts per image, and (instance segmentation) masks.
        passed[fmt] = all(bool(check["passed"]) for check in checks.values())
    return {"unmatched": unmatched, "parity_passed": passed, "device_images": int(images),
            "keras_detections": int(expected["num_detections"].sum())}


def train_and_score(name, folder):
    epochs, rate, augment, extra = RECIPES[name]
    command = ["train", name, "--data", "shapes", "--config", "tiny", "--epochs", str(epochs),
               "--lr", str(rate), "--batch-size", "32", "--augment", augment,
               "--out", folder, *extra]
    if not os.path.exists(os.path.join(folder, "metrics.json")):
        kcc(*command)
    kcc("evaluate", folder)
    with open(os.path.join(folder, "metrics.json"), encoding="utf-8") as handle:
        metrics = json.load(handle)
    return {"model": name, "command": "kcc " + " ".join(command),
            **{key: metrics[key] for key in ("train_seconds", "ap", "ap50", "ap75", "voc_map50")}}


def main():
    args = parse_arguments()
    rows = []
    for name in args.models:
        folder = os.path.join(args.out, name)
        rows.append({**train_and_score(name, folder),
                     **device_check(folder, args.device_images)})
    with open(os.path.join(args.out, "summary.json"), "w", encoding="utf-8") as handle:
        json.dump(rows, handle, indent=2)
    print(f"{'model':<24} {'train s':>8} {'AP':>6} {'AP50':>6} {'AP75':>6} {'VOC mAP50':>10} "
          f"{'detections':>10} {'unmatched tflite/onnx':>22}")
    for row in rows:
        seconds = f"{row['train_seconds']:.0f}"
        unmatched = f"{row['unmatched']['tflite']}/{row['unmatched']['onnx']}"
        print(f"{row['model']:<24} {seconds:>8} {row['ap']:6.3f} {row['ap50']:6.3f} "
              f"{row['ap75']:6.3f} {row['voc_map50']:10.3f} {row['keras_detections']:>10} "
              f"{unmatched:>22}")


if __name__ == "__main__":
    main()
