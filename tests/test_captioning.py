"""The captioning task end to end: data, teacher forcing, decoding, export, captions anywhere.

One tiny run of each registered captioner is trained for one epoch on a
small ``shapes`` set and exported once to TFLite and ONNX (an encoder and a
one-step decoder each); every test reads those runs.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from keras_cv_course import applications
from keras_cv_course.data import load_dataset
from keras_cv_course.errors import KCCError
from keras_cv_course.evaluation import evaluate_run
from keras_cv_course.export import export
from keras_cv_course.predict import open_pipeline, predict
from keras_cv_course.runs import load_run
from keras_cv_course.sequence import captioning, text
from keras_cv_course.tasks import get_task
from keras_cv_course.training import train

CAPTIONERS = ("show_and_tell", "show_attend_tell", "transformer_captioner")
HELD_OUT = 6


@pytest.fixture(scope="module")
def bundle():
    return load_dataset("shapes", task="captioning", num_examples=160, seed=0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, bundle):
    """``{model name: run folder}``, one epoch each, exported to TFLite and ONNX."""
    folder = tmp_path_factory.mktemp("captioning")
    paths = {}
    for name in CAPTIONERS:
        run = train(name, bundle, out=str(folder / name), config="tiny", epochs=1,
                    batch_size=32, learning_rate=3e-3, verbose=0)
        export(run.path, formats=("tflite", "onnx"))
        paths[name] = run.path
    return paths


def held_out_images(bundle):
    inputs, _ = bundle.arrays["test"]
    return inputs["images"][:HELD_OUT]


def test_teacher_forcing_shifts_the_caption_by_one(bundle):
    inputs, targets = bundle.arrays["train"]
    tokens = inputs["tokens"]
    assert tokens.shape == targets.shape == (len(tokens), 16)
    assert np.all(tokens[:, 0] == text.START_ID)
    np.testing.assert_array_equal(tokens[:, 1:], targets[:, :-1])
    tokenizer = text.Tokenizer(bundle.class_names)
    caption = tokenizer.decode(targets[0])
    assert caption.startswith("a ") and caption.split()[-2:-1] == ["the"]
    assert np.sum(targets[0] == text.END_ID) == 1


def test_the_vocabulary_is_the_training_captions_words(bundle):
    assert bundle.class_names[:4] == (text.PAD, text.START, text.END, text.UNKNOWN)
    assert {"circle", "square", "triangle", "left", "right", "large", "small"} <= set(
        bundle.class_names)
    assert bundle.num_classes == len(bundle.class_names)


def test_the_tokenizer_is_saved_with_the_run_and_the_export(runs, bundle):
    run = runs["show_attend_tell"]
    with open(os.path.join(run, "config.json"), encoding="utf-8") as handle:
        assert tuple(json.load(handle)["class_names"]) == bundle.class_names
    with open(os.path.join(run, "export", "manifest.json"), encoding="utf-8") as handle:
        manifest = json.load(handle)
    record = manifest["captioning"]
    assert tuple(record["vocabulary"]) == bundle.class_names
    assert record["state"] == ["h", "c"] and record["max_length"] == 16
    assert sorted(manifest["parts"]) == ["decoder", "encoder"]


@pytest.mark.parametrize("name", CAPTIONERS)
def test_the_decoder_exports_without_loops_or_flex_ops(runs, name):
    with open(os.path.join(runs[name], "export", "manifest.json"), encoding="utf-8") as handle:
        parts = json.load(handle)["parts"]
    for part in parts.values():
        for fmt in ("tflite", "onnx"):
            ops = part["artifacts"][fmt]["ops"]
            assert part["artifacts"][fmt]["parity"]["passed"]
            assert not [op for op in ops if op.upper() in ("WHILE", "LOOP", "SCAN")
                        or op.startswith("Flex")], ops
        assert part["inputs"]["images" if "images" in part["inputs"] else "token"]


def test_evaluate_reports_bleu_and_cider(runs):
    metrics = evaluate_run(runs["show_attend_tell"])
    assert {"loss", "bleu_1", "bleu_2", "bleu_3", "bleu_4", "cider_d"} <= set(metrics)
    assert 0.0 <= metrics["bleu_4"] <= metrics["bleu_1"] <= 1.0
    assert np.isfinite(metrics["cider_d"])


@pytest.mark.parametrize("name", CAPTIONERS)
def test_artifact_captions_equal_keras_captions(runs, bundle, name):
    run = load_run(runs[name])
    images = held_out_images(bundle)
    expected = open_pipeline(run.task, run.model)(images)
    for fmt in ("tflite", "onnx"):
        artifact = os.path.join(runs[name], "export", "decoder", f"model.{fmt}")
        got = open_pipeline(run.task, None, artifact)(images)
        np.testing.assert_array_equal(got["tokens"], expected["tokens"])


def test_beam_search_of_width_one_is_greedy(runs, bundle):
    run = load_run(runs["transformer_captioner"])
    task, images = run.task, held_out_images(bundle)
    greedy = open_pipeline(task, run.model)
    beam = captioning.CaptionPipeline(greedy.encoder, greedy.decoder, greedy.record,
                                      beam_width=1)
    np.testing.assert_array_equal(beam(images)["tokens"], greedy(images)["tokens"])
    wide = captioning.CaptionPipeline(greedy.encoder, greedy.decoder, greedy.record,
                                      beam_width=3)(images[:2])
    assert wide["tokens"].shape == (2, 16)


DEVICE_SCRIPT = """
import json, os, sys
sys.modules["tensorflow"] = None  # as on a phone: neither TensorFlow nor Keras
sys.modules["keras"] = None
import numpy as np
from keras_cv_course import edge
from keras_cv_course.sequence.captioning import CaptionPipeline

