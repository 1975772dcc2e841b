"""``export``: one path from a Keras model to verified deployment artifacts.

    manifest = export("runs/resnet18-1", "exported/", formats=("savedmodel", "tflite", "onnx"))

Inputs and outputs come from the model (the network its task serves,
``Task.serving_model``: a GAN's generator, a diffusion model's denoiser):
any number, names, dtypes and ranks. A model served as several networks
(``Task.serving_parts``: a captioner's image encoder and one-step decoder)
has each exported and verified on its own, in a folder named after it
(``export/encoder/model.tflite``, ``export/decoder/model.tflite``), and the
manifest lists them under ``parts``. The serving signature runs the model and then its task's
postprocessing (``Task.serving_outputs``), so what a deployer gets is what
the task defines, computed inside the artifact.

Steps, in a temporary folder next to ``out_dir``:

1. write the SavedModel (the intermediate form; kept if asked for);
2. convert to each requested format;
3. verify every artifact (the gate): it loads, its input and output names
   and dtypes are right, it has no Flex or custom ops unless allowed, and
   each output on a golden batch matches Keras by the task's rule
   (``Task.compare``: ids exactly, floats within the tolerance);
4. write ``manifest.json`` with sizes, op counts and parity, and, for a run
   folder, the model card (``MODEL_CARD.md``, ``model_card.json``: Mitchell
   et al. 2019, with per-class and per-group analyses for Keras and every
   artifact; ``export.model_card``);
5. rename the folder into place.

Any failure removes the temporary folder, so a failed export leaves nothing
behind and an existing ``out_dir`` is untouched; a full disk says so. The
temporary folders of exports that were killed are removed by the next
export to the same place. Two exports to one folder at once end with one
complete export: the rename into place happens under a lock, and the export
that finds the folder already written (without ``overwrite``) stops with a
one-line error.
"""

import dataclasses
import datetime
import errno
import hashlib
import os
import shutil

import keras
import numpy as np

from keras_cv_course import applications, specs
from keras_cv_course.applications.registry import EXPORT_FORMATS
from keras_cv_course.errors import KCCError
from keras_cv_course.export import converters, gate
from keras_cv_course.export import quantize as quantize_module
from keras_cv_course.export.bench import size_of
from keras_cv_course.export.model_card import write_card_for_export
from keras_cv_course.export.runners import load_runner
from keras_cv_course.export.staging import move_into_place, staging_dir
from keras_cv_course.tasks import Task, get_task

FILE_NAMES = {"savedmodel": "saved_model", "tflite": "model.tflite", "onnx": "model.onnx"}
"""The file (or folder) each format is written to inside an export folder."""
FP32_TOLERANCE = 1e-4
GENERIC_TASK = Task()  # models outside the registry: identity serving, default parity rules


