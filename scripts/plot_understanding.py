"""Every method of ``keras_cv_course.understanding`` on a digits and a shapes classifier.

Trains two small classifiers with ``training.train`` (a tiny ResNet-18 on
``shapes`` and on ``digits`` at 16x16), then writes into ``docs/figures/``:

* ``understanding_maps_shapes.png``, ``understanding_maps_digits.png``: saliency,
  SmoothGrad, guided backprop, Grad-CAM, guided Grad-CAM and occlusion;
* ``understanding_sanity.png``: Adebayo et al.'s cascading randomisation, the rank
  correlation with the trained model's map as layers are re-initialised top first;
* ``understanding_inspection.png``: first-layer filters, maximally activating patches,
  and nearest neighbours in feature space against pixel space;
* ``understanding_synthesis.png``: class visualisations of the ten digits, a feature
  inversion, DeepDream, and an FGSM adversarial example;
* ``understanding_style.png``: Gatys et al.'s optimisation and a briefly trained
  Johnson et al. network (random VGG-16 features unless ImageNet weights are given).

Usage:
    python scripts/plot_understanding.py [--out docs/figures] [--epochs 10]
"""

import argparse
import os
import pathlib
import sys
import tempfile
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from keras_cv_course.data import load_dataset  # noqa: E402
from keras_cv_course.training import train  # noqa: E402
from keras_cv_course.understanding import (  # noqa: E402
    EXPLAIN_METHODS,
    adversarial,
    attribution,
    dream,
    inspection,
    sanity,
    style,
    style_features,
    style_network,
    synthesis,
)

DIGITS_SIZE = (16, 16)


def train_classifier(data, folder, epochs, image_size=None):
    """A tiny ResNet-18 trained on ``data``; returns ``(model, test images, labels, names)``."""
    run = train("resnet18", data, os.path.join(folder, data), config="tiny", epochs=epochs,
                image_size=image_size, learning_rate=3e-3, verbose=0, strategy="default")
    bundle = load_dataset(data, image_size=image_size)
    images, labels = bundle.arrays["test"]
    print(f"{data}: test accuracy {run.metrics['accuracy']:.3f}")
    return run.model, images, labels, bundle.class_names


def show(axis, image, title=None, cmap=None):
    axis.imshow(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image,
                cmap=cmap or ("gray" if image.ndim == 2 or image.shape[-1] == 1 else None))
    if title:
        axis.set_title(title, fontsize=8)
    axis.axis("off")


def plot_maps(model, images, names, path, count=4):
    """One row per image: the image, then each method's map."""
    sample = images[:count]
    predicted = model.predict(sample, verbose=0).argmax(-1)
    figure, axes = plt.subplots(count, len(EXPLAIN_METHODS) + 1, figsize=(12, 2.1 * count))
    for column, (method, function) in enumerate(EXPLAIN_METHODS.items(), start=1):
        maps = getattr(attribution, function)(model, sample)
        for row in range(count):
            show(axes[row, column], maps[row], method, cmap="inferno")
    for row in range(count):
        show(axes[row, 0], sample[row], f"predicted {names[predicted[row]]}")
    save(figure, path)


def plot_sanity(model, images, boxes, path):
    """Rank correlation with the trained map as layers are randomised, top first."""
    layers = [name for name, _ in sanity.cascading_randomization(model)]
    steps = sorted({1, 2, 4, 8, 16, len(layers)} & set(range(1, len(layers) + 1)))
    report = {name: [] for name in sanity.SANITY_METHODS}
    indices = attribution.class_indices(model, images)
    trained = sanity.method_maps(model, images, indices)
    for count, (_, randomised) in enumerate(sanity.cascading_randomization(model), start=1):
        if count in steps:
            maps = sanity.method_maps(randomised, images, indices)
            for name in report:
                report[name].append(sanity.rank_correlation(trained[name], maps[name]))
    figure, axis = plt.subplots(figsize=(6, 3.5))
    for name, values in report.items():
        axis.plot(steps, values, marker="o", label=name)
    axis.set_xscale("log", base=2)
    axis.set_xlabel("layers re-initialised, from the top")
    axis.set_ylabel("Spearman rank correlation\nwith the trained map")
    axis.set_title("Cascading randomisation (Adebayo et al. 2018), shapes", fontsize=9)
    axis.legend(fontsize=8)
    save(figure, path)
    ratio = sanity.mass_inside_box_ratio
    print("inside/outside box:", {name: round(ratio(maps, boxes), 2)
                                  for name, maps in trained.items()})


