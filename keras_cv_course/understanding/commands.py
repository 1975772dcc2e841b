"""What ``kcc explain``, ``kcc dream`` and ``kcc stylize`` do: a model, image files, PNGs.

    explain("runs/resnet18-1", ["cat.png"], method="gradcam", out_dir="maps")
    dream("runs/resnet18-1", "cat.png", "dream.png")
    stylize("photo.png", "stylized.png", style="waves.png")          # Gatys et al.
    stylize("photo.png", "stylized.png", network="style_net.keras")  # Johnson et al.

Every image is read and every map computed before any file is written, and
each PNG is written under a temporary name and renamed into place, so a bad
input leaves nothing behind.
"""

import os

import numpy as np

from keras_cv_course.errors import KCCError
from keras_cv_course.predict import open_source, read_image
from keras_cv_course.understanding import EXPLAIN_METHODS


def explain(source, image_paths, method="saliency", out_dir="explain", class_index=None):
    """Writes ``<image name>-<method>.png`` per image: the image and its map side by side.

    Args:
        source: a classification run folder or a ``.keras`` classifier.
        image_paths: image files, resized to the model's input.
        method: a key of ``EXPLAIN_METHODS``.
        out_dir: the folder for the PNGs.
        class_index: the class to explain; ``None`` explains each image's
            predicted class.

    Returns:
        One ``(png path, class name, probability)`` per image.

    Raises:
        KCCError: an unknown method, a model that is not a classifier, a
            class out of range, or a bad image file.
    """
    if method not in EXPLAIN_METHODS:
        raise KCCError(f"unknown method {method!r}; choose one of {', '.join(EXPLAIN_METHODS)}")
    model, class_names, images = _classifier_and_images(source, image_paths)
    probabilities = np.asarray(model.predict(images, verbose=0), dtype="float64")
    classes = _classes(probabilities, class_index)
    from keras_cv_course.understanding import attribution

    method_function = getattr(attribution, EXPLAIN_METHODS[method])
    maps = np.asarray(method_function(model, images, class_index=classes))
    results, figures = [], []
    for path, image, heat, label, row in zip(image_paths, images, maps, classes, probabilities):
        name = class_names[label] if label < len(class_names) else f"class {label}"
        title = f"{method}: {name} (p={_probability(row, label):.2f})"
        target = os.path.join(out_dir, f"{_stem(path)}-{method}.png")
        figures.append((target, _map_figure(image, heat, title)))
        results.append((target, name, _probability(row, label)))
    _write_all(out_dir, figures)
    return results


def dream(source, image_path, out_path, layer_names=None, octaves=3, steps_per_octave=10,
          step_size=0.01, seed=0):
    """DeepDream on one image; writes the dreamed image as a PNG.

    ``layer_names`` defaults to the model's last layer with a
    ``(batch, height, width, channels)`` output (``attribution.last_spatial_layer``).

    Returns:
        The dreamed ``(H, W, C)`` image in [0, 1].
    """
    model, _, images = _classifier_and_images(source, [image_path])
    from keras_cv_course.understanding.attribution import last_spatial_layer

    layer_names = layer_names or [last_spatial_layer(model)]
    from keras_cv_course.understanding.dream import deep_dream

    dreamed = deep_dream(model, images[0], layer_names, octaves=octaves,
                         steps_per_octave=steps_per_octave, step_size=step_size, seed=seed)
    title = f"DeepDream: {', '.join(layer_names)}"
    _write_all(os.path.dirname(out_path) or ".",
               [(out_path, _pair_figure(images[0], dreamed, title))])
    return dreamed


