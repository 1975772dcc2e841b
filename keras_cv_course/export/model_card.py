"""Model cards: what an exported model is for, and how well it works for whom.

Mitchell et al., "Model Cards for Model Reporting", FAT* 2019
(arXiv:1810.03993), ask every released model to carry a short document with
nine sections: model details; intended use; factors; metrics; evaluation
data; training data; quantitative analyses; ethical considerations; caveats
and recommendations. The quantitative analyses are *unitary* (the model's
metrics on each group of one factor) and *intersectional* (on each cell of
two or more factors at once), because a model can look fine on every
factor alone and still fail one combination of them.

Here every section is filled in from the run (``config.json``), the model
registry (``applications.get_info``), the export's ``manifest.json``, the
dataset's datasheet (Gebru et al., "Datasheets for Datasets", CACM 2021) and
numbers measured on the run's held-out split, for Keras and for every
exported artifact:

    evaluations = evaluate_artifacts_for_card("runs/r18", "runs/r18/export-int8")
    card = build_model_card(config, info, task, evaluations, manifest)
    write_model_card("runs/r18/export-int8", card)  # MODEL_CARD.md, model_card.json

``write_card_for_export(run, export_folder)`` does all three. Every number in a
card comes from ``Task.score`` on a subset of the held-out examples; a cell
with fewer than ``min_count`` examples is listed with its count and marked too
small, not scored and not hidden.
"""

import itertools
import json
import os

import numpy as np

from keras_cv_course.errors import KCCError
from keras_cv_course.export.model_card_markdown import (  # noqa: F401 - the card's public API
    CARD_FILES,
    SECTIONS,
    card_markdown,
    write_model_card,
)
from keras_cv_course.export.model_card_sections import (  # noqa: F401
    build_model_card,
    datasheet_fields,
    export_mode,
)

MIN_COUNT = 5
"""Groups and cells with fewer held-out examples are reported as too small, without scores."""


# -- quantitative analysis ---------------------------------------------------------------

def quantitative_analysis(task, outputs, targets, class_names=(), attributes=None,
                          min_count=MIN_COUNT):
    """Unitary and intersectional analyses of one runtime's outputs on held-out data.

    Args:
        task: the run's task; its ``score(outputs, targets)`` makes every number.
        outputs: ``{output name: array}`` of the serving signature on the split.
        targets: the split's targets (an array or a dict of arrays).
        class_names: the task's class names.
        attributes: ``{attribute: (n,) array}`` of group attributes of each
            example, or ``None`` (then only overall and per-class analyses).
        min_count: cells with fewer examples are reported as too small.

    Returns:
        ``{"examples", "min_count", "overall", "per_class", "unitary",
        "intersectional"}``. A cell is ``{"values", "count", "too_small",
        "scores"}`` (``scores`` is ``None`` when too small). ``per_class``
        says what it measures in ``kind`` and ``note``: for one label per
        example, the scores of the examples whose label is the class; for
        one label per pixel, each class's IoU over every pixel of the split.
        ``intersectional`` has one table per combination of two or more
        attributes, with a cell for every combination of their values (empty
        cells included), so each table's counts sum to ``examples``.
    """
    count = _length(targets)
    attributes = {name: np.asarray(values).astype(str)
                  for name, values in (attributes or {}).items()}
    for name, values in attributes.items():
        if values.shape != (count,):
            raise KCCError(f"attribute {name!r} has shape {values.shape}, expected ({count},)")

    def cell(values, index):
        return _cell(task, outputs, targets, values, index, min_count)

    everything = np.ones(count, dtype=bool)
    return {
        "examples": count,
        "min_count": int(min_count),
        "overall": _cell(task, outputs, targets, {}, everything, 1),
        "per_class": _per_class(task, outputs, targets, class_names, min_count),
        "unitary": {name: [cell({name: value}, values == value) for value in np.unique(values)]
                    for name, values in attributes.items()},
        "intersectional": [_intersection(attributes, names, cell)
                           for size in range(2, len(attributes) + 1)
                           for names in itertools.combinations(sorted(attributes), size)],
    }


