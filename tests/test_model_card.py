"""Model cards (Mitchell et al. 2019): computed, not templated, for Keras and every artifact.

A tiny two-layer network trained on ``shapes`` is exported to TFLite and ONNX;
its card's numbers are recomputed here from scratch: the attributes from the
generator itself, the predictions from Keras and from the LiteRT interpreter
called directly. A digits run has per-class analysis only.
"""

import json
import os
import shutil

import numpy as np
import pytest

from keras_cv_course.data import load_dataset
from keras_cv_course.data.embedded import generate_shapes, split_indices
from keras_cv_course.data.loaders import SHAPES_SIZE_THRESHOLD
from keras_cv_course.errors import KCCError
from keras_cv_course.export import export
from keras_cv_course.export import model_card as mc
from keras_cv_course.runs import load_run
from keras_cv_course.tasks import get_task
from keras_cv_course.training import train

IMAGE_SIZE = (16, 16)
SHAPES_EXAMPLES = 1200  # load_dataset's default for shapes


@pytest.fixture(scope="module")
def shapes_card(tmp_path_factory):
    """A shapes run, its fp32 export (TFLite, ONNX) and the card written beside it."""
    out = str(tmp_path_factory.mktemp("card") / "run")
    train("mlp", "shapes", out, epochs=3, image_size=IMAGE_SIZE, hidden_units=32,
          learning_rate=3e-3, verbose=0)
    folder = os.path.join(out, "export")
    export(out, folder, formats=("tflite", "onnx"))
    card = mc.write_card_for_export(out, folder)
    return {"run": out, "folder": folder, "card": card, "loaded": load_run(out)}


def _independent_attributes():
    """The test split's colour, shape and size, straight from the generator."""
    raw = generate_shapes(SHAPES_EXAMPLES, IMAGE_SIZE[0], seed=0)
    test = split_indices(raw["labels"], 0)["test"]
    names = np.array(["circle", "square", "triangle"])
    return {"colour": raw["colours"][test], "shape": names[raw["labels"][test]],
            "size": np.where(raw["radii"][test] >= SHAPES_SIZE_THRESHOLD, "large", "small")}


