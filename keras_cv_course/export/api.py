"""``export``: one path from a Keras model to verified deployment artifacts.

    manifest = export("runs/resnet18-1", "exported/", formats=("savedmodel", "tflite", "onnx"))

Steps, in a temporary folder next to ``out_dir``:

1. write the SavedModel (the intermediate form; kept if asked for);
2. convert to each requested format;
3. verify every artifact (the gate): it loads, its input and output names
   and dtypes are right, it has no Flex or custom ops unless allowed, and
   its outputs on a golden batch match Keras within the tolerance;
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

from keras_cv_course import applications
from keras_cv_course.applications.registry import EXPORT_FORMATS
from keras_cv_course.errors import KCCError
from keras_cv_course.export import converters
from keras_cv_course.export.runners import load_runner

FILE_NAMES = {"savedmodel": "saved_model", "tflite": "model.tflite", "onnx": "model.onnx"}
FP32_TOLERANCE = 1e-4


def export(model_or_run, out_dir, formats=EXPORT_FORMATS, golden_batch=None, model_name=None,
           overwrite=False, allow_flex=False, tolerance=None):
    """Exports and verifies a model; returns the manifest (also in ``manifest.json``).

    Args:
        model_or_run: a ``keras.Model``, a ``.keras`` file, or a run folder
            written by ``train``.
        out_dir: the folder to create.
        formats: any of ``"savedmodel"``, ``"tflite"``, ``"onnx"``.
        golden_batch: images to compare Keras and the artifacts on; a run
            folder supplies test images, otherwise a seeded random batch in
            [0, 1] is used.
        model_name: registry name, to look up export support and tolerance
            (defaults to the run's model or the model's name).
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
    _check_supported(info, name, formats)
    if os.path.exists(out_dir) and not overwrite:
        raise KCCError(f"export folder {out_dir!r} exists; pass overwrite=True (--overwrite)")
    golden = _golden(model, golden_batch if golden_batch is not None else run_batch)
    tolerance = tolerance or (info.parity_tolerance if info else FP32_TOLERANCE)
    staging = _staging_dir(out_dir)
    try:
        manifest = _build_artifacts(model, name, staging, formats, golden, tolerance, allow_flex)
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
    from keras_cv_course.training.run_folder import RunFolder, load_keras_file

    if isinstance(model_or_run, keras.Model):
        return model_or_run, model_name or model_or_run.name, None
    path = str(model_or_run)
    if os.path.isdir(path):
        from keras_cv_course.data import load_dataset

        run = RunFolder(path)
        config = run.read_config()
        model = run.load_model()
        bundle = load_dataset(config["data"], config["task"], config["image_size"],
                              config["channels"], config["seed"])
        return model, model_name or config["model"], bundle.golden_batch(8)
    model = load_keras_file(path)
    return model, model_name or model.name, None


def _registry_info(name):
    return applications.get_info(name) if name in applications.list_models() else None


def _check_supported(info, name, formats):
    for fmt in formats:
        if info is not None and not info.supports_export(fmt):
            raise KCCError(f"{name} cannot be exported to {fmt}: {info.unsupported_exports[fmt]}")


def _golden(model, batch):
    shape = tuple(model.input_shape[1:])
    if batch is None:
        batch = np.random.default_rng(0).uniform(0, 1, (4, *shape))
    batch = np.asarray(batch, dtype="float32")
    if tuple(batch.shape[1:]) != shape:
        raise KCCError(f"golden batch must have image shape {shape}, got {tuple(batch.shape[1:])}")
    return batch


def _staging_dir(out_dir):
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    name = os.path.basename(os.path.abspath(out_dir))
    staging = os.path.join(parent, f".{name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    return staging


def _build_artifacts(model, name, staging, formats, golden, tolerance, allow_flex):
    reference = converters.output_dict(model(golden, training=False),
                                       converters.model_output_names(model))
    reference = {key: keras.ops.convert_to_numpy(value) for key, value in reference.items()}
    savedmodel_dir = os.path.join(staging, FILE_NAMES["savedmodel"])
    converters.write_savedmodel(model, savedmodel_dir)
    artifacts = {}
    for fmt in formats:
        path = os.path.join(staging, FILE_NAMES[fmt])
        if fmt == "tflite":
            converters.savedmodel_to_tflite(savedmodel_dir, path, allow_flex)
        elif fmt == "onnx":
            converters.savedmodel_to_onnx(savedmodel_dir, path)
        artifacts[fmt] = verify_artifact(fmt, path, golden, reference, tolerance, allow_flex)
    if "savedmodel" not in formats:
        shutil.rmtree(savedmodel_dir)
    return _manifest(model, name, golden, reference, artifacts)


def verify_artifact(fmt, path, golden, reference, tolerance, allow_flex=False):
    """The verification gate for one artifact; returns its manifest entry.

    Raises:
        KCCError: the artifact does not load, has Flex or custom ops, has
            the wrong output names or dtypes, or misses the tolerance.
    """
    runner = load_runner(fmt, path)
    ops = runner.op_counts()
    foreign = [op for op in ops if op.startswith("Flex") or op == "CUSTOM"]
    if foreign and not allow_flex:
        raise KCCError(f"{fmt} artifact uses Flex or custom ops: {foreign[:5]}")
    outputs = runner(golden)
    if sorted(outputs) != sorted(reference):
        raise KCCError(f"{fmt} outputs are {sorted(outputs)}, expected {sorted(reference)}")
    errors = {key: parity_error(outputs[key], reference[key]) for key in reference}
    worst = max(errors.values())
    if not worst <= tolerance:
        raise KCCError(f"{fmt} artifact differs from Keras: error {worst:.3g} "
                       f"> tolerance {tolerance:g}")
    return {"path": os.path.basename(path), "bytes": _size_of(path), "ops": ops,
            "op_count": sum(ops.values()), "parity": {"errors": errors, "tolerance": tolerance,
                                                       "passed": True}}


def parity_error(actual, expected):
    """Max absolute difference, relative to the output's scale when above 1.

    ``max|a - b| / max(1, max|b|)``: an absolute error for probabilities
    and small outputs, a relative one for large logits.
    """
    actual = np.asarray(actual, dtype="float64")
    expected = np.asarray(expected, dtype="float64")
    if actual.shape != expected.shape:
        return float("inf")
    scale = max(1.0, float(np.max(np.abs(expected))) if expected.size else 1.0)
    return float(np.max(np.abs(actual - expected)) / scale) if expected.size else 0.0


def _manifest(model, name, golden, reference, artifacts):
    import tensorflow as tf

    return {
        "model": name,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "versions": {"keras": keras.__version__, "tensorflow": tf.__version__},
        "input": {"name": "images", "shape": [None, *model.input_shape[1:]], "dtype": "float32"},
        "outputs": {key: {"shape": [None, *value.shape[1:]], "dtype": str(value.dtype)}
                    for key, value in reference.items()},
        "golden_batch": {"shape": list(golden.shape),
                         "sha256": hashlib.sha256(golden.tobytes()).hexdigest()},
        "artifacts": artifacts,
    }


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
