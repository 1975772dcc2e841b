"""``kcc explain``, ``kcc dream`` and ``kcc stylize`` on a run and image files."""

import os

import pytest
from PIL import Image

from keras_cv_course.cli import main
from keras_cv_course.data import load_dataset
from keras_cv_course.understanding import EXPLAIN_METHODS
from keras_cv_course.understanding.style_network import transformer_net


@pytest.fixture(scope="module")
def run_and_images(tmp_path_factory):
    """A shapes classifier trained for one epoch, and two test images as PNG files."""
    folder = tmp_path_factory.mktemp("understanding-cli")
    run = str(folder / "run")
    assert main(["train", "resnet18", "--config", "tiny", "--data", "shapes", "--epochs", "1",
                 "--out", run, "--strategy", "default"]) == 0
    images, _ = load_dataset("shapes").arrays["test"]
    paths = []
    for index in range(2):
        path = str(folder / f"shape{index}.png")
        Image.fromarray((images[index] * 255).astype("uint8")).save(path)
        paths.append(path)
    return run, paths


def _png_size(path):
    with Image.open(path) as image:
        return image.size


@pytest.mark.parametrize("method", list(EXPLAIN_METHODS))
def test_explain_writes_one_png_per_image(method, run_and_images, tmp_path, capsys):
    run, paths = run_and_images
    out = tmp_path / "maps"
    assert main(["explain", run, *paths, "--method", method, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert sorted(os.listdir(out)) == [f"shape{i}-{method}.png" for i in range(2)]
    assert f"{method} of " in printed and "(p=" in printed
    assert min(_png_size(out / f"shape0-{method}.png")) > 100


def test_dream_and_stylize_write_their_pngs(run_and_images, tmp_path, capsys):
    run, paths = run_and_images
    assert main(["dream", run, paths[0], "--out", str(tmp_path / "dream.png"),
                 "--octaves", "2", "--steps", "2"]) == 0
    assert main(["stylize", paths[0], "--style", paths[1], "--out",
                 str(tmp_path / "gatys.png"), "--size", "32", "--steps", "2",
                 "--vgg-weights", "random"]) == 0
    assert "random initialisation" in capsys.readouterr().out  # says which VGG weights
    network = str(tmp_path / "net.keras")
    transformer_net().save(network)
    assert main(["stylize", paths[0], "--network", network, "--out",
                 str(tmp_path / "fast.png"), "--size", "32"]) == 0
    assert sorted(os.listdir(tmp_path)) == ["dream.png", "fast.png", "gatys.png", "net.keras"]


@pytest.mark.parametrize("arguments, message", [
    (["explain", "RUN", "IMAGE", "--class-index", "7"], "class index must be in [0, 3)"),
    (["stylize", "IMAGE", "--out", "x.png"], "stylize takes exactly one of --style"),
    (["explain", "RUN", "missing.png"], "image file not found"),
])
def test_bad_input_is_one_line_and_writes_nothing(arguments, message, run_and_images, tmp_path,
                                                  capsys):
    run, paths = run_and_images
    arguments = [run if word == "RUN" else paths[0] if word == "IMAGE" else word
                 for word in arguments]
    out = tmp_path / "nothing"
    if arguments[0] == "explain":
        arguments += ["--out", str(out)]
    assert main(arguments) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("kcc: error: ") and message in error and "\n" not in error
    assert not out.exists() and not os.path.exists("x.png")
