"""The nine sections of a model card (Mitchell et al., FAT* 2019, arXiv:1810.03993).

``build_model_card`` fills each section from the run's config, the registry,
the export's manifest, the dataset's datasheet and the measured analyses of
``export.model_card``; nothing here is a fixed sentence pretending to be a
measurement.
"""

import datetime
import os
import re

from keras_cv_course.errors import KCCError
from keras_cv_course.export.model_card_markdown import jsonable

PACKAGE_DATASHEETS = "keras_cv_course/data/datasheets"


def build_model_card(run_config, info, task, evaluations, manifest=None, datasheet=None):
    """The model card of one export, as a dict of Mitchell et al.'s nine sections.

    Args:
        run_config: the run's ``config.json``.
        info: the model's ``ModelInfo`` (``applications.get_info``).
        task: the run's task.
        evaluations: ``{"keras": analysis, fmt: analysis, ...}`` from
            ``quantitative_analysis`` (``evaluate_artifacts_for_card``).
        manifest: the export's ``manifest.json``, for formats, quantization,
            parity and gate results.
        datasheet: path of the dataset's datasheet (Markdown); defaults to
            the package's datasheet of an embedded dataset.

    Returns:
        ``{section key: content}`` for every key of ``SECTIONS``, plus
        ``"title"`` and ``"runtimes"``.
    """
    if "keras" not in evaluations:
        raise KCCError(f"evaluations must include 'keras', got {sorted(evaluations)}")
    manifest = manifest or {}
    sheet = _datasheet(run_config["data"], datasheet)
    card = {
        "title": f"Model card: {info.name} on {run_config['data']}",
        "runtimes": _runtimes(evaluations, manifest),
        "model_details": _model_details(run_config, info, task, manifest),
        "intended_use": _intended_use(run_config, task, sheet),
        "factors": _factors(evaluations["keras"], run_config),
        "metrics": _metrics(task, evaluations["keras"], manifest),
        "evaluation_data": _data_section(run_config, sheet, "test", evaluations["keras"]),
        "training_data": _data_section(run_config, sheet, "train", None),
        "quantitative_analyses": evaluations,
        "ethical_considerations": _ethics(task, evaluations, sheet),
        "caveats_and_recommendations": _caveats(run_config, task, evaluations, sheet),
    }
    return jsonable(card)


def export_mode(manifest):
    """The quantization mode of an export (``"fp32"`` when none); the manifest's
    ``quantize`` entry is a mode name or a dict of options with a ``"mode"``."""
    quantize = manifest.get("quantize")
    if isinstance(quantize, dict):
        quantize = quantize.get("mode")
    return quantize or "fp32"


def _runtimes(evaluations, manifest):
    mode = export_mode(manifest)
    artifacts = manifest.get("artifacts", {})
    # The SavedModel is the float intermediate of every export, quantized or not.
    return {name: {"format": name, "mode": "fp32" if name in ("keras", "savedmodel") else mode,
                   "file": artifacts.get(name, {}).get("path"),
                   "bytes": artifacts.get(name, {}).get("bytes")}
            for name in evaluations}


def _model_details(run_config, info, task, manifest):
    return {
        "name": info.name,
        "family": info.family,
        "description": info.description,
        "task": f"{task.name}: {task.description}",
        "paper": info.paper,
        "reference_parameters": info.reference_params,
        "reference_parameters_source": info.params_source,
        "config": run_config.get("config", "full"),
        "config_overrides": run_config.get("model_overrides") or {},
        "input": f"{run_config['image_size'][0]}x{run_config['image_size'][1]}x"
                 f"{run_config['channels']} float images in [0, 1]",
        "classes": list(run_config.get("class_names") or []),
        "version": f"keras_cv_course {run_config.get('package_version', 'unknown')}",
        "software": manifest.get("versions", {}),
        "date": manifest.get("created")
        or datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "training": {key: run_config.get(key) for key in
                     ("epochs", "batch_size", "learning_rate", "optimizer", "schedule",
                      "augment", "precision", "seed")},
        "export_mode": export_mode(manifest),
        "export_options": manifest.get("quantize") if isinstance(manifest.get("quantize"), dict)
        else None,
    }


