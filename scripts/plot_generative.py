"""Figures and sample-quality numbers of the generative runs on digits.

Reads run folders written by ``kcc train`` (the commands are in
``docs/benchmarks.md``) and a digits classifier run for the features, then
writes into ``docs/figures/``:

* ``generative_samples.png``: 64 samples of every run, drawn as ``kcc sample`` draws them;
* ``generative_interpolation.png``: a GAN's images along straight lines in latent space;
* ``generative_classes.png``: a conditional GAN's samples, one row per class and one
  column per latent (the same noise down each column);

and prints each run's ``generative.quality.sample_quality`` report as JSON.

Usage:
    python scripts/plot_generative.py --classifier RUN --runs dcgan=RUN wgan_gp=RUN ...
        [--interpolate dcgan] [--classes conditional_gan] [--score dcgan ...]
        [--out docs/figures]
"""

import argparse
import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from keras_cv_course.generative.commands import image_grid, load_model_file  # noqa: E402
from keras_cv_course.generative.quality import sample_quality  # noqa: E402
from keras_cv_course.generative.sampling import (  # noqa: E402
    CLASS_INPUT,
    IMAGES_OUTPUT,
    LATENT_INPUT,
    draw,
    keras_forward,
)

SEED = 0


def samples_figure(runs, path):
    """One 8x8 grid of samples per run, side by side."""
    figure, axes = plt.subplots(1, len(runs), figsize=(3.2 * len(runs), 3.6))
    for axis, (label, run) in zip(np.atleast_1d(axes), runs.items()):
        sampler = load_model_file(run).sampler
        images = draw(sampler.record(), keras_forward(sampler.network), 64, SEED)
        axis.imshow(image_grid(images)[..., 0], cmap="gray", vmin=0, vmax=1)
        axis.set_title(label)
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def interpolation_figure(run, path, rows=6, steps=10):
    """Images along ``z(t) = (1 - t) z0 + t z1`` for ``rows`` pairs of latents."""
    sampler = load_model_file(run).sampler
    forward = keras_forward(sampler.network)
    rng = np.random.default_rng(SEED)
    ends = rng.standard_normal((2, rows, 1, sampler.settings["latent_dim"]))
    weights = np.linspace(0.0, 1.0, steps)[None, :, None]
    latent = ((1.0 - weights) * ends[0] + weights * ends[1]).reshape(rows * steps, -1)
    images = forward({LATENT_INPUT: latent.astype("float32")})[IMAGES_OUTPUT]
    _save_grid(images, steps, path, "latent interpolation, left to right")


def class_figure(run, path, columns=10):
    """Row k: class k; column j: latent j, shared by every row."""
    sampler = load_model_file(run).sampler
    classes = sampler.settings["classes"]
    latents = np.random.default_rng(SEED).standard_normal(
        (columns, sampler.settings["latent_dim"])).astype("float32")
    inputs = {LATENT_INPUT: np.tile(latents, (classes, 1)),
              CLASS_INPUT: np.repeat(np.eye(classes, dtype="float32"), columns, axis=0)}
    images = keras_forward(sampler.network)(inputs)[IMAGES_OUTPUT]
    _save_grid(images, columns, path, "rows: the class asked for; columns: one latent each")


def _save_grid(images, columns, path, title):
    figure = plt.figure(figsize=(columns * 0.45, len(images) / columns * 0.45 + 0.4))
    plt.imshow(image_grid(images, columns)[..., 0], cmap="gray", vmin=0, vmax=1)
    plt.title(title, fontsize=8)
    plt.axis("off")
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)


def _named_runs(pairs):
    return dict(pair.split("=", 1) for pair in pairs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifier", required=True, help="digits classifier run")
    parser.add_argument("--runs", nargs="+", required=True, metavar="LABEL=RUN")
    parser.add_argument("--interpolate", help="label of the GAN run to interpolate")
    parser.add_argument("--classes", help="label of the conditional GAN run")
    parser.add_argument("--score", nargs="*", metavar="LABEL",
                        help="labels of the runs to score (default: every run; sampling a "
                             "pixel-by-pixel model 2 x 360 times takes minutes)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "figures"))
    args = parser.parse_args()
    runs = _named_runs(args.runs)
    samples_figure(runs, os.path.join(args.out, "generative_samples.png"))
    if args.interpolate:
        interpolation_figure(runs[args.interpolate],
                             os.path.join(args.out, "generative_interpolation.png"))
    if args.classes:
        class_figure(runs[args.classes], os.path.join(args.out, "generative_classes.png"))
    scored = runs if args.score is None else {label: runs[label] for label in args.score}
    reports = {label: sample_quality(run, args.classifier, seed=SEED)
               for label, run in scored.items()}
    print(json.dumps(reports, indent=1))


if __name__ == "__main__":
    main()
