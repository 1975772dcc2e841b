"""``kcc sample``: images from a generative run's model, or from any artifact it exported.

    images = sample("runs/dcgan-1", num_samples=64, out="grid.png")
    images = sample("runs/dcgan-1", artifact="runs/dcgan-1/export/model.tflite")

The Keras model supplies its ``sampler`` (``generative.sampling``); an
artifact's sampler record is read from the ``manifest.json`` that export
wrote beside it. Either way the same NumPy loop draws the images, so an
artifact and the Keras model give the same samples for the same seed.
"""

import json
import os

import numpy as np

from keras_cv_course.errors import KCCError
from keras_cv_course.generative.sampling import draw, keras_forward

GRID_SIDE = 256
"""Grids are enlarged (nearest neighbour) to at least this many pixels a side."""


def sample(source, num_samples=64, out=None, artifact=None, seed=0, class_ids=None,
           steps=None):
    """Draws images and optionally writes them as one grid PNG.

    Args:
        source: a run folder or ``.keras`` file of a generative model.
        num_samples: number of images.
        out: the PNG to write; ``None`` writes nothing.
        artifact: an exported ``.tflite``, ``.onnx`` or SavedModel folder to
            sample from instead of the Keras model.
        seed: NumPy seed of the draws.
        class_ids: conditional models: the classes to draw, repeated to
            ``num_samples`` (``[3]`` draws only threes).
        steps: DDIM steps of a diffusion model (default: its sampler's).

    Returns:
        float32 images ``(num_samples, H, W, C)`` in [0, 1].

    Raises:
        KCCError: a source that is not generative, an artifact without a
            sampler record, bad class ids, or a PNG that cannot be written.
    """
    if out is not None:
        _check_folder(out)  # before minutes of sampling, not after
    record, forward = open_sampler(source, artifact)
    ids = None if class_ids is None else np.resize(np.asarray(class_ids), int(num_samples))
    options = {"steps": steps} if steps else {}
    images = draw(record, forward, num_samples, seed, ids, **options)
    if out is not None:
        write_grid(images, out)
    return images


def open_sampler(source, artifact=None):
    """``(sampler record, forward pass)`` of a run's Keras model or of an artifact."""
    if artifact is not None:
        from keras_cv_course.predict import open_artifact

        return artifact_record(artifact), open_artifact(artifact)
    model = load_model_file(source)
    sampler = getattr(model, "sampler", None)
    if sampler is None:
        raise KCCError(f"{source!r} holds {model.name!r}, which draws no samples; "
                       "kcc sample takes generative models")
    return sampler.record(), keras_forward(sampler.network)


def artifact_record(artifact):
    """The sampler record in the ``manifest.json`` of the export folder holding ``artifact``."""
    folder = os.path.dirname(os.path.abspath(str(artifact).rstrip(os.sep)))
    manifest = os.path.join(folder, "manifest.json")
    if not os.path.isfile(manifest):
        raise KCCError(f"no manifest.json beside {artifact!r}; sample from an export folder "
                       "written by kcc export")
    with open(manifest, encoding="utf-8") as handle:
        record = json.load(handle).get("sampler")
    if record is None:
        raise KCCError(f"the export of {artifact!r} records no sampler; it is not a "
                       "generative model's")
    return record


def load_model_file(source):
    """The model of a run folder or a ``.keras`` file; a bad path is a one-line error."""
    from keras_cv_course.runs import RunFolder, load_keras_file

    source = str(source)
    if os.path.isdir(source):
        return RunFolder(source).load_model()
    if not os.path.isfile(source):
        raise KCCError(f"not a run folder or .keras file: {source!r}")
    return load_keras_file(source)


def image_grid(images, columns=None, padding=1):
    """Tiles ``(n, H, W, C)`` images into one ``(rows * H', columns * W', C)`` image.

    ``columns`` defaults to the square root of ``n``, rounded up; cells are
    separated by ``padding`` pixels of white.
    """
    images = np.asarray(images, dtype="float32")
    count, height, width, channels = images.shape
    columns = columns or int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    cell_h, cell_w = height + padding, width + padding
    grid = np.ones((rows * cell_h + padding, columns * cell_w + padding, channels), "float32")
    for index, image in enumerate(images):
        top, left = padding + (index // columns) * cell_h, padding + (index % columns) * cell_w
        grid[top:top + height, left:left + width] = image
    return grid


def write_grid(images, path, columns=None):
    """Writes ``image_grid(images)`` as a PNG, enlarged to at least ``GRID_SIDE`` pixels."""
    from PIL import Image

    from keras_cv_course.runs import write_atomically

    grid = image_grid(images, columns)
    scale = max(1, int(np.ceil(GRID_SIDE / max(grid.shape[:2]))))
    grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    pixels = (np.clip(grid, 0.0, 1.0) * 255).round().astype("uint8")
    picture = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    _check_folder(path)
    write_atomically(path, lambda temporary: picture.save(temporary, format="PNG"))


def _check_folder(path):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise KCCError(f"cannot write {path!r}: the folder {folder!r} does not exist")