data, folders = np.load(sys.argv[1]), json.loads(sys.argv[2])
for name, folder in folders.items():
    with open(os.path.join(folder, "manifest.json")) as handle:
        record = json.load(handle)["captioning"]
    for fmt in ("tflite", "onnx"):
        encoder, decoder = (edge.open_artifact(os.path.join(folder, part, "model." + fmt), fmt)
                            for part in ("encoder", "decoder"))
        tokens = CaptionPipeline(encoder, decoder, record)(data["images"])["tokens"]
        assert np.array_equal(tokens, data[name]), (name, fmt, tokens, data[name])
        print(name, fmt, "equal")
print("ok")
"""


def test_artifacts_caption_without_tensorflow(runs, bundle, tmp_path):
    images = held_out_images(bundle)
    expected = {}
    for name, path in runs.items():
        run = load_run(path)
        expected[name] = open_pipeline(run.task, run.model)(images)["tokens"]
    np.savez(tmp_path / "data.npz", images=images, **expected)
    folders = {name: os.path.join(path, "export") for name, path in runs.items()}
    done = subprocess.run([sys.executable, "-c", DEVICE_SCRIPT, str(tmp_path / "data.npz"),
                           json.dumps(folders)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


def test_predict_writes_a_picture_per_word_with_attention(runs, bundle, tmp_path):
    image = (held_out_images(bundle)[0] * 255).astype("uint8")
    path = tmp_path / "shape.png"
    Image.fromarray(image).save(path)
    artifact = os.path.join(runs["show_attend_tell"], "export", "decoder", "model.tflite")
    ((_, outputs, lines),) = predict(runs["show_attend_tell"], [str(path)],
                                     out_dir=str(tmp_path / "out"), artifact=artifact)
    words = [token for token in outputs["tokens"] if token]
    written = sorted(os.listdir(tmp_path / "out"))
    assert "shape.png" in written and lines[0].startswith('"')
    assert len([name for name in written if name.startswith("shape-")]) == len(words)


def test_a_model_served_as_two_networks_refuses_a_golden_batch(runs, tmp_path):
    run = load_run(runs["show_and_tell"])
    with pytest.raises(KCCError, match="serves 2 networks"):
        export(run.model, str(tmp_path / "x"), formats=("tflite",),
               golden_batch=np.zeros((1, 32, 32, 3), "float32"), model_name="show_and_tell")
    assert not os.path.exists(tmp_path / "x")


def test_coco_captions_loads_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=6):
        loaded = load_dataset("coco_captions", task="captioning", image_size=(32, 32))
    inputs, targets = next(iter(loaded.train.batch(2)))
    assert inputs["images"].shape == (2, 32, 32, 3) and inputs["tokens"].shape == (2, 16)
    assert targets.shape == (2, 16) and loaded.class_names[:3] == (text.PAD, text.START,
                                                                   text.END)


def test_every_captioner_is_registered_with_its_task():
    names = applications.list_models(task="captioning")
    assert set(CAPTIONERS) <= set(names)
    assert get_task("captioning").serving_batch_size == 1
