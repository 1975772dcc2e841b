"""``export``: one path from a Keras model to verified deployment artifacts.

    manifest = export("runs/resnet18-1", "exported/", formats=("savedmodel", "tflite", "onnx"))

Inputs and outputs come from the model: any number, names, dtypes and
ranks. The serving signature runs the model and then its task's
postprocessing (``Task.serving_outputs``), so what a deployer gets is what
the task defines, computed inside the artifact.

Steps, in a temporary folder next to ``out_dir``:

1. write the SavedModel (the intermediate form; kept if asked for);
2. convert to each requested format;
3. verify every artifact (the gate): it loads, its input and output names
   and dtypes are right, it has no Flex or custom ops unless allowed, and
   each output on a golden batch matches Keras by the task's rule
   (``Task.compare``: ids exactly, floats within the tolerance);
4. write ``manifest.json`` with sizes, op counts and parity;
5. rename the folder into place.

Any failure removes the temporary folder, so a failed export leaves nothing
behind and an existing ``out_dir`` is untouched.
"""

import datetime
import hashlib
import os
import shutil

import keras
import numpy as np

from keras_cv_course import applications, specs
from keras_cv_course.applications.registry import EXPORT_FORMATS
from keras_cv_course.errors import KCCError
from keras_cv_course.export import converters
from keras_cv_course.export.runners import load_runner
from keras_cv_course.tasks import Task, get_task

FILE_NAMES = {"savedmodel": "saved_model", "tflite": "model.tflite", "onnx": "model.onnx"}
"""The file (or folder) each format is written to inside an export folder."""
FP32_TOLERANCE = 1e-4
GENERIC_TASK = Task()  # models outside the registry: identity serving, default parity rules


