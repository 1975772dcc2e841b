"""The model catalogue: full-size statistics, ``kcc info`` and the README's model table.

The README's table is generated from the registry (``scripts/make_readme_table.py``),
and ``tests/test_readme.py`` fails when it is stale.
"""

import keras

from keras_cv_course.applications.flops import flops
from keras_cv_course.applications.registry import (
    CONFIGS,
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
        stats[name] = model_stats(name, model)
        del model
        keras.backend.clear_session()
    return stats


def model_stats(name, model):
    """``{"params", "gmacs"}``: every trained weight (a GAN's discriminator too), and the
    multiply-accumulates of one pass of the served network (``Task.serving_model``: a
    generator, a denoiser step) for one example."""
    from keras_cv_course.tasks import get_task

    served = get_task(get_info(name).task).serving_model(model)
    return {"params": parameter_count(model), "gmacs": flops(served).gmacs}


def describe(name):
    """What ``kcc info NAME`` prints: paper, size, specs, configs, exports, weights.

    Builds the full-size model once (nothing runs) to count its parameters
    and multiply-accumulates at its reference input.
    """
    from keras_cv_course.specs import specs_of_model_inputs
    from keras_cv_course.tasks import get_task

    info = get_info(name)
    model = build_full(name)
    stats = model_stats(name, model)
    reference = (f"{info.reference_params:,}, {info.params_source}"
                 if info.reference_params else f"none: {info.params_source}")
    lines = [f"{name}: {info.description or info.family}",
             f"  task        {info.task}; family {info.family}",
             f"  paper       {info.paper or '-'}",
             f"  parameters  {stats['params']:,} (reference {reference})",
             f"  GMACs       {stats['gmacs']:.3f} per example at the full config's input"]
    served = get_task(info.task).serving_model(model)
    lines += [f"  input       {spec.describe()}" for spec in specs_of_model_inputs(served)]
    lines += [f"  output      {spec.describe()}: {spec.description}" for spec in info.outputs]
    lines += [f"  config      {which}: {_arguments(info.config(which))}" for which in CONFIGS]
    lines += [f"  export      {fmt}: " + ("yes" if info.supports_export(fmt)
                                         else f"no, {info.unsupported_exports[fmt]}")
              for fmt in EXPORT_FORMATS]
    weights = info.fact("pretrained") or ()
    lines.append("  pretrained  " + (", ".join(weights) + " (moved from keras.applications; "
                                     "needs a download)" if weights else "none: random init"))
    lines += [f"  fact        {key}: {value}" for key, value in sorted(info.facts.items())
              if key != "pretrained"]
    del model
    keras.backend.clear_session()
    return lines


def _arguments(config):
    return ", ".join(f"{key}={value!r}" for key, value in config.items()) or "(builder defaults)"


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