def _cell(task, outputs, targets, values, index, min_count):
    size = int(np.sum(index))
    small = size < min_count
    scores = None if small else task.score(_take(outputs, index), _take(targets, index))
    return {"values": dict(values), "count": size, "too_small": bool(small),
            "scores": None if scores is None else {k: float(v) for k, v in scores.items()}}


def _intersection(attributes, names, cell):
    levels = [np.unique(attributes[name]) for name in names]
    cells = []
    for combination in itertools.product(*levels):
        index = np.all([attributes[name] == value for name, value in zip(names, combination)],
                       axis=0)
        cells.append(cell(dict(zip(names, combination)), index))
    return {"attributes": list(names), "cells": cells}


def _per_class(task, outputs, targets, class_names, min_count):
    """Per-class analysis in the form that the targets make meaningful."""
    labels = None if isinstance(targets, dict) else np.asarray(targets)
    if labels is None or labels.dtype.kind not in "iu":
        return {"kind": None, "rows": [],
                "note": f"task {task.name!r} has no single class label per example or pixel; "
                        "no per-class analysis"}
    classes = len(class_names) or int(labels.max()) + 1
    names = [str(class_names[c]) if c < len(class_names) else str(c) for c in range(classes)]
    if labels.ndim == 1:
        rows = [{**_cell(task, outputs, targets, {}, labels == c, min_count), "class": names[c]}
                for c in range(classes)]
        return {"kind": "examples", "rows": rows,
                "note": "the task's metrics on the examples whose label is the class "
                        "(for accuracy: the class's recall)"}
    return _per_class_iou(task, outputs, labels, names, min_count)


def _per_class_iou(task, outputs, labels, names, min_count):
    """Each class's IoU, TP / (TP + FP + FN) over every pixel of the split."""
    predicted = np.argmax(_decision_output(task, outputs), axis=-1)
    if predicted.shape != labels.shape:
        return {"kind": None, "rows": [],
                "note": f"outputs {predicted.shape} do not align with targets {labels.shape}"}
    rows = []
    for c, name in enumerate(names):
        truth, guess = labels == c, predicted == c
        union = int(np.sum(truth | guess))
        with_class = int(np.sum(truth.reshape(len(truth), -1).any(axis=1)))
        small = with_class < min_count
        iou = None if small or union == 0 else float(np.sum(truth & guess) / union)
        rows.append({"class": name, "values": {}, "count": with_class, "too_small": small,
                     "pixels": int(np.sum(truth)),
                     "scores": None if iou is None else {"iou": iou}})
    return {"kind": "pixels", "rows": rows,
            "note": "each class's IoU over every pixel of the split (count: images that "
                    "contain the class); the mean over the classes present is the task's "
                    "mean IoU"}


def _decision_output(task, outputs):
    """The output whose argmax is the decision: the task's first declared output."""
    for spec in task.output_specs:
        if spec.name in outputs:
            return np.asarray(outputs[spec.name])
    return np.asarray(outputs[sorted(outputs)[0]])


def _take(value, index):
    if isinstance(value, dict):
        return {key: _take(item, index) for key, item in value.items()}
    return np.asarray(value)[index]


def _length(value):
    return len(next(iter(value.values())) if isinstance(value, dict) else value)


# -- quantized inputs and outputs --------------------------------------------------------

def quantize_inputs(inputs, io_quantization):
    """Float inputs as the integers an int8 (or uint8) artifact takes.

    ``q = clip(round(x / scale + zero_point))`` with the scale and zero point
    recorded in the manifest (Jacob et al., CVPR 2018, arXiv:1712.05877).

    Args:
        inputs: ``{input name: array}``.
        io_quantization: the manifest's ``{name: {"scale", "zero_point",
            "dtype"}}``; names without an entry, and integer arrays, pass through.

    Returns:
        ``{input name: array}``.
    """
    from keras_cv_course.edge import to_artifact

    return {name: to_artifact(value, (io_quantization or {}).get(name))
            for name, value in inputs.items()}