def export(model_or_run, out_dir=None, formats=None, golden_batch=None,
           model_name=None, overwrite=False, allow_flex=False, tolerance=None, quantize=None,
           calibration=None, evaluation_data=None, serving_options=None):
    """Exports and verifies a model; returns the manifest (also in ``manifest.json``).

    Args:
        model_or_run: a ``keras.Model``, a ``.keras`` file, or a run folder
            written by ``train``.
        out_dir: the folder to create; for a run folder or file it defaults
            to ``RUN/export`` (``RUN/export-MODE`` when quantized).
        formats: any of ``"savedmodel"``, ``"tflite"``, ``"onnx"``; by default
            all three, or the quantized formats of ``quantize``'s mode.
        golden_batch: inputs to compare Keras and the artifacts on: an array
            for a one-input model, else ``{input name: array}``. A run folder
            supplies test inputs; otherwise the task's synthetic inputs are used.
        model_name: registry name, to look up the task, export support and
            tolerance (defaults to the run's model or the model's name).
        overwrite: replace an existing ``out_dir``.
        allow_flex: allow TFLite Flex ops (Python's LiteRT cannot run them,
            so their parity cannot be checked here).
        tolerance: fp32 parity tolerance; defaults to the registry's.
        quantize: ``None`` (float32), a mode of ``quantize.QUANTIZE_MODES``
            (``"fp16"``, ``"dynamic"``, ``"int8"``, ``"int8-io"``, ``"16x8"``,
            ``"qat"``, ``"prune"``, ``"cluster"``), or ``QuantizeOptions``.
            Every mode but fp16 is gated by the task's metric on held-out data.
        calibration: int8 calibration inputs (an array or ``{input name:
            array}``); a run folder draws them from its training split.
        evaluation_data: ``(inputs, targets)`` held out, for the metric gate;
            a run folder uses its test split.
        serving_options: settings of the task's serving graph, one of its
            ``Task.serving_options`` (a detector's ``max_detections``,
            ``score_threshold``, ``iou_threshold``).

    Raises:
        KCCError: unknown or unsupported format or mode, existing ``out_dir``,
            or an artifact that fails verification (saying by how much).
    """
    options = quantize_module.options_of(quantize)
    formats = _check_formats(quantize_module.default_formats(options) if formats is None
                             else formats)
    quantize_module.check_mode(options, formats)
    model, name, run = _resolve_model(model_or_run, model_name)
    info = _registry_info(name)
    task = get_task(info.task) if info else GENERIC_TASK
    _check_supported(info, name, formats, options)
    out_dir = out_dir or default_folder(model_or_run, options)
    if os.path.exists(out_dir) and not overwrite:
        raise KCCError(f"export folder {out_dir!r} exists; pass overwrite=True (--overwrite)")
    trained, parts = model, task.serving_parts(model)
    if len(parts) > 1 and (options is not None or golden_batch is not None):
        raise KCCError(f"{name} serves {len(parts)} networks ({', '.join(parts)}); quantized "
                       "export and a golden batch of one's own take single-network models only")
    tolerance = tolerance or (info.parity_tolerance if info else FP32_TOLERANCE)
    staging = staging_dir(out_dir)
    try:
        built = {}
        for part, network in parts.items():
            golden = golden_inputs(network, task, golden_batch if golden_batch is not None else
                                   _data_golden_batch(run, task, trained, network))
            serve = serving_function(network, task, serving_options)
            plan = _quantization_plan(options, network, task, run, calibration,
                                      evaluation_data, serve)
            folder = staging if len(parts) == 1 else os.path.join(staging, part)
            os.makedirs(folder, exist_ok=True)
            built[part] = _build_artifacts(network, name, task, folder, formats, golden,
                                           tolerance, allow_flex, plan, serve)
        manifest = _combined_manifest(built)
        manifest["serving_options"] = dict(serving_options or {})
        manifest.update(task.export_record(trained))
        _write_json(os.path.join(staging, "manifest.json"), manifest)
        if run is not None and info is not None and task.can_score():
            write_card_for_export(run, staging)
        move_into_place(staging, out_dir, overwrite)
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        kept = "the previous export is intact" if os.path.exists(out_dir) else \
            "nothing was written"
        raise KCCError(f"disk full while exporting to {out_dir!r}; {kept}") from None
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
    """A model, its registry name and (for run folders) the ``LoadedRun``."""
    from keras_cv_course.runs import load_keras_file, load_run

    if isinstance(model_or_run, keras.Model):
        return model_or_run, model_name or model_or_run.name, None
    path = str(model_or_run)
    if os.path.isdir(path):
        run = load_run(path)
        return run.model, model_name or run.config["model"], run
    model = load_keras_file(path)
    return model, model_name or model.name, None


def default_folder(model_or_run, options=None):
    """``RUN/export`` or ``RUN/export-MODE`` (beside a ``.keras`` file: the same names).

    Raises:
        KCCError: an in-memory model, which has no folder to export beside.
    """
    if isinstance(model_or_run, keras.Model):
        raise KCCError("export of an in-memory model needs out_dir")
    path = str(model_or_run)
    base = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    return os.path.join(base, f"export-{options.mode}" if options else "export")


def _registry_info(name):
    return applications.get_info(name) if name in applications.list_models() else None


def _check_supported(info, name, formats, options=None):
    for fmt in formats:
        if info is not None and not info.supports_export(fmt):
            raise KCCError(f"{name} cannot be exported to {fmt}: {info.unsupported_exports[fmt]}")
    if info is not None and options is not None and options.mode in info.unsupported_quantize:
        raise KCCError(f"{name} cannot be quantized to {options.mode}: "
                       f"{info.unsupported_quantize[options.mode]}")


def _data_golden_batch(run, task, trained, network):
    """A run's test inputs, when the served network takes what the model trained on.

    A generator serves latents, not the images of its data; its golden batch
    is then the task's synthetic one (``None`` here)."""
    if run is None:
        return None
    served = [spec.name for spec in specs.specs_of_model_inputs(network)]
    if served != [spec.name for spec in task.training_inputs(trained)]:
        return None
    return run.bundle.golden_batch(8)


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