def _intended_use(run_config, task, sheet):
    height, width = run_config["image_size"]
    classes = ", ".join(run_config.get("class_names") or []) or "none"
    fields = sheet["fields"]
    return {
        "primary_uses": [f"{task.name} ({task.description}) of {height}x{width} images like "
                         f"those of the {run_config['data']} dataset (classes: {classes})"]
        + _quoted(fields, "Intended"),
        "out_of_scope": _quoted(fields, "Not suitable for")
        + [f"inputs unlike the {run_config['data']} training images, or of another size than "
           f"{height}x{width} with {run_config['channels']} channel(s)"]
        + ([f"conclusions about the reference {run_config['model']} architecture: this run "
            f"used the registry's {run_config['config']!r} config"]
           if run_config.get("config") == "tiny" else []),
    }


def _factors(keras_analysis, run_config):
    unitary = keras_analysis["unitary"]
    if not unitary:
        return {"groups": {}, "evaluated": ["per class"],
                "note": f"the {run_config['data']} data records no group attributes; the "
                        "analysis is per class only"}
    groups = {name: {cell["values"][name]: cell["count"] for cell in cells}
              for name, cells in unitary.items()}
    tables = [" x ".join(table["attributes"]) for table in keras_analysis["intersectional"]]
    return {"groups": groups, "evaluated": ["per class", *sorted(unitary), *tables],
            "note": "attributes recorded for each held-out example by the dataset"}


def _metrics(task, keras_analysis, manifest):
    section = {
        "headline": list(task.headline_metrics),
        "definition": task.description,
        "decision": f"argmax over classes of the {_decision_name(task)!r} output",
        "variation": f"groups and cells with fewer than {keras_analysis['min_count']} held-out "
                     "examples are reported as too small, without scores",
    }
    artifacts = manifest.get("artifacts", {})
    parity = {fmt: entry["parity"] for fmt, entry in artifacts.items() if "parity" in entry}
    if parity:
        section["parity_with_keras"] = parity
    gates = {fmt: entry["gate"] for fmt, entry in artifacts.items() if "gate" in entry}
    if export_mode(manifest) != "fp32":
        section["quantized_gate_rule"] = _gate_rule(task)
    if gates:
        section["quantized_gate"] = gates
    return section


def _decision_name(task):
    return task.output_specs[0].name if task.output_specs else "first"


def _gate_rule(task):
    try:
        rule = task.quantized_rule()
    except (AttributeError, KCCError) as error:
        return f"none: {error}"
    return (f"on the held-out split, {rule.metric} may drop by at most {rule.max_drop:g} "
            f"against Keras, and decisions must agree with Keras on at least "
            f"{rule.min_agreement:.0%} of them")


def _data_section(run_config, sheet, split, analysis):
    height, width = run_config["image_size"]
    section = {
        "dataset": run_config["data"],
        "split": split,
        "datasheet": sheet["link"],
        "preprocessing": f"resized to {height}x{width}, {run_config['channels']} channel(s), "
                         f"values in [0, 1]",
        "split_seed": run_config.get("seed"),
    }
    if sheet["fields"].get("Splits here"):
        section["splits"] = sheet["fields"]["Splits here"]
    if analysis is not None:
        section["examples"] = analysis["examples"]
    else:
        section["augmentation"] = run_config.get("augment") or "none"
    return section


def _ethics(task, evaluations, sheet):
    """The datasheet's word on sensitive data, and the worst-served groups of each runtime.

    An artifact is named only where its worst group or score differs from Keras'.
    """
    notes = [f"datasheet: {text}" for text in _quoted(sheet["fields"], "Sensitive data")]
    said = {}
    for runtime, analysis in evaluations.items():
        for label, cell in _worst_cells(task, analysis):
            line = (f"the lowest-scoring {label} is {_describe_cell(cell)} with "
                    f"{_headline(task, cell)} against {_headline(task, analysis['overall'])} "
                    "overall")
            if said.get(label) != line:
                notes.append(f"{runtime}: {line}")
                said.setdefault(label, line)
    return notes