def stylize(content_path, out_path, style=None, network=None, size=256, steps=200,
            weights="auto", seed=0):
    """Stylizes an image by Gatys et al.'s optimisation or a trained Johnson et al. network.

    Args:
        content_path: the photo to stylize.
        out_path: the PNG to write.
        style: a style image file (optimisation).
        network: a ``.keras`` file of a trained ``style_network.transformer_net``.
        size: the side the content (and style) image is resized to.
        steps: optimisation steps.
        weights: the VGG-16 weights of the perceptual features
            (``style_features.perceptual_extractor``).
        seed: the optimisation's seed.

    Returns:
        ``(image, note)``: the stylized image and a line saying how it was
        made (for optimisation, which VGG-16 weights).
    """
    if (style is None) == (network is None):
        raise KCCError("stylize takes exactly one of --style IMAGE (optimise the image, "
                       "Gatys et al.) and --network FILE.keras (Johnson et al.)")
    content = read_image(content_path, (size, size, 3))
    if network is not None:
        image, note = _stylize_with_network(network, content)
    else:
        image, note = _stylize_by_optimisation(content, read_image(style, (size, size, 3)),
                                               steps, weights, seed)
    _write_all(os.path.dirname(out_path) or ".",
               [(out_path, _pair_figure(content, image, note))])
    return image, note


def _stylize_with_network(path, content):
    from keras_cv_course.runs import load_keras_file

    network = load_keras_file(path)
    image = np.asarray(network.predict(content[None], verbose=0))[0]
    return np.clip(image, 0.0, 1.0), f"feed-forward network {os.path.basename(path)}"


def _stylize_by_optimisation(content, style, steps, weights, seed):
    from keras_cv_course.understanding.style import stylize_by_optimisation
    from keras_cv_course.understanding.style_features import perceptual_extractor

    extractor, description = perceptual_extractor(weights=weights)
    image, _ = stylize_by_optimisation(content, style, extractor, steps=steps, seed=seed)
    return image, f"optimised {steps} steps; {description}"


def _classifier_and_images(source, image_paths):
    model, task, shape, class_names = open_source(source, need_no_model=False)
    if not isinstance(model.output_shape, tuple) or len(model.output_shape) != 2:
        raise KCCError(f"expected a classifier (outputs (batch, classes)); {source!r} is a "
                       f"{task.name} model with outputs {model.output_shape}")
    return model, class_names, np.stack([read_image(path, shape) for path in image_paths])


def _classes(probabilities, class_index):
    count = probabilities.shape[-1]
    if class_index is None:
        return probabilities.argmax(axis=-1)
    if not 0 <= int(class_index) < count:
        raise KCCError(f"class index must be in [0, {count}), got {class_index}")
    return np.full(len(probabilities), int(class_index))


def _probability(row, label):
    return float(row[label])


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def _map_figure(image, heat, title):
    """The image, and the map laid over it in the ``inferno`` colour map."""
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(6, 3.4))
    shown = image[..., 0] if image.shape[-1] == 1 else image
    left.imshow(shown, cmap="gray" if image.shape[-1] == 1 else None, vmin=0, vmax=1)
    right.imshow(shown, cmap="gray" if image.shape[-1] == 1 else None, vmin=0, vmax=1)
    right.imshow(heat, cmap="inferno", alpha=0.6)
    _finish(figure, (left, right), title)
    return figure


def _pair_figure(before, after, title):
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(6, 3.4))
    for axis, image in zip(axes, (before, after)):
        axis.imshow(image[..., 0] if image.shape[-1] == 1 else image,
                    cmap="gray" if image.shape[-1] == 1 else None, vmin=0, vmax=1)
    _finish(figure, axes, title)
    return figure


def _finish(figure, axes, title):
    for axis in axes:
        axis.axis("off")
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()


def _write_all(out_dir, figures):
    """Saves every ``(path, figure)``, each through a temporary name, then closes them."""
    import matplotlib.pyplot as plt

    try:
        os.makedirs(out_dir, exist_ok=True)
        for path, figure in figures:
            temporary = f"{path}.tmp.png"
            figure.savefig(temporary, dpi=100)
            os.replace(temporary, path)
    except OSError as error:
        raise KCCError(f"cannot write into {out_dir!r}: {error.strerror or error}") from None
    finally:
        for _, figure in figures:
            plt.close(figure)