def export(model_or_run, out_dir, formats=EXPORT_FORMATS, golden_batch=None, model_name=None,
           overwrite=False, allow_flex=False, tolerance=None):
    """Exports and verifies a model; returns the manifest (also in ``manifest.json``).

    Args:
        model_or_run: a ``keras.Model``, a ``.keras`` file, or a run folder
            written by ``train``.
        out_dir: the folder to create.
        formats: any of ``"savedmodel"``, ``"tflite"``, ``"onnx"``.
        golden_batch: inputs to compare Keras and the artifacts on: an array
            for a one-input model, else ``{input name: array}``. A run folder
            supplies test inputs; otherwise the task's synthetic inputs are used.
        model_name: registry name, to look up the task, export support and
            tolerance (defaults to the run's model or the model's name).
        overwrite: replace an existing ``out_dir``.
        allow_flex: allow TFLite Flex ops (Python's LiteRT cannot run them,
            so their parity cannot be checked here).
        tolerance: fp32 parity tolerance; defaults to the registry's.

    Raises:
        KCCError: unknown or unsupported format, existing ``out_dir``, or an
            artifact that fails verification.
    """
    formats = _check_formats(formats)
    model, name, run_batch = _resolve_model(model_or_run, model_name)
    info = _registry_info(name)
    task = get_task(info.task) if info else GENERIC_TASK
    _check_supported(info, name, formats)
    if os.path.exists(out_dir) and not overwrite:
        raise KCCError(f"export folder {out_dir!r} exists; pass overwrite=True (--overwrite)")
    golden = golden_inputs(model, task, golden_batch if golden_batch is not None else run_batch)
    tolerance = tolerance or (info.parity_tolerance if info else FP32_TOLERANCE)
    staging = _staging_dir(out_dir)
    try:
        manifest = _build_artifacts(model, name, task, staging, formats, golden, tolerance,
                                    allow_flex)
        _write_json(os.path.join(staging, "manifest.json"), manifest)
        _move_into_place(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _check_formats(formats):
    formats = tuple(formats)
    unknown = [fmt for fmt in formats if fmt not in EXPORT_FORMATS]
    if unknown or not formats:
        raise KCCError(f"formats must be some of {EXPORT_FORMATS}, got {formats}")
    return formats


def _resolve_model(model_or_run, model_name):
    """A model, its registry name and (for runs) golden inputs from the test split."""
    from keras_cv_course.runs import load_keras_file, load_run

    if isinstance(model_or_run, keras.Model):
        return model_or_run, model_name or model_or_run.name, None
    path = str(model_or_run)
    if os.path.isdir(path):
        run = load_run(path)
        return run.model, model_name or run.config["model"], run.bundle.golden_batch(8)
    model = load_keras_file(path)
    return model, model_name or model.name, None


def _registry_info(name):
    return applications.get_info(name) if name in applications.list_models() else None


def _check_supported(info, name, formats):
    for fmt in formats:
        if info is not None and not info.supports_export(fmt):
            raise KCCError(f"{name} cannot be exported to {fmt}: {info.unsupported_exports[fmt]}")


def golden_inputs(model, task, batch=None):
    """The golden batch as ``{input name: array}``, checked against the model's inputs.

    Args:
        model: the Keras model.
        task: its task; without ``batch`` its synthetic inputs are used.
        batch: an array (one-input models) or a dict of arrays, or ``None``.

    Raises:
        KCCError: a missing input, or a shape that the model does not take.
    """
    model_specs = specs.specs_of_model_inputs(model)
    if batch is None:
        batch, _ = task.synthetic_batch(model, batch_size=4, seed=0)
    if not isinstance(batch, dict):
        if len(model_specs) != 1:
            raise KCCError(f"golden batch must be a dict with keys "
                           f"{[spec.name for spec in model_specs]}")
        batch = {model_specs[0].name: batch}
    golden = {}
    for spec in model_specs:
        if spec.name not in batch:
            raise KCCError(f"golden batch is missing input {spec.name!r}; it has {sorted(batch)}")
        value = np.asarray(batch[spec.name], dtype=spec.dtype)
        fits = value.ndim == len(spec.shape) + 1 and all(
            s is None or s == v for s, v in zip(spec.shape, value.shape[1:]))
        if not fits:
            raise KCCError(f"golden batch {spec.name!r} must have shape (batch, "
                           f"{', '.join(str(s) for s in spec.shape)}), got {value.shape}")
        golden[spec.name] = value
    return golden


def serving_function(model, task):
    """The serving signature's function: ``{input name: tensor} -> {output name: tensor}``.

    It calls the model in inference mode, names its outputs, then applies the
    task's postprocessing. The same function makes the Keras reference and
    the SavedModel endpoint, so the gate compares like with like.
    """
    input_names = [spec.name for spec in specs.specs_of_model_inputs(model)]
    output_names = converters.model_output_names(model)

    def serve(inputs):
        arguments = inputs[input_names[0]] if len(input_names) == 1 else dict(inputs)
        outputs = converters.output_dict(model(arguments, training=False), output_names)
        return task.serving_outputs(model, outputs)

    return serve


def _staging_dir(out_dir):
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    name = os.path.basename(os.path.abspath(out_dir))
    staging = os.path.join(parent, f".{name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    return staging


def _build_artifacts(model, name, task, staging, formats, golden, tolerance, allow_flex):
    serve = serving_function(model, task)
    reference = {key: keras.ops.convert_to_numpy(value) for key, value in serve(golden).items()}
    savedmodel_dir = os.path.join(staging, FILE_NAMES["savedmodel"])
    converters.write_savedmodel(model, savedmodel_dir, serve,
                                specs.specs_of_model_inputs(model))
    artifacts = {}
    for fmt in formats:
        path = os.path.join(staging, FILE_NAMES[fmt])
        if fmt == "tflite":
            converters.savedmodel_to_tflite(savedmodel_dir, path, allow_flex)
        elif fmt == "onnx":
            converters.savedmodel_to_onnx(savedmodel_dir, path)
        artifacts[fmt] = verify_artifact(fmt, path, golden, reference, tolerance, allow_flex,
                                         task)
    if "savedmodel" not in formats:
        shutil.rmtree(savedmodel_dir)
    return _manifest(name, task, golden, reference, artifacts)


def verify_artifact(fmt, path, golden, reference, tolerance, allow_flex=False, task=None):
    """The verification gate for one artifact; returns its manifest entry.

    Args:
        fmt: ``"savedmodel"``, ``"tflite"`` or ``"onnx"``.
        path: the artifact.
        golden: ``{input name: array}`` (an array for one input).
        reference: ``{output name: array}``, Keras' outputs on ``golden``.
        tolerance: the fp32 tolerance of float outputs.
        allow_flex: accept TFLite Flex and custom ops.
        task: the task whose ``compare`` judges each output.

    Raises:
        KCCError: the artifact does not load, has Flex or custom ops, has
            the wrong input or output names or dtypes, or an output fails
            the task's parity rule.
    """
    task = task or GENERIC_TASK
    runner = load_runner(fmt, path)
    ops = runner.op_counts()
    foreign = [op for op in ops if op.startswith("Flex") or op == "CUSTOM"]
    if foreign and not allow_flex:
        raise KCCError(f"{fmt} artifact uses Flex or custom ops: {foreign[:5]}")
    golden = golden if isinstance(golden, dict) else {runner.input_names[0]: golden}
    _check_inputs(fmt, runner, golden)
    outputs = runner(golden)
    _check_outputs(fmt, outputs, reference)
    checks = {key: task.compare(key, outputs[key], reference[key], tolerance)
              for key in reference}
    failed = {key: check for key, check in checks.items() if not check["passed"]}
    if failed:
        key, check = next(iter(failed.items()))
        raise KCCError(f"{fmt} artifact differs from Keras: output {key!r} error "
                       f"{check['error']:.3g} ({check['rule']}, tolerance {tolerance:g})")
    return {"path": os.path.basename(path), "bytes": _size_of(path), "ops": ops,
            "op_count": sum(ops.values()),
            "parity": {"errors": {key: check["error"] for key, check in checks.items()},
                       "rules": {key: check["rule"] for key, check in checks.items()},
                       "tolerance": tolerance, "passed": True}}


def _check_inputs(fmt, runner, golden):
    expected = {name: np.dtype(value.dtype).name for name, value in golden.items()}
    if runner.input_dtypes() != expected:
        raise KCCError(f"{fmt} inputs are {runner.input_dtypes()}, expected {expected}")


def _check_outputs(fmt, outputs, reference):
    if sorted(outputs) != sorted(reference):
        raise KCCError(f"{fmt} outputs are {sorted(outputs)}, expected {sorted(reference)}")
    for key, value in reference.items():
        have, want = np.asarray(outputs[key]).dtype, np.asarray(value).dtype
        if have != want:
            raise KCCError(f"{fmt} output {key!r} is {have}, expected {want}")


def _manifest(name, task, golden, reference, artifacts):
    import tensorflow as tf

    digest = hashlib.sha256()
    for key in sorted(golden):
        digest.update(np.ascontiguousarray(golden[key]).tobytes())
    return {
        "model": name,
        "task": task.name,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "versions": {"keras": keras.__version__, "tensorflow": tf.__version__},
        "inputs": _describe(golden),
        "outputs": _describe(reference),
        "golden_batch": {"shapes": {key: list(value.shape) for key, value in golden.items()},
                         "sha256": digest.hexdigest()},
        "artifacts": artifacts,
    }


def _describe(arrays):
    """``{name: {"shape": [None, ...], "dtype": ...}}`` of a batch of arrays."""
    return {key: {"shape": [None, *np.shape(value)[1:]], "dtype": str(np.asarray(value).dtype)}
            for key, value in arrays.items()}


def _size_of(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, files in os.walk(path) for name in files)


def _write_json(path, payload):
    import json

    with open(path, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2)


def _move_into_place(staging, out_dir):
    """Renames the finished folder into place, replacing ``out_dir`` last."""
    retired = None
    if os.path.exists(out_dir):
        retired = f"{staging}.old"
        os.replace(out_dir, retired)
    os.replace(staging, out_dir)
    if retired:
        shutil.rmtree(retired, ignore_errors=True)
