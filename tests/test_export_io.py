"""Export takes its inputs and outputs from the model: any number, names, dtypes and ranks.

Two models that no classifier looks like go through the one export path to
SavedModel, TFLite and ONNX, and every artifact must agree with Keras:

* two inputs, an image and int32 tokens (the shape of a captioner's step);
* dict outputs of different dtypes: float scores and int32 class ids.

A last test runs the TFLite and ONNX artifacts in a process where TensorFlow
cannot be imported, with ``ai_edge_litert`` and ``onnxruntime`` alone.

Class ids come from ``ops.top_k``, not ``ops.argmax``: Keras' TensorFlow
``argmax`` on floats adds a sign-bit test (``BitwiseAnd``) that TFLite has
no builtin for, while ``top_k`` lowers to ``TOPK_V2`` and ONNX ``TopK``.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

from keras_cv_course.errors import KCCError
from keras_cv_course.export import export, load_runner

FORMATS = ("savedmodel", "tflite", "onnx")


def image_and_tokens_model():
    """Scores 3 classes from an 8x8 image and 5 tokens; also returns the best class id."""
    image = keras.Input((8, 8, 1), name="images")
    tokens = keras.Input((5,), dtype="int32", name="tokens")
    pixels = keras.layers.Flatten(name="flatten_image")(image)
    words = keras.layers.Embedding(10, 4, name="embedding")(tokens)  # (batch, 5, 4)
    words = keras.layers.Flatten(name="flatten_tokens")(words)
    joint = keras.layers.Concatenate(name="joint")([pixels, words])
    scores = keras.layers.Dense(3, name="scores")(joint)
    class_ids = ops.squeeze(ops.top_k(scores, k=1)[1], axis=-1)  # int32 (batch,)
    return keras.Model({"images": image, "tokens": tokens},
                       {"scores": scores, "class_ids": class_ids}, name="image_and_tokens")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(1)
    model = image_and_tokens_model()
    rng = np.random.default_rng(0)
    golden = {"images": rng.uniform(0, 1, (6, 8, 8, 1)).astype("float32"),
              "tokens": rng.integers(0, 10, (6, 5)).astype("int32")}
    out = str(tmp_path_factory.mktemp("io") / "export")
    manifest = export(model, out, formats=FORMATS, golden_batch=golden)
    return model, out, manifest


def test_manifest_records_every_input_and_output(exported):
    _, out, manifest = exported
    assert manifest["inputs"] == {"images": {"shape": [None, 8, 8, 1], "dtype": "float32"},
                                  "tokens": {"shape": [None, 5], "dtype": "int32"}}
    assert manifest["outputs"] == {"class_ids": {"shape": [None], "dtype": "int32"},
                                   "scores": {"shape": [None, 3], "dtype": "float32"}}
    with open(os.path.join(out, "manifest.json")) as handle:
        assert json.load(handle) == manifest
    for entry in manifest["artifacts"].values():
        assert entry["parity"]["rules"] == {"class_ids": "exact", "scores": "max error"}
        assert entry["parity"]["errors"]["class_ids"] == 0.0


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_artifact_takes_both_inputs_and_agrees_with_keras(exported, fmt):
    model, out, manifest = exported
    rng = np.random.default_rng(7)
    inputs = {"images": rng.uniform(0, 1, (4, 8, 8, 1)).astype("float32"),
              "tokens": rng.integers(0, 10, (4, 5)).astype("int32")}
    expected = {key: ops.convert_to_numpy(value) for key, value in model(inputs).items()}
    runner = load_runner(fmt, os.path.join(out, manifest["artifacts"][fmt]["path"]))
    assert runner.input_dtypes() == {"images": "float32", "tokens": "int32"}
    outputs = runner(inputs)
    assert outputs["class_ids"].dtype == np.int32
    np.testing.assert_array_equal(outputs["class_ids"], expected["class_ids"])
    np.testing.assert_allclose(outputs["scores"], expected["scores"], atol=1e-5)


def test_without_a_golden_batch_the_inputs_are_synthesised(tmp_path):
    manifest = export(image_and_tokens_model(), str(tmp_path / "e"), formats=["onnx"])
    assert manifest["golden_batch"]["shapes"] == {"images": [4, 8, 8, 1], "tokens": [4, 5]}


def test_a_golden_batch_missing_an_input_is_a_clear_error(tmp_path):
    images = np.zeros((2, 8, 8, 1), "float32")
    with pytest.raises(KCCError, match="golden batch must be a dict with keys"):
        export(image_and_tokens_model(), str(tmp_path / "a"), golden_batch=images)
    with pytest.raises(KCCError, match="golden batch is missing input 'tokens'"):
        export(image_and_tokens_model(), str(tmp_path / "b"), golden_batch={"images": images})
    assert not os.listdir(tmp_path)


DEVICE_SCRIPT = """
import sys
sys.modules["tensorflow"] = None  # as on a phone or a board: no TensorFlow at all
import numpy as np
import onnxruntime
from ai_edge_litert.interpreter import Interpreter

out, data = sys.argv[1], np.load(sys.argv[2])
inputs = {"images": data["images"], "tokens": data["tokens"]}
interpreter = Interpreter(model_path=out + "/model.tflite")
tflite = interpreter.get_signature_runner()(**inputs)
session = onnxruntime.InferenceSession(out + "/model.onnx")
names = [output.name for output in session.get_outputs()]
onnx = dict(zip(names, session.run(None, inputs)))
for outputs in (tflite, onnx):
    assert np.array_equal(outputs["class_ids"], data["class_ids"]), outputs["class_ids"]
    assert np.abs(outputs["scores"] - data["scores"]).max() <= 1e-5
print("ok")
"""


def test_artifacts_run_where_tensorflow_cannot_be_imported(exported, tmp_path):
    model, out, _ = exported
    rng = np.random.default_rng(3)
    inputs = {"images": rng.uniform(0, 1, (1, 8, 8, 1)).astype("float32"),
              "tokens": rng.integers(0, 10, (1, 5)).astype("int32")}
    expected = {key: ops.convert_to_numpy(value) for key, value in model(inputs).items()}
    np.savez(tmp_path / "golden.npz", **inputs, **expected)
    done = subprocess.run([sys.executable, "-c", DEVICE_SCRIPT, out, str(tmp_path / "golden.npz")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