def serving_function(model, task, options=None):
    """The serving signature's function: ``{input name: tensor} -> {output name: tensor}``.

    It calls the model in inference mode, names its outputs, then applies the
    task's postprocessing with ``options`` (``Task.serving_options``). The
    same function makes the Keras reference and the SavedModel endpoint, so
    the gate compares like with like.

    Raises:
        KCCError: an option the task does not take.
    """
    options = dict(options or {})
    unknown = sorted(set(options) - set(task.serving_options))
    if unknown:
        raise KCCError(f"task {task.name!r} takes serving options "
                       f"{list(task.serving_options) or 'none'}; got {unknown}")
    input_names = [spec.name for spec in specs.specs_of_model_inputs(model)]
    output_names = converters.model_output_names(model)

    def serve(inputs):
        arguments = inputs[input_names[0]] if len(input_names) == 1 else dict(inputs)
        outputs = converters.output_dict(model(arguments, training=False), output_names)
        return task.serving_outputs(model, outputs, **options)

    return serve


@dataclasses.dataclass
class QuantizationPlan:
    """A quantized export's mode and data: calibration inputs, held-out data, training data."""

    options: quantize_module.QuantizeOptions
    task: object
    calibration: dict | None
    held_out: gate.HeldOut | None
    train_data: object = None


def _quantization_plan(options, model, task, run, calibration, evaluation_data, serve):
    """Gathers what ``options`` needs, before anything is written.

    Raises:
        KCCError: a needed piece of data is missing.
    """
    if options is None:
        return None
    mode = options.mode
    if run is None and (evaluation_data is None or (
            mode in quantize_module.CALIBRATED_MODES + ("dynamic",) and calibration is None)):
        raise KCCError(f"quantize={mode!r} of a model without a run folder needs calibration "
                       "images and evaluation_data=(inputs, targets) to gate on")
    if mode in quantize_module.TRAINED_MODES and run is None:
        raise KCCError(f"quantize={mode!r} fine-tunes on a run's training split; export a run "
                       "folder")
    if calibration is None and run is not None:
        calibration = gate.split_arrays(run.bundle, "train", options.samples * 4)[0]
    if calibration is not None:
        calibration = quantize_module.calibration_inputs(
            golden_inputs(model, task, calibration), options.samples)
    inputs, targets = evaluation_data or gate.split_arrays(run.bundle, "test")
    held = gate.held_out(task, serve, golden_inputs(model, task, inputs),
                         targets)
    train_data = _training_pipeline(run) if mode in quantize_module.TRAINED_MODES else None
    return QuantizationPlan(options, task, calibration, held, train_data)


def _training_pipeline(run):
    from keras_cv_course.data import pipeline

    return pipeline(run.bundle.train, run.config["batch_size"], training=True,
                    seed=run.config.get("seed", 0), drop_remainder=True)


def _build_artifacts(model, name, task, staging, formats, golden, tolerance, allow_flex,
                     plan, serve):
    reference = {key: keras.ops.convert_to_numpy(value) for key, value in serve(golden).items()}
    savedmodel_dir = os.path.join(staging, FILE_NAMES["savedmodel"])
    converters.write_savedmodel(model, savedmodel_dir, serve,
                                specs.specs_of_model_inputs(model), task.serving_batch_size)
    mode = plan.options.mode if plan else None
    artifacts = {}
    for fmt in formats:
        path = os.path.join(staging, FILE_NAMES[fmt])
        if fmt == "tflite":
            _write_tflite(model, savedmodel_dir, path, allow_flex, plan)
        elif fmt == "onnx":
            _write_onnx(savedmodel_dir, path, plan)
        gated = plan.held_out if mode in gate.GATED_MODES and fmt != "savedmodel" else None
        artifacts[fmt] = verify_artifact(fmt, path, golden, reference, _tolerance(
            fmt, mode, tolerance), allow_flex, task, mode=mode, held_out=gated)
    if "savedmodel" not in formats:
        shutil.rmtree(savedmodel_dir)
    manifest = _manifest(name, task, golden, reference, artifacts)
    manifest["quantize"] = dataclasses.asdict(plan.options) if plan else None
    return manifest


