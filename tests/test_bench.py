"""``bench_run`` and the TensorFlow-free device runner behind ``kcc bench``.

One tiny run (an MLP on the embedded digits, two epochs) is exported to
SavedModel, TFLite and ONNX and benchmarked once, with few timed runs and a
few dozen test examples; the tests then check the rows: every runtime and
thread count, sizes that are the files' sizes, positive latencies, metrics
that are the Keras model's, full agreement of the fp32 artifacts, and a
device process that really cannot import TensorFlow.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_cv_course import edge
from keras_cv_course.errors import KCCError
from keras_cv_course.export import bench

LIMIT = 40
RUNS, WARMUP = 3, 1


@pytest.fixture(scope="module")
def benched(tmp_path_factory):
    from keras_cv_course.export import export
    from keras_cv_course.training import train

    out = str(tmp_path_factory.mktemp("bench") / "run")
    run = train("mlp", "digits", out, epochs=2, batch_size=64, hidden_units=16, verbose=0)
    export(out, out + "/export")
    rows = bench.bench_run(out, runs=RUNS, warmup=WARMUP, limit=LIMIT)
    return out, run, rows


@pytest.fixture(scope="module")
def test_inputs(benched):
    from keras_cv_course.runs import load_run

    loaded = load_run(benched[0])
    return loaded, *bench.held_out_split(loaded, LIMIT)


def test_one_row_per_runtime_and_thread_count(benched):
    _, _, rows = benched
    threads = bench.thread_counts()
    expected = [(fmt, runtime, count)
                for fmt, runtime in (("keras", "keras"), ("savedmodel", "tensorflow"),
                                     ("tflite", "litert+xnnpack"), ("tflite", "litert"),
                                     ("onnx", "onnxruntime"))
                for count in threads]
    assert [(row["format"], row["runtime"], row["threads"]) for row in rows] == expected
    assert threads == sorted({1, len(os.sched_getaffinity(0))})
    assert {row["mode"] for row in rows} == {"fp32"}
    assert {row["folder"] for row in rows} == {"", "export"}


def test_sizes_are_the_files_sizes_and_gzip_is_smaller(benched):
    out, _, rows = benched
    for row in rows:
        path = row["path"]
        if os.path.isdir(path):
            size = sum(os.path.getsize(os.path.join(root, name))
                       for root, _, names in os.walk(path) for name in names)
        else:
            size = os.path.getsize(path)
        assert row["bytes"] == size > 0, row
        assert row["gzip_bytes"] > 0
        if row["format"] != "keras":  # a .keras file is already a zip archive
            assert row["gzip_bytes"] < row["bytes"], row
    assert rows[0]["path"] == os.path.join(out, "model.keras")


def test_latencies_are_positive_and_p90_is_at_least_the_median(benched):
    for row in benched[2]:
        assert 0 < row["median_ms"] <= row["p90_ms"], row


def test_fp32_metrics_are_the_keras_models_and_agree_fully(benched, test_inputs):
    _, _, rows = benched
    loaded, inputs, targets = test_inputs
    predictions = loaded.model.predict(next(iter(inputs.values())), verbose=0)
    accuracy = float(np.mean(predictions.argmax(-1) == targets))
    for row in rows:
        assert row["metric"] == "accuracy" and row["examples"] == LIMIT, row
        assert row["metric_value"] == pytest.approx(accuracy, abs=1 / LIMIT), row
        assert row["agreement"] == 1.0, row


def test_on_the_whole_split_the_metric_is_the_runs(benched):
    out, run, _ = benched
    from keras_cv_course.runs import load_run

    loaded = load_run(out)
    inputs, targets = bench.held_out_split(loaded)
    scores = loaded.task.score(bench.keras_outputs(loaded, inputs), targets)
    assert scores["accuracy"] == pytest.approx(run.metrics["accuracy"], abs=1e-6)


def test_the_device_process_cannot_import_tensorflow(benched, test_inputs, tmp_path):
    out = benched[0]
    _, inputs, _ = test_inputs
    np.savez(tmp_path / "inputs.npz", **inputs)
    for xnnpack in (True, False):
        result = str(tmp_path / f"result-{xnnpack}.json")
        command = edge.device_command(out + "/export/model.tflite", "tflite",
                                      tmp_path / "inputs.npz", result, threads=1,
                                      xnnpack=xnnpack, runs=2, warmup=0)
        done = subprocess.run(command, capture_output=True, text=True,
                              env=edge.device_environment(), timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        meta, outputs = edge.read_result(result)
        assert meta["tensorflow_importable"] is False
        assert meta["tensorflow_modules"] == []
        assert outputs["predictions"].shape == (LIMIT, 10)
        # XNNPACK on hands the graph to the delegate; off leaves the built-in kernels.
        assert (meta["delegated_nodes"] > 0) is xnnpack


def test_the_device_entry_point_refuses_a_process_with_tensorflow(benched, tmp_path, capsys):
    import tensorflow  # noqa: F401 - loaded in this process already

    code = edge.main(["--artifact", benched[0] + "/export/model.onnx", "--format", "onnx",
                      "--inputs", str(tmp_path / "none.npz"), "--out", str(tmp_path / "r.npz")])
    assert code == 3
    assert "TensorFlow is importable" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "r.npz")


def test_onnx_in_process_matches_keras_with_threads(benched, test_inputs):
    out = benched[0]
    loaded, inputs, _ = test_inputs
    reference = bench.keras_outputs(loaded, inputs)
    for threads in bench.thread_counts():
        runner = edge.open_onnx(out + "/export/model.onnx", threads=threads)
        outputs = edge.evaluate_outputs(runner, inputs, limit=5)
        np.testing.assert_allclose(outputs["predictions"], reference["predictions"][:5],
                                   atol=1e-5)


# The converter calibrates with TensorFlow's own (deprecated) interpreter internally.
@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_int8_io_inputs_are_quantized_and_outputs_dequantized(benched, test_inputs, tmp_path):
    import tensorflow as tf

    out = benched[0]
    loaded, inputs, _ = test_inputs
    train_images = loaded.bundle.arrays["train"][0][:64]
    converter = tf.lite.TFLiteConverter.from_saved_model(out + "/export/saved_model",
                                                         signature_keys=["serve"])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ({"images": image[None]} for image in
                                                train_images)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    path = tmp_path / "int8.tflite"
    path.write_bytes(converter.convert())

    runner = edge.open_tflite(path, threads=1, xnnpack=False)
    assert set(runner.io_quantization) == {"images", "predictions"}
    image, scores = runner.io_quantization["images"], runner.io_quantization["predictions"]
    assert image["dtype"] == scores["dtype"] == "int8"
    outputs = edge.evaluate_outputs(runner, inputs)
    assert outputs["predictions"].dtype == np.float32

    # By hand, with the interpreter alone: q = round(x / s) + z in, (q - z) * s out.
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    raw = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType
                      .BUILTIN_WITHOUT_DEFAULT_DELEGATES).get_signature_runner("serve")
    first = inputs["images"][:1]
    fed = np.clip(np.round(first / image["scale"]) + image["zero_point"], -128, 127)
    got = raw(images=fed.astype("int8"))["predictions"]
    assert got.dtype == np.int8
    np.testing.assert_allclose(outputs["predictions"][:1],
                               (got.astype("float32") - scores["zero_point"]) * scores["scale"],
                               rtol=1e-6)
    reference = bench.keras_outputs(loaded, inputs)
    assert loaded.task.agreement(outputs, reference) >= 0.9
    assert np.abs(outputs["predictions"] - reference["predictions"]).max() < 0.1


def test_quantize_rounds_clips_and_dequantize_inverts():
    params = {"scale": 0.5, "zero_point": -3, "dtype": "int8"}
    values = np.array([0.0, 1.0, 1.2, 1000.0, -1000.0], "float32")
    quantized = edge.quantize(values, params)
    assert quantized.dtype == np.int8
    assert quantized.tolist() == [-3, -1, -1, 127, -128]
    np.testing.assert_allclose(edge.dequantize(quantized[:3], params), [0.0, 1.0, 1.0])


def test_measure_latency_reports_median_and_p90():
    latency = edge.measure_latency(lambda: time.sleep(0.002), runs=5, warmup=1)
    assert 2.0 <= latency["median_ms"] <= latency["p90_ms"]
    with pytest.raises(KCCError, match="runs must be >= 1"):
        edge.measure_latency(lambda: None, runs=0)


def test_agreement_compares_argmax_ids_and_values():
    from keras_cv_course.tasks.base import Task

    agreement = Task().agreement
    scores = {"p": np.array([[0.1, 0.9], [0.8, 0.2]])}
    assert agreement({"p": np.array([[0.2, 0.8], [0.1, 0.9]])}, scores) == 0.5
    ids = {"ids": np.array([1, 2, 3])}
    assert agreement({"ids": np.array([1, 2, 4])}, ids) == pytest.approx(2 / 3)
    masks = {"m": np.zeros((2, 4, 4, 3))}
    assert agreement({"m": np.zeros((2, 4, 4, 3))}, masks) == 1.0


def test_write_bench_files_parse(benched, tmp_path):
    rows = benched[2]
    md_path, json_path = bench.write_bench(rows, str(tmp_path / "report"),
                                           settings={"runs": RUNS, "warmup": WARMUP})
    with open(json_path) as handle:
        report = json.load(handle)
    assert report["rows"] == json.loads(json.dumps(rows))
    assert report["machine"]["cores"] == os.cpu_count()
    assert report["machine"]["onnxruntime"] and report["machine"]["litert"]
    text = open(md_path).read()
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == len(rows) + 2
    assert "| accuracy |" in table[0] and "litert+xnnpack" in text
    assert report["machine"]["cpu"] in text
    assert sorted(os.listdir(tmp_path / "report")) == ["bench.json", "bench.md"]


def test_a_run_without_exports_is_a_clear_error(tmp_path):
    with pytest.raises(KCCError, match="no export folder"):
        bench.export_folders(str(tmp_path))


def test_edge_module_imports_no_tensorflow():
    code = ("import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None; "
            "import keras_cv_course.edge as e; print(e.tensorflow_modules())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=edge.device_environment(), timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr[-2000:]
