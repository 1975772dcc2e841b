"""The export path: atomic writes, the verification gate, manifests, bad input."""

import json
import os

import keras
import numpy as np
import pytest

from keras_cv_course import applications
from keras_cv_course.errors import KCCError
from keras_cv_course.export import converters, export, load_runner, parity_error, verify_artifact
from keras_cv_course.training import load_keras_file


@pytest.fixture(scope="module")
def tiny_model():
    return applications.build_tiny("mlp")


def test_manifest_records_sizes_ops_and_parity(tiny_model, tmp_path):
    out = str(tmp_path / "export")
    manifest = export(tiny_model, out, model_name="mlp")
    with open(os.path.join(out, "manifest.json")) as handle:
        assert json.load(handle) == manifest
    assert manifest["inputs"] == {"images": {"shape": [None, 8, 8, 1], "dtype": "float32"}}
    assert manifest["task"] == "classification"
    assert list(manifest["outputs"]) == ["predictions"]
    for entry in manifest["artifacts"].values():
        assert os.path.exists(os.path.join(out, entry["path"]))
        assert entry["bytes"] > 0 and entry["op_count"] == sum(entry["ops"].values())
        assert entry["parity"]["passed"] and entry["parity"]["tolerance"] == 1e-4
    assert "FULLY_CONNECTED" in manifest["artifacts"]["tflite"]["ops"]
    assert "MatMul" in manifest["artifacts"]["onnx"]["ops"]


def test_artifacts_keep_names_and_match_keras(tiny_model, tmp_path):
    out = str(tmp_path / "export")
    export(tiny_model, out, model_name="mlp")
    images = np.random.default_rng(5).uniform(0, 1, (3, 8, 8, 1)).astype("float32")
    expected = keras.ops.convert_to_numpy(tiny_model(images))
    for fmt, name in (("savedmodel", "saved_model"), ("tflite", "model.tflite"),
                      ("onnx", "model.onnx")):
        outputs = load_runner(fmt, os.path.join(out, name))(images)
        assert list(outputs) == ["predictions"]
        assert outputs["predictions"].dtype == np.float32
        np.testing.assert_allclose(outputs["predictions"], expected, atol=1e-5)


def test_failed_export_leaves_nothing_and_keeps_the_old_export(tiny_model, tmp_path,
                                                             monkeypatch):
    out = str(tmp_path / "export")
    export(tiny_model, out, formats=["tflite"], model_name="mlp")
    before = sorted(os.listdir(out))

    def broken_converter(savedmodel_dir, path, allow_flex=False, configure=None):
        with open(path, "wb") as handle:
            handle.write(b"not a flatbuffer")

    monkeypatch.setattr(converters, "savedmodel_to_tflite", broken_converter)
    with pytest.raises(KCCError, match="cannot load tflite artifact"):
        export(tiny_model, out, formats=["tflite"], overwrite=True, model_name="mlp")
    assert sorted(os.listdir(out)) == before
    assert os.listdir(tmp_path) == ["export"]


def test_parity_gate_rejects_an_artifact_that_differs(tiny_model, tmp_path):
    out = str(tmp_path / "export")
    export(tiny_model, out, formats=["onnx"], model_name="mlp")
    images = np.random.default_rng(1).uniform(0, 1, (2, 8, 8, 1)).astype("float32")
    wrong = {"predictions": keras.ops.convert_to_numpy(tiny_model(images)) + 1e-3}
    with pytest.raises(KCCError, match="differs from Keras"):
        verify_artifact("onnx", os.path.join(out, "model.onnx"), images, wrong, tolerance=1e-4)


def test_existing_folder_needs_overwrite(tiny_model, tmp_path):
    os.makedirs(tmp_path / "export")
    with pytest.raises(KCCError, match="exists"):
        export(tiny_model, str(tmp_path / "export"))


def test_unknown_format_and_wrong_golden_batch(tiny_model, tmp_path):
    with pytest.raises(KCCError, match="formats must be some of"):
        export(tiny_model, str(tmp_path / "a"), formats=["coreml"])
    with pytest.raises(KCCError, match=r"golden batch 'images' must have shape \(batch, 8, 8, 1\)"):
        export(tiny_model, str(tmp_path / "b"), golden_batch=np.zeros((2, 9, 9, 1)))
    assert not os.listdir(tmp_path)


def test_unsupported_format_in_registry_raises_with_reason(tiny_model, tmp_path):
    applications.register("mlp_without_onnx", applications.get_info("mlp").builder,
                          task="classification", family="test", paper="-",
                          reference_params=None, params_source="-",
                          unsupported_exports={"onnx": "an example reason"})
    try:
        with pytest.raises(KCCError, match="cannot be exported to onnx: an example reason"):
            export(tiny_model, str(tmp_path / "x"), model_name="mlp_without_onnx")
    finally:
        applications.registry._REGISTRY.pop("mlp_without_onnx")


def test_corrupt_keras_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "broken.keras"
    path.write_bytes(b"this is not a zip archive")
    with pytest.raises(KCCError, match=r"not a .keras file \(a .keras file is a zip") as error:
        load_keras_file(str(path))
    assert "\n" not in str(error.value)
    with pytest.raises(KCCError, match="not found"):
        load_keras_file(str(tmp_path / "missing.keras"))


def test_parity_error_is_relative_only_above_one():
    assert parity_error(np.array([0.5]), np.array([0.5001])) == pytest.approx(1e-4)
    assert parity_error(np.array([1000.1]), np.array([1000.0])) == pytest.approx(1e-4)
    assert parity_error(np.zeros(2), np.zeros(3)) == float("inf")


def test_export_imports_no_training_code():
    import subprocess
    import sys

    code = ("import sys, keras_cv_course.export, keras_cv_course.runs; "
            "print([m for m in sys.modules if m.startswith('keras_cv_course.training')])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stderr[-2000:]


def test_export_takes_a_keras_file(tiny_model, tmp_path):
    path = str(tmp_path / "mlp.keras")
    tiny_model.save(path)
    manifest = export(path, str(tmp_path / "export"), formats=["tflite"], model_name="mlp")
    assert manifest["model"] == "mlp" and manifest["artifacts"]["tflite"]["parity"]["passed"]
