"""A model card as Markdown and JSON (``MODEL_CARD.md``, ``model_card.json``), written
atomically, its sections in the order of Mitchell et al. (2019)."""

import json
import os

import numpy as np

CARD_FILES = ("MODEL_CARD.md", "model_card.json")
SECTIONS = (
    ("model_details", "Model details"),
    ("intended_use", "Intended use"),
    ("factors", "Factors"),
    ("metrics", "Metrics"),
    ("evaluation_data", "Evaluation data"),
    ("training_data", "Training data"),
    ("quantitative_analyses", "Quantitative analyses"),
    ("ethical_considerations", "Ethical considerations"),
    ("caveats_and_recommendations", "Caveats and recommendations"),
)
"""The nine sections of Mitchell et al. (2019), in their order: ``(JSON key, title)``."""


def write_model_card(folder, card):
    """Writes ``MODEL_CARD.md`` and ``model_card.json`` into ``folder``, each atomically.

    Returns:
        The two paths.
    """
    paths = [os.path.join(folder, name) for name in CARD_FILES]
    texts = [card_markdown(card), json.dumps(jsonable(card), indent=2, sort_keys=False)]
    for path, text in zip(paths, texts):
        temporary = f"{path}.tmp-{os.getpid()}"
        try:
            with open(temporary, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
    return paths


def card_markdown(card):
    """The card as Markdown: one heading per section, tables for the analyses."""
    lines = [f"# {card['title']}", "",
             "Sections after Mitchell et al., \"Model Cards for Model Reporting\", FAT* 2019 "
             "(arXiv:1810.03993). Every number was measured on the held-out split.", ""]
    for number, (key, title) in enumerate(SECTIONS, start=1):
        lines += [f"## {number}. {title}", ""]
        if key == "quantitative_analyses":
            lines += _analysis_markdown(card[key], card["runtimes"])
        else:
            lines += _value_markdown(card[key])
        lines.append("")
    return "\n".join(lines).rstrip()


def _value_markdown(value, depth=0):
    indent = "  " * depth
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines += [f"{indent}- **{key}**:", *_value_markdown(item, depth + 1)]
            else:
                lines.append(f"{indent}- **{key}**: {_text(item)}")
        return lines
    if isinstance(value, list):
        return [line for item in value for line in
                (_value_markdown(item, depth) if isinstance(item, dict | list)
                 else [f"{indent}- {_text(item)}"])]
    return [f"{indent}{_text(value)}"]


def _analysis_markdown(evaluations, runtimes):
    runtimes_order = list(evaluations)
    keras_analysis = evaluations["keras"]
    metrics = list(keras_analysis["overall"]["scores"])
    columns = [f"{runtime} {metric}" for runtime in runtimes_order for metric in metrics]
    lines = ["### Overall", "",
             *_table(["runtime", "mode", "examples", *metrics, "agreement with Keras"],
                     [[runtime, runtimes[runtime]["mode"], analysis["overall"]["count"],
                       *(_number(analysis["overall"]["scores"].get(m)) for m in metrics),
                       _number(analysis.get("agreement_with_keras"))]
                      for runtime, analysis in evaluations.items()]), ""]
    per_class = keras_analysis["per_class"]
    note = per_class["note"]
    lines += ["### Per class", "", f"{note[:1].upper()}{note[1:]}.", ""]
    if per_class["rows"]:
        class_metrics = _metric_names(per_class["rows"]) or metrics
        class_columns = [f"{runtime} {metric}" for runtime in runtimes_order
                         for metric in class_metrics]
        rows = [[row["class"], row["count"],
                 *_scores(evaluations, runtimes_order, class_metrics, "per_class", index)]
                for index, row in enumerate(per_class["rows"])]
        lines += [*_table(["class", "count", *class_columns], rows), ""]
    if keras_analysis["unitary"]:
        lines += ["### Unitary: per group", "",
                  "The task's metrics (`Task.score`) on the held-out examples of each group; "
                  "the intersectional tables below do the same for each combination of groups.",
                  ""]
        rows = [[name, cell["values"][name], cell["count"],
                 *_scores(evaluations, runtimes_order, metrics, ("unitary", name), index)]
                for name, cells in keras_analysis["unitary"].items()
                for index, cell in enumerate(cells)]
        lines += [*_table(["attribute", "value", "count", *columns], rows), ""]
    for position, table in enumerate(keras_analysis["intersectional"]):
        names = table["attributes"]
        lines += [f"### Intersectional: {' x '.join(names)}", ""]
        rows = [[*(cell["values"][name] for name in names), cell["count"],
                 *_scores(evaluations, runtimes_order, metrics, ("intersectional", position),
                          index)]
                for index, cell in enumerate(table["cells"])]
        lines += [*_table([*names, "count", *columns], rows), ""]
    return lines


def _scores(evaluations, runtimes_order, metrics, where, index):
    """One cell's scores in every runtime, ``too small`` where it was not scored."""
    values = []
    for runtime in runtimes_order:
        cell = _locate(evaluations[runtime], where)[index]
        scores = cell["scores"]
        values += [_number(scores.get(metric)) if scores else "too small" for metric in metrics]
    return values


def _locate(analysis, where):
    if where == "per_class":
        return analysis["per_class"]["rows"]
    kind, key = where
    return analysis["unitary"][key] if kind == "unitary" else \
        analysis["intersectional"][key]["cells"]


def _metric_names(rows):
    for row in rows:
        if row["scores"]:
            return list(row["scores"])
    return []


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(value) for value in row) + " |" for row in rows]


def _number(value):
    return "n/a" if value is None else f"{value:.4f}"


def _text(value):
    if value is None or value == {} or value == []:
        return "none"
    return str(value)


def jsonable(value):
    """NumPy scalars and tuples -> plain JSON types, recursively."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