def _combined_manifest(built):
    """One network's manifest as it is; several networks' as ``parts`` under shared fields.

    Each part's artifacts lie in a folder named after the part
    (``encoder/model.tflite``); its entry keeps its own inputs, outputs,
    golden batch and artifacts."""
    if len(built) == 1:
        return next(iter(built.values()))
    first = next(iter(built.values()))
    shared = ("model", "task", "created", "versions", "quantize")
    return {**{key: first[key] for key in shared},
            "parts": {part: {key: value for key, value in manifest.items() if key not in shared}
                      for part, manifest in built.items()}}


def _tolerance(fmt, mode, tolerance):
    return gate.FP16_TOLERANCE if mode == "fp16" and fmt != "savedmodel" else tolerance


def _write_tflite(model, savedmodel_dir, path, allow_flex, plan):
    options = plan.options if plan else None
    if options is None or options.mode in quantize_module.PTQ_MODES:
        configure = options and quantize_module.tflite_options(options.mode, plan.calibration,
                                                               options.io_dtype)
        converters.savedmodel_to_tflite(savedmodel_dir, path, allow_flex, configure or None)
        return
    flatbuffer, _ = _train_on_twin(model, plan)
    with open(path, "wb") as handle:
        handle.write(flatbuffer)


def _train_on_twin(model, plan):
    """QAT, pruning or clustering on the tf_keras twin (``export.trained``)."""
    from keras_cv_course.export import trained

    options, task = plan.options, plan.task
    common = dict(epochs=options.epochs, learning_rate=options.fine_tune_rate(),
                  loss=getattr(task.loss(model=model), "name", "sparse_categorical_crossentropy"))
    if options.mode == "qat":
        return trained.quantization_aware(model, plan.train_data,
                                          representative_data=plan.calibration, **common)
    if options.mode == "prune":
        return trained.magnitude_pruning(model, plan.train_data,
                                         target_sparsity=options.sparsity, **common)
    return trained.weight_clustering(model, plan.train_data, clusters=options.clusters, **common)


def _write_onnx(savedmodel_dir, path, plan):
    if plan is None:
        converters.savedmodel_to_onnx(savedmodel_dir, path)
        return
    float_path = f"{path}.float.onnx"
    converters.savedmodel_to_onnx(savedmodel_dir, float_path)
    try:
        quantize_module.quantize_onnx(float_path, path, plan.options.mode, plan.calibration,
                                      plan.options.per_channel)
    finally:
        os.remove(float_path)


def verify_artifact(fmt, path, golden, reference, tolerance, allow_flex=False, task=None,
                    mode=None, held_out=None):
    """The verification gate for one artifact; returns its manifest entry.

    Args:
        fmt: ``"savedmodel"``, ``"tflite"`` or ``"onnx"``.
        path: the artifact.
        golden: ``{input name: array}`` (an array for one input).
        reference: ``{output name: array}``, Keras' outputs on ``golden``.
        tolerance: the fp32 tolerance of float outputs.
        allow_flex: accept TFLite Flex and custom ops.
        task: the task whose ``compare`` judges each output.
        mode: the quantization mode, for the manifest and messages.
        held_out: a ``gate.HeldOut``: judge by the task's metric on it
            (``Task.quantized_rule``) instead of by parity on ``golden``,
            whose errors are then only recorded.

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
    try:
        outputs = runner(golden)
    except Exception as error:  # noqa: BLE001 - each runtime raises its own types
        raise KCCError(f"{fmt} {mode or 'fp32'} artifact does not run in its runtime: "
                       f"{' '.join(str(error).split())[:200]}") from None
    _check_outputs(fmt, outputs, reference)
    checks = task.compare_outputs(outputs, reference, tolerance)
    failed = {key: check for key, check in checks.items() if not check["passed"]}
    if failed and held_out is None:
        key, check = next(iter(failed.items()))
        raise KCCError(f"{fmt} {mode or 'fp32'} artifact differs from Keras: output {key!r} "
                       f"error {check['error']:.3g} ({check['rule']}, tolerance {tolerance:g})")
    entry = {"path": os.path.basename(path), "bytes": size_of(path), "ops": ops,
             "op_count": sum(ops.values()), "mode": mode or "fp32",
             "parity": {"errors": {key: check["error"] for key, check in checks.items()},
                        "rules": {key: check["rule"] for key, check in checks.items()},
                        "tolerance": tolerance, "passed": not failed}}
    if held_out is not None:
        entry["gate"] = gate.judge(fmt, mode, runner, task, held_out)
    if fmt == "tflite" and mode is not None:
        entry["io_quantization"] = quantize_module.io_quantization(path)
    return entry


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


def _write_json(path, payload):
    import json

    with open(path, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2)