def _caveats(run_config, task, evaluations, sheet):
    keras_analysis = evaluations["keras"]
    notes = [f"datasheet: {text}" for key in ("Known properties", "Gaps")
             for text in _quoted(sheet["fields"], key)]
    small = [cell for table in keras_analysis["intersectional"] for cell in table["cells"]
             if cell["too_small"]]
    if small:
        notes.append(f"{len(small)} intersectional cells have fewer than "
                     f"{keras_analysis['min_count']} held-out examples and are not scored "
                     f"(e.g. {_describe_cell(small[0])}, {small[0]['count']} examples); "
                     "evaluate on more data before trusting those groups")
    metric = task.headline_metrics[0]
    for runtime, analysis in evaluations.items():
        if runtime == "keras":
            continue
        gap = _largest_runtime_gap(keras_analysis, analysis, metric)
        agreement = analysis.get("agreement_with_keras")
        agreed = "" if agreement is None else f"; decisions agree with Keras on {agreement:.2%}"
        notes.append(f"{runtime}: the largest {metric} difference from Keras in any reported "
                     f"group is {gap:.4f}{agreed}")
    notes.append(f"trained {run_config.get('epochs')} epochs with the {run_config.get('config')!r} "
                 f"config; numbers hold for the {run_config['data']} held-out split only")
    return notes


def _worst_cells(task, analysis):
    """The lowest-scoring unitary group and intersectional cell that were scored."""
    metric = task.headline_metrics[0]
    tables = {"group": [cell for cells in analysis["unitary"].values() for cell in cells],
              "intersection": [cell for table in analysis["intersectional"]
                               for cell in table["cells"]]}
    found = []
    for label, cells in tables.items():
        scored = [cell for cell in cells if cell["scores"] and metric in cell["scores"]]
        if scored:
            found.append((label, min(scored, key=lambda cell: cell["scores"][metric])))
    return found


def _largest_runtime_gap(reference, analysis, metric):
    def scored(result):
        cells = [result["overall"], *(c for cells in result["unitary"].values() for c in cells),
                 *(c for table in result["intersectional"] for c in table["cells"])]
        return [cell["scores"].get(metric) if cell["scores"] else None for cell in cells]

    pairs = [(a, b) for a, b in zip(scored(reference), scored(analysis))
             if a is not None and b is not None]
    return max((abs(a - b) for a, b in pairs), default=0.0)


def _headline(task, cell):
    metric = task.headline_metrics[0]
    return f"{metric} {cell['scores'][metric]:.4f} (n={cell['count']})"


def _describe_cell(cell):
    return " & ".join(f"{name}={value}" for name, value in cell["values"].items()) or "all"


# -- the datasheet -----------------------------------------------------------------------

def _datasheet(dataset, path=None):
    """The datasheet's link and its ``- **Field:** text`` bullets."""
    from keras_cv_course.data.loaders import DATASHEET_DIR, EMBEDDED_ANNOTATIONS

    link = path
    if path is None and dataset in EMBEDDED_ANNOTATIONS:
        path = os.path.join(DATASHEET_DIR, f"{dataset}.md")
        link = f"{PACKAGE_DATASHEETS}/{dataset}.md"
    if path is None or not os.path.isfile(path):
        return {"link": None, "fields": {}}
    with open(path, encoding="utf-8") as handle:
        return {"link": link, "fields": datasheet_fields(handle.read())}


def datasheet_fields(markdown):
    """``{field: text}`` of a datasheet's bullets written ``- **Field:** text``.

    Continuation lines (indented) are joined to their bullet.
    """
    fields, current = {}, None
    for line in markdown.splitlines():
        match = re.match(r"^- \*\*([^*]+?):\*\*\s*(.*)$", line)
        if match:
            current = match.group(1)
            fields[current] = match.group(2).strip()
        elif current and line.startswith("  ") and line.strip():
            fields[current] += " " + line.strip()
        else:
            current = None
    return fields


def _quoted(fields, key):
    return [fields[key]] if fields.get(key) else []


# -- writing -----------------------------------------------------------------------------
