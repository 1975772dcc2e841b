"""The main job, end to end on embedded data: train, export, verify, evaluate.

``kcc quickstart [--task T]`` runs the quickstart recipe of a task
(``Task.quickstart``): it trains the recipe's small model on an embedded
dataset, exports it to SavedModel, TFLite and ONNX through the verified export
path, and to full-integer (int8) TFLite through the task's metric gate; then
it scores the Keras model and every artifact on the same held-out split with
the task's headline metric (``Task.score``), and prints one table.

The default, classification, trains a small ResNet-18 (narrow stages, one
block per stage, a 3x3 stem for small images) on scikit-learn's handwritten
digits upsampled to 16x16.
"""

import os
import time

from keras_cv_course.data import load_dataset
from keras_cv_course.errors import KCCError
from keras_cv_course.export import FILE_NAMES, export, load_runner, run_in_batches
from keras_cv_course.export.bench import human_size
from keras_cv_course.tasks import get_task, list_tasks
from keras_cv_course.training import train


def recipe_of(task_name):
    """The task's ``Quickstart`` recipe; a one-line error for tasks without one."""
    recipe = get_task(task_name).quickstart
    if recipe is None:
        raise KCCError(f"task {task_name!r} has no quickstart; tasks with one: "
                       f"{', '.join(tasks_with_quickstart())}")
    return recipe


def tasks_with_quickstart():
    """Names of the registered tasks that have a quickstart recipe."""
    return [name for name in list_tasks() if get_task(name).quickstart is not None]


def run_quickstart(task="classification", out=None, epochs=None, verbose="auto", log=print):
    """Runs a task's main job and returns its summary rows.

    Args:
        task: a task with a quickstart recipe.
        out: run folder (default ``runs/quickstart-TASK-TIME``).
        epochs: overrides the recipe's epochs.
        verbose: Keras verbosity while training.
        log: where progress lines and the table go.

    Returns:
        ``(rows, passed)``: one row per artifact with its score on the
        recipe's metric, size, and parity error (float artifacts) or
        agreement with Keras (int8), and whether every score reaches the
        recipe's target and the float ones agree within its spread.
    """
    task_object, recipe = get_task(task), recipe_of(task)
    out = out or os.path.join("runs", f"quickstart-{task}-{time.strftime('%Y%m%d-%H%M%S')}")
    started = time.time()
    bundle = load_dataset(recipe.data, task=task, image_size=recipe.image_size)
    inputs, targets = bundle.arrays["test"]
    log(f"[1/3] training {recipe.description} on {recipe.data} {recipe.image_size}: "
        f"{_count(bundle.arrays['train'][0])} train / {_count(inputs)} test images")
    run = train(recipe.model, bundle, out, config=recipe.config, epochs=epochs or recipe.epochs,
                batch_size=recipe.batch_size, learning_rate=recipe.learning_rate,
                augment=recipe.augment, verbose=verbose, **recipe.overrides)
    log(f"[2/3] exporting to SavedModel, TFLite and ONNX with the parity gate -> {out}/export")
    export_dir = os.path.join(out, "export")
    manifest = export(run.model, export_dir, golden_batch=bundle.golden_batch(8),
                      model_name=recipe.model)
    log("[3/3] evaluating the Keras model and every artifact on the test split")
    rows = [{"format": "keras", recipe.metric: run.metrics[recipe.metric],
             "bytes": os.path.getsize(os.path.join(out, "model.keras")), "parity": 0.0}]
    for fmt, entry in manifest["artifacts"].items():
        runner = load_runner(fmt, os.path.join(export_dir, FILE_NAMES[fmt]))
        score = task_object.score(run_in_batches(runner, inputs), targets)
        rows.append({"format": fmt, recipe.metric: score[recipe.metric], "bytes": entry["bytes"],
                     "parity": max(entry["parity"]["errors"].values())})
    rows.append(_int8_row(out, recipe, log))
    scores = [row[recipe.metric] for row in rows]
    floats = [row[recipe.metric] for row in rows if "parity" in row]
    passed = min(scores) >= recipe.target and max(floats) - min(floats) <= recipe.max_spread
    log(summary_table(rows, recipe, passed, time.time() - started, out))
    return rows, passed


def _int8_row(out, recipe, log):
    """Exports the run to full-integer TFLite through the metric gate; its summary row."""
    log(f"      and to int8 TFLite, calibrated on training images -> {out}/export-int8")
    manifest = export(out, quantize="int8", formats=("tflite",))
    entry = manifest["artifacts"]["tflite"]
    return {"format": "tflite int8", recipe.metric: entry["gate"]["artifact"],
            "bytes": entry["bytes"], "agreement": entry["gate"]["agreement"]}


def summary_table(rows, recipe, passed, seconds, out):
    """Formats the quickstart summary as a plain-text table."""
    title = f"test {recipe.metric.replace('_', ' ')}"
    lines = [
        "",
        f"{'artifact':<12}{title:>15}{'size':>12}{'vs Keras':>21}",
        "-" * 60,
    ]
    for row in rows:
        versus = (f"{row['agreement']:.2%} agree" if "agreement" in row
                  else f"{row['parity']:.2e} max error")
        lines.append(f"{row['format']:<12}{row[recipe.metric]:>14.2%}{human_size(row['bytes']):>12}"
                     f"{versus:>21}")
    verdict = "PASS" if passed else "FAIL"
    lines += ["-" * 60,
              f"{verdict}: every artifact >= {recipe.target:.0%}, the float ones within "
              f"{recipe.max_spread * 100:.1f} points of each other (int8: its gate); "
              f"{seconds:.0f} s; run folder {out}"]
    return "\n".join(lines)


def _count(inputs):
    """Examples in one input array or in a dict of them."""
    return len(next(iter(inputs.values())) if isinstance(inputs, dict) else inputs)