def plot_inspection(model, images, path):
    filters = inspection.first_layer_filters(model)
    layer = attribution.last_spatial_layer(model)
    patches, _ = inspection.max_activating_patches(model, layer, 0, images[:200], k=6)
    neighbours = inspection.feature_and_pixel_neighbours(model, images, images[:1], k=6)
    figure, axes = plt.subplots(4, 8, figsize=(10, 5.4))
    for axis in axes.ravel():
        axis.axis("off")
    for axis, kernel in zip(axes[0], filters):
        show(axis, kernel, "filter")
    for axis, patch in zip(axes[1], patches):
        show(axis, patch, f"{layer[:14]} unit 0")
    for row, kind in ((2, "feature"), (3, "pixel")):
        show(axes[row, 0], images[0], "query")
        for axis, index in zip(axes[row, 1:], neighbours[kind][0]):
            show(axis, images[index], f"{kind} nn")
    save(figure, path)


def plot_synthesis(model, images, labels, path):
    figure, axes = plt.subplots(2, 10, figsize=(12, 2.8))
    for digit in range(10):
        show(axes[0, digit], synthesis.class_visualisation(model, digit, steps=150), str(digit))
    inverted, _ = synthesis.feature_inversion(model, attribution.last_spatial_layer(model),
                                              images[0], steps=200)
    dreamed = dream.deep_dream(model, images[0], [attribution.last_spatial_layer(model)])
    attacked = adversarial.fgsm(model, images[:1], labels[:1], 0.1)
    fooled = model.predict(attacked, verbose=0).argmax(-1)[0]
    shown = [(images[0], "image"), (inverted, "inverted"), (dreamed, "DeepDream"),
             (attacked[0], f"FGSM 0.1: {fooled}"), (attacked[0] - images[0] + 0.5, "noise")]
    for axis in axes[1]:
        axis.axis("off")
    for axis, (image, title) in zip(axes[1], shown):
        show(axis, np.clip(image, 0, 1), title)
    save(figure, path)


CONTENT_WEIGHT = 20.0  # with the shapes-trained VGG, the default 1.0 lets style drown content


def plot_style(path, size=96):
    extractor, description = style_features.perceptual_extractor()
    print(description)
    photos = style_network.content_photos(size)
    pattern = style_network.style_image(size)
    gatys, _ = style.stylize_by_optimisation(photos[0], pattern, extractor, steps=100)
    network, _ = style_network.train_style_network(pattern, photos, extractor, epochs=20,
                                                   batch_size=2, image_size=size,
                                                   content_weight=CONTENT_WEIGHT)
    fast = network.predict(photos[:1], verbose=0)[0]
    figure, axes = plt.subplots(1, 4, figsize=(9, 2.8))
    for axis, image, title in zip(axes, (photos[0], pattern, gatys, fast),
                                  ("content", "style", "Gatys et al.", "Johnson et al.")):
        show(axis, image, title)
    home = os.path.expanduser("~")
    figure.suptitle(textwrap.fill(description.replace(home, "~"), 130), fontsize=7)
    save(figure, path)


def save(figure, path):
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "figures"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--style-only", action="store_true",
                        help="draw only the style-transfer figure")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.style_only:
        plot_style(pathlib.Path(args.out) / "understanding_style.png")
        return
    folder = tempfile.mkdtemp(prefix="understanding-")
    shapes_model, shapes, _, shape_names = train_classifier("shapes", folder, args.epochs)
    digits_model, digits, digit_labels, digit_names = train_classifier(
        "digits", folder, args.epochs, DIGITS_SIZE)
    out = pathlib.Path(args.out)
    plot_maps(shapes_model, shapes, shape_names, out / "understanding_maps_shapes.png")
    plot_maps(digits_model, digits, digit_names, out / "understanding_maps_digits.png")
    boxes = load_dataset("shapes", task="detection").arrays["test"][1][:64, 0, :4]
    plot_sanity(shapes_model, shapes[:64], boxes, out / "understanding_sanity.png")
    plot_inspection(shapes_model, shapes, out / "understanding_inspection.png")
    plot_synthesis(digits_model, digits, digit_labels, out / "understanding_synthesis.png")
    plot_style(out / "understanding_style.png")


if __name__ == "__main__":
    main()