def dequantize_outputs(outputs, io_quantization):
    """Integer outputs of an int8 (or uint8) artifact back to float32.

    ``x = (q - zero_point) * scale``; float outputs (a runtime that already
    dequantized) and names without an entry pass through.
    """
    from keras_cv_course.edge import from_artifact

    return {name: from_artifact(value, (io_quantization or {}).get(name))
            for name, value in outputs.items()}


# -- running Keras and the artifacts -----------------------------------------------------

def evaluate_artifacts_for_card(run, export_folder, split="test", batch_size=64,
                                min_count=MIN_COUNT):
    """Analyses of Keras and of every artifact in an export folder, on a held-out split.

    Args:
        run: a run folder, a ``LoadedRun`` or a ``Run`` returned by ``train``.
        export_folder: a folder written by ``export`` (with ``manifest.json``).
        split: the held-out split.
        batch_size: examples per call of each runtime.
        min_count: the smallest cell that is scored.

    Returns:
        ``{"keras": analysis, fmt: analysis, ...}``; each analysis (from
        ``quantitative_analysis``) also has ``agreement_with_keras``, the
        share of decisions (argmax) an artifact shares with Keras.
    """
    from keras_cv_course.export.api import golden_inputs, serving_function
    from keras_cv_course.export.runners import load_runner, run_in_batches

    loaded = _loaded_run(run)
    task, bundle = loaded.task, loaded.bundle
    from keras_cv_course.export.gate import split_arrays

    inputs, targets = split_arrays(bundle, split)
    inputs = golden_inputs(loaded.model, task, inputs)
    attributes = (bundle.attributes or {}).get(split) or None
    serve = serving_function(loaded.model, task)
    reference = run_in_batches(lambda batch: _numpy(serve(batch)), inputs, batch_size)
    manifest = read_manifest(export_folder)
    outputs = {"keras": reference}
    for fmt, entry in manifest["artifacts"].items():
        runner = load_runner(fmt, os.path.join(export_folder, entry["path"]))
        scheme = entry.get("io_quantization") or {}
        raw = run_in_batches(runner, quantize_inputs(inputs, scheme), batch_size)
        outputs[fmt] = dequantize_outputs(raw, scheme)
    evaluations = {}
    for name, values in outputs.items():
        analysis = quantitative_analysis(task, values, targets, bundle.class_names, attributes,
                                         min_count)
        analysis["agreement_with_keras"] = _agreement(task, values, reference)
        evaluations[name] = analysis
    return evaluations


def write_card_for_export(run, export_folder, split="test", min_count=MIN_COUNT):
    """Evaluates, builds and writes the model card of one export folder; returns the card."""
    from keras_cv_course import applications

    loaded = _loaded_run(run)
    evaluations = evaluate_artifacts_for_card(loaded, export_folder, split, min_count=min_count)
    info = applications.get_info(loaded.config["model"])
    card = build_model_card(loaded.config, info, loaded.task, evaluations,
                            read_manifest(export_folder))
    write_model_card(export_folder, card)
    return card


def read_manifest(export_folder):
    """An export folder's ``manifest.json``; a one-line error when it is missing."""
    path = os.path.join(export_folder, "manifest.json")
    if not os.path.isfile(path):
        raise KCCError(f"not an export folder (no manifest.json): {export_folder!r}")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _loaded_run(run):
    from keras_cv_course.runs import LoadedRun, load_run

    if isinstance(run, LoadedRun):
        return run
    return load_run(getattr(run, "path", run))


def _numpy(outputs):
    import keras

    return {key: keras.ops.convert_to_numpy(value) for key, value in outputs.items()}


def _agreement(task, outputs, reference):
    """The task's share of equal decisions with Keras, or ``None`` when it has no rule."""
    try:
        return float(task.agreement(outputs, reference))
    except (AttributeError, KCCError, KeyError, ValueError, IndexError):
        return None


# -- the card ----------------------------------------------------------------------------