def _tflite_predictions(path, images):
    """Class ids from the LiteRT interpreter, quantizing by hand where the input is int8."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=path).get_signature_runner("serve")
    (name, detail), = runner.get_input_details().items()
    if np.dtype(detail["dtype"]).kind == "f":
        feed = images.astype("float32")
    else:
        scale, zero = detail["quantization"]
        limits = np.iinfo(detail["dtype"])
        feed = np.clip(np.round(images / scale + zero), limits.min, limits.max)
        feed = feed.astype(detail["dtype"])
    predictions = [next(iter(runner(**{name: feed[i:i + 1]}).values())) for i in range(len(feed))]
    return np.concatenate(predictions).argmax(-1)


def test_shapes_bundle_has_attributes_of_every_split():
    bundle = load_dataset("shapes", image_size=IMAGE_SIZE)
    for split in ("train", "val", "test"):
        attributes = bundle.attributes[split]
        assert sorted(attributes) == ["colour", "shape", "size"]
        assert all(len(values) == len(bundle.arrays[split][1]) for values in attributes.values())
        shapes = np.asarray(bundle.class_names)[bundle.arrays[split][1]]
        np.testing.assert_array_equal(attributes["shape"], shapes)
        assert set(attributes["size"]) == {"small", "large"}
    for key, values in _independent_attributes().items():
        np.testing.assert_array_equal(bundle.attributes["test"][key], values)
    assert load_dataset("digits").attributes is None


def test_every_mitchell_section_is_present_and_filled(shapes_card):
    card = shapes_card["card"]
    markdown = open(os.path.join(shapes_card["folder"], "MODEL_CARD.md")).read()
    for number, (key, title) in enumerate(mc.SECTIONS, start=1):
        assert card[key], key
        assert f"## {number}. {title}" in markdown
    details = card["model_details"]
    assert details["paper"].startswith("Rumelhart") and details["name"] == "mlp"
    assert card["evaluation_data"]["datasheet"] == "keras_cv_course/data/datasheets/shapes.md"
    assert card["evaluation_data"]["examples"] == 240
    assert sorted(card["quantitative_analyses"]) == ["keras", "onnx", "tflite"]
    assert card["runtimes"]["tflite"]["mode"] == "fp32"
    assert card["factors"]["groups"]["size"] == {
        "large": int(np.sum(_independent_attributes()["size"] == "large")),
        "small": int(np.sum(_independent_attributes()["size"] == "small"))}


def test_card_numbers_equal_an_independent_recomputation(shapes_card):
    loaded = shapes_card["loaded"]
    images, labels = loaded.bundle.arrays["test"]
    keras_ids = loaded.model.predict(images, verbose=0).argmax(-1)
    tflite_ids = _tflite_predictions(os.path.join(shapes_card["folder"], "model.tflite"), images)
    attributes = _independent_attributes()
    analyses = shapes_card["card"]["quantitative_analyses"]
    for runtime, ids in (("keras", keras_ids), ("tflite", tflite_ids)):
        analysis = analyses[runtime]
        correct = ids == labels
        assert analysis["overall"]["scores"]["accuracy"] == pytest.approx(correct.mean())
        for cell in analysis["unitary"]["colour"]:
            members = attributes["colour"] == cell["values"]["colour"]
            assert cell["count"] == members.sum()
            assert cell["scores"]["accuracy"] == pytest.approx(correct[members].mean())
        for row, label in zip(analysis["per_class"]["rows"], range(3)):
            assert row["scores"]["accuracy"] == pytest.approx(correct[labels == label].mean())
        triple = analysis["intersectional"][-1]
        for cell in triple["cells"]:
            members = np.all([attributes[k] == v for k, v in cell["values"].items()], axis=0)
            assert cell["count"] == members.sum()
            if cell["scores"] is not None:
                assert cell["scores"]["accuracy"] == pytest.approx(correct[members].mean())
    assert analyses["tflite"]["agreement_with_keras"] == pytest.approx(
        np.mean(tflite_ids == keras_ids))


def test_intersections_cover_the_test_split(shapes_card):
    analysis = shapes_card["card"]["quantitative_analyses"]["keras"]
    tables = {" x ".join(table["attributes"]): table for table in analysis["intersectional"]}
    assert sorted(tables) == ["colour x shape", "colour x shape x size", "colour x size",
                              "shape x size"]
    for table in tables.values():
        assert sum(cell["count"] for cell in table["cells"]) == analysis["examples"] == 240
    triple = tables["colour x shape x size"]["cells"]
    assert len(triple) == 5 * 3 * 2
    for cell in triple:
        assert cell["too_small"] == (cell["count"] < mc.MIN_COUNT)
        assert (cell["scores"] is None) == cell["too_small"]


def _markdown_table(markdown, heading):
    """Rows of the first table under ``heading``, as lists of cell strings."""
    section = markdown.split(heading, 1)[1]
    rows = [line for line in section.split("\n\n", 2)[1].splitlines() if line.startswith("|")]
    split = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]
    return split[0], split[2:]


def test_json_and_markdown_agree(shapes_card):
    folder = shapes_card["folder"]
    markdown = open(os.path.join(folder, "MODEL_CARD.md")).read()
    stored = json.load(open(os.path.join(folder, "model_card.json")))
    assert stored == shapes_card["card"]
    header, rows = _markdown_table(markdown, "### Intersectional: colour x shape x size")
    assert header == ["colour", "shape", "size", "count", "keras accuracy", "tflite accuracy",
                      "onnx accuracy"]
    analyses = stored["quantitative_analyses"]
    cells = [analyses[runtime]["intersectional"][-1]["cells"]
             for runtime in ("keras", "tflite", "onnx")]
    assert len(rows) == len(cells[0])
    for row, *same in zip(rows, *cells):
        first = same[0]
        assert row[:4] == [first["values"]["colour"], first["values"]["shape"],
                           first["values"]["size"], str(first["count"])]
        for text, cell in zip(row[4:], same):
            expected = "too small" if cell["scores"] is None else \
                f"{cell['scores']['accuracy']:.4f}"
            assert text == expected
    _, overall = _markdown_table(markdown, "### Overall")
    for row in overall:
        assert row[3] == f"{analyses[row[0]]['overall']['scores']['accuracy']:.4f}"


# The converter calibrates with the deprecated tf.lite.Interpreter and warns about it.
@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
def test_int8_io_artifact_is_quantized_for_the_card(shapes_card, tmp_path):
    """An int8-io TFLite file gets int8 inputs from the manifest's scale and zero point."""
    import tensorflow as tf

    loaded = shapes_card["loaded"]
    fp32 = str(tmp_path / "fp32")
    export(shapes_card["run"], fp32, formats=("savedmodel",))
    converter = tf.lite.TFLiteConverter.from_saved_model(
        os.path.join(fp32, "saved_model"), signature_keys=["serve"])
    calibration = loaded.bundle.arrays["train"][0][:100]
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ({"images": calibration[i:i + 1]}
                                                for i in range(len(calibration)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    folder = tmp_path / "export-int8-io"
    folder.mkdir()
    (folder / "model.tflite").write_bytes(converter.convert())
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(folder / "model.tflite")).get_signature_runner("serve")
    scheme = {name: {"dtype": "int8", "scale": float(d["quantization"][0]),
                     "zero_point": int(d["quantization"][1])}
              for details in (runner.get_input_details(), runner.get_output_details())
              for name, d in details.items()}
    manifest = json.load(open(os.path.join(shapes_card["folder"], "manifest.json")))
    manifest["artifacts"] = {"tflite": {"path": "model.tflite", "bytes": 0,
                                        "io_quantization": scheme}}
    manifest["quantize"] = {"mode": "int8-io", "io_dtype": "int8"}
    (folder / "manifest.json").write_text(json.dumps(manifest))

    card = mc.write_card_for_export(shapes_card["run"], str(folder))
    images, labels = loaded.bundle.arrays["test"]
    ids = _tflite_predictions(str(folder / "model.tflite"), images)
    analysis = card["quantitative_analyses"]["tflite"]
    assert analysis["overall"]["scores"]["accuracy"] == pytest.approx(np.mean(ids == labels))
    assert card["runtimes"]["tflite"]["mode"] == "int8-io"
    assert "drop by at most 0.01" in card["metrics"]["quantized_gate_rule"]
    assert (folder / "MODEL_CARD.md").read_text().count("| tflite | int8-io | 240 |") == 1


def test_quantize_helpers_follow_the_recorded_scheme():
    scheme = {"images": {"dtype": "int8", "scale": 0.125, "zero_point": -3},
              "predictions": {"dtype": "int8", "scale": 1 / 256, "zero_point": -128}}
    images = np.array([-50.0, 0.0, 0.0625, 0.25, 1.0, 50.0], dtype="float32")
    quantized = mc.quantize_inputs({"images": images, "other": images}, scheme)
    assert quantized["images"].dtype == np.int8 and quantized["other"].dtype == np.float32
    # q = clip(round(x / scale) + zero_point), as TFLite does: 0.0625 / 0.125 = 0.5 rounds
    # to even (0), then -3
    np.testing.assert_array_equal(quantized["images"], [-128, -3, -3, -1, 5, 127])
    outputs = mc.dequantize_outputs({"predictions": np.array([-128, 0, 127], "int8")}, scheme)
    np.testing.assert_allclose(outputs["predictions"], [0.0, 0.5, 255 / 256])
    floats = np.array([0.25], "float32")  # a runtime that dequantized already
    np.testing.assert_array_equal(
        mc.dequantize_outputs({"predictions": floats}, scheme)["predictions"], floats)


def test_small_cells_are_reported_not_hidden():
    task = get_task("classification")
    labels = np.array([0, 0, 1, 1, 1, 1, 1, 1])
    outputs = {"predictions": np.eye(2, dtype="float32")[[0, 1, 1, 1, 1, 1, 0, 1]]}
    attributes = {"colour": np.array(["red", "red"] + ["blue"] * 6),
                  "size": np.array(["small"] * 4 + ["large"] * 4)}
    analysis = mc.quantitative_analysis(task, outputs, labels, ("a", "b"), attributes,
                                        min_count=3)
    cells = {tuple(c["values"].values()): c for c in analysis["intersectional"][0]["cells"]}
    assert cells[("red", "large")] == {"values": {"colour": "red", "size": "large"},
                                       "count": 0, "too_small": True, "scores": None}
    assert cells[("red", "small")]["count"] == 2 and cells[("red", "small")]["scores"] is None
    assert cells[("blue", "large")]["scores"] == {"accuracy": 0.75}
    assert analysis["per_class"]["rows"][0]["too_small"]  # two examples of class "a"
    with pytest.raises(KCCError, match="attribute 'size'"):
        mc.quantitative_analysis(task, outputs, labels, attributes={"size": ["small"]})


def test_segmentation_per_class_iou_averages_to_the_task_mean_iou():
    task = get_task("segmentation")
    bundle = load_dataset("shapes", "segmentation", image_size=IMAGE_SIZE)
    masks = bundle.arrays["test"][1]
    rng = np.random.default_rng(0)
    noisy = np.where(rng.uniform(size=masks.shape) < 0.2, rng.integers(0, 4, masks.shape), masks)
    outputs = {"segmentation": np.eye(4, dtype="float32")[noisy]}
    analysis = mc.quantitative_analysis(task, outputs, masks, bundle.class_names,
                                        bundle.attributes["test"])
    per_class = analysis["per_class"]
    assert per_class["kind"] == "pixels"
    ious = [row["scores"]["iou"] for row in per_class["rows"]]
    assert np.mean(ious) == pytest.approx(analysis["overall"]["scores"]["mean_iou"])
    for cell in analysis["unitary"]["colour"]:
        members = bundle.attributes["test"]["colour"] == cell["values"]["colour"]
        expected = task.score({"segmentation": outputs["segmentation"][members]}, masks[members])
        assert cell["scores"] == pytest.approx(expected)


def test_digits_card_is_per_class_only(tmp_path):
    out = str(tmp_path / "digits")
    train("mlp", "digits", out, epochs=2, hidden_units=32, verbose=0)
    folder = os.path.join(out, "export")
    export(out, folder, formats=("tflite",))
    card = mc.write_card_for_export(out, folder)
    keras_analysis = card["quantitative_analyses"]["keras"]
    assert keras_analysis["unitary"] == {} and keras_analysis["intersectional"] == []
    assert "per class only" in card["factors"]["note"]
    loaded = load_run(out)
    images, labels = loaded.bundle.arrays["test"]
    correct = loaded.model.predict(images, verbose=0).argmax(-1) == labels
    rows = keras_analysis["per_class"]["rows"]
    assert [row["class"] for row in rows] == [str(d) for d in range(10)]
    assert sum(row["count"] for row in rows) == len(labels) == 360
    for digit, row in enumerate(rows):
        assert row["scores"]["accuracy"] == pytest.approx(correct[labels == digit].mean())
    markdown = open(os.path.join(folder, "MODEL_CARD.md")).read()
    assert "### Per class" in markdown and "### Unitary" not in markdown
    assert "keras_cv_course/data/datasheets/digits.md" in markdown
    shutil.rmtree(out)
