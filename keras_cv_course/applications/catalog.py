"""The model catalogue: full-size statistics and the README's model table.

The README's table is generated from the registry (``scripts/make_readme_table.py``),
and ``tests/test_readme.py`` fails when it is stale.
"""

import keras

from keras_cv_course.applications.flops import flops
from keras_cv_course.applications.registry import (
    EXPORT_FORMATS,
    build_full,
    get_info,
    list_models,
    parameter_count,
)

TABLE_START = "<!-- model-table:start -->"
TABLE_END = "<!-- model-table:end -->"


def full_size_stats(names=None):
    """Builds each full-size model once: ``{name: {"params": n, "gmacs": g}}``.

    Building a full-size model only allocates its weights; nothing runs.
    GMACs are multiply-accumulates of one example, in billions.
    """
    stats = {}
    for name in names or list_models():
        model = build_full(name)
        stats[name] = {"params": parameter_count(model), "gmacs": flops(model).gmacs}
        del model
        keras.backend.clear_session()
    return stats


def reference_matches(info, params):
    """True when ``params`` equals the reference at the reference's precision."""
    if info.reference_params is None:
        return True
    precision = info.params_precision
    return round(params / precision) == round(info.reference_params / precision)


def markdown_table(stats):
    """The README model table as Markdown lines."""
    header = ("| model | task | paper | params (ours) | reference params | source | GMACs | "
              "top-1 | " + " | ".join(EXPORT_FORMATS) + " |")
    lines = [header, "|" + "---|" * (8 + len(EXPORT_FORMATS))]
    for name in sorted(stats):
        info = get_info(name)
        reference = f"{info.reference_params:,}" if info.reference_params else "-"
        exports = ["yes" if info.supports_export(fmt) else "no" for fmt in EXPORT_FORMATS]
        paper = info.paper.split(". ")[0] if info.paper else "-"
        top1 = info.fact("imagenet_top1")
        top1 = f"{top1:.1f}" if top1 else "-"
        lines.append(f"| `{name}` | {info.task} | {paper} | {stats[name]['params']:,} | "
                     f"{reference} | {info.params_source} | {stats[name]['gmacs']:.3f} | "
                     f"{top1} | " + " | ".join(exports) + " |")
    return lines


def replace_table(readme_text, stats):
    """Returns the README text with its model table regenerated."""
    start = readme_text.index(TABLE_START) + len(TABLE_START)
    end = readme_text.index(TABLE_END)
    return readme_text[:start] + "\n" + "\n".join(markdown_table(stats)) + "\n" + readme_text[end:]
