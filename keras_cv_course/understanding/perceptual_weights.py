"""Which VGG-16 weights the perceptual features use, and the project's own.

Gatys et al. and Johnson et al. measure images with a VGG-16 trained on
ImageNet. Those weights cannot be downloaded everywhere, so
``perceptual_extractor(weights="auto")`` picks, in order:

1. ``"imagenet"``, when keras.applications' VGG-16 file (without its top)
   is already in the Keras cache (``$KERAS_HOME/models`` or
   ``~/.keras/models``), so nothing is downloaded;
2. otherwise weights trained by this project: the registry's full-width
   VGG-16 with batch normalisation (``vgg16_bn``; a plain VGG-16 barely
   moves from its initialisation in a few CPU epochs) trained with
   ``training.train`` on the embedded ``shapes`` images (coloured shapes on
   textured backgrounds), then each BatchNorm *folded* into the
   convolution before it, ``W' = W * gamma / sqrt(var + eps)`` and
   ``b' = (b - mean) * gamma / sqrt(var + eps) + beta``, which at inference
   is the same function (TFLite folds BatchNorm the same way), so that the
   plain VGG-16 of the extractor carries them. They are cached under
   ``$KCC_HOME/perceptual`` (default ``~/.keras_cv_course/perceptual``) and
   trained once, on first use.

A network that has learnt to tell shapes and colours apart has edge,
colour and corner detectors in its first blocks, which is what style
losses read; it has seen no natural images, so its pictures are not the
papers'. Every extractor returns one line stating which weights it uses,
and the project's weights carry a JSON record of how they were trained.
"""

import json
import os
import tempfile

import keras
import numpy as np

from keras_cv_course import applications
from keras_cv_course.applications.classification.vgg import BLOCK_WIDTHS
from keras_cv_course.errors import KCCError
from keras_cv_course.runs import write_atomically

IMAGENET_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"  # keras.applications
PROJECT_DATA = "shapes"
PROJECT_RECIPE = dict(epochs=6, batch_size=32, learning_rate=3e-4, image_size=(32, 32),
                      num_examples=1200)
PROJECT_FC_UNITS = 256  # the classifier head is thrown away; a narrow one trains faster


def imagenet_weights_cached():
    """True when keras.applications' VGG-16 (no top) is in the Keras cache."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.isfile(os.path.join(home, "models", IMAGENET_FILE))


def project_weights_path(home=None):
    """Where the project's VGG-16 perceptual weights are cached."""
    home = home or os.environ.get("KCC_HOME") or os.path.join(os.path.expanduser("~"),
                                                              ".keras_cv_course")
    return os.path.join(home, "perceptual", f"vgg16_{PROJECT_DATA}.weights.h5")


def record_path(weights_path):
    """The JSON record written next to project weights."""
    return os.path.splitext(weights_path)[0] + ".json"


def resolve(weights, log=print):
    """``"auto"``, ``"project"`` and ``"random"`` as a value the VGG builder loads.

    ``"auto"`` is ImageNet when cached, else the project's weights;
    ``"project"`` is always the project's. They are trained first when
    missing (a few minutes on a CPU), and ``log`` says so. ``"random"`` is
    ``None``. Other values are returned unchanged.
    """
    if weights == "random":
        return None
    if weights == "auto" and imagenet_weights_cached():
        return "imagenet"
    if weights not in ("auto", "project"):
        return weights
    path = project_weights_path()
    if not os.path.isfile(path):
        log(f"training VGG-16 perceptual weights on {PROJECT_DATA} once; cached at {path}")
        train_project_weights(path)
    return path


def train_project_weights(path, block_widths=BLOCK_WIDTHS, fc_units=PROJECT_FC_UNITS, seed=0,
                          verbose=0,
                          **recipe):
    """Trains VGG-16-BN on ``shapes``; saves its folded convolutions as a VGG-16.

    Args:
        path: the ``.weights.h5`` file to write (atomically, with its JSON
            record beside it).
        block_widths: the convolutions' widths (the reference's by default,
            so that the weights fit the extractor's VGG-16; shrink for tests).
        fc_units: the width of the classifier head, which is trained and
            then discarded.
        seed: seeds the data and the weights.
        verbose: ``fit``'s verbosity.
        **recipe: overrides of ``PROJECT_RECIPE`` (``epochs``, ``batch_size``,
            ``learning_rate``, ``image_size``, ``num_examples``).

    Returns:
        The JSON record: data, recipe and test accuracy.
    """
    from keras_cv_course.data import load_dataset
    from keras_cv_course.training import train

    recipe = {**PROJECT_RECIPE, **recipe}
    bundle = load_dataset(PROJECT_DATA, image_size=recipe["image_size"], seed=seed,
                          num_examples=recipe["num_examples"])
    with tempfile.TemporaryDirectory() as folder:
        run = train("vgg16_bn", bundle, os.path.join(folder, "run"), epochs=recipe["epochs"],
                    batch_size=recipe["batch_size"], learning_rate=recipe["learning_rate"],
                    seed=seed, verbose=verbose, block_widths=block_widths, fc_units=fc_units)
    backbone = folded_vgg(run.model, block_widths)
    record = dict(model="vgg16_bn, BatchNorm folded into vgg16", data=PROJECT_DATA,
                  classes=list(bundle.class_names), block_widths=list(block_widths),
                  fc_units=fc_units, seed=seed, **recipe,
                  test_accuracy=run.metrics.get("accuracy"))
    _save_atomically(backbone, path, record)
    return record


def fold_batch_norm(kernel, bias, gamma, beta, mean, variance, epsilon):
    """A convolution followed by inference-mode BatchNorm, as one convolution."""
    scale = gamma / np.sqrt(variance + epsilon)  # one factor per output channel
    return kernel * scale, (bias - mean) * scale + beta


def folded_vgg(vgg_bn, block_widths=BLOCK_WIDTHS):
    """The registry's plain VGG-16 (no top) computing ``vgg_bn``'s ReLU outputs.

    Every ``blockB_convC`` of the plain network gets the folded weights of
    ``vgg_bn``'s ``blockB_convC`` and ``blockB_convC_bn``.
    """
    plain = applications.build("vgg16", include_top=False, input_shape=(None, None, 3),
                               block_widths=block_widths)
    for layer in plain.layers:
        if isinstance(layer, keras.layers.Conv2D):
            norm = vgg_bn.get_layer(f"{layer.name}_bn")
            layer.set_weights(fold_batch_norm(*vgg_bn.get_layer(layer.name).get_weights(),
                                              *norm.get_weights(), norm.epsilon))
    return plain


def _save_atomically(backbone, path, record):
    """The weights and their JSON record, each through a temporary file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write_record(temporary):
        with open(temporary, "w") as file:
            json.dump(record, file, indent=1)

    write_atomically(record_path(path), write_record)
    write_atomically(path, backbone.save_weights, suffix=".weights.h5")


def describe(weights):
    """The one-line statement of which VGG-16 weights the features use."""
    if weights is None:
        return "perceptual features: VGG-16, random initialisation (no ImageNet weights given)"
    if weights == "imagenet":
        return "perceptual features: VGG-16, ImageNet weights (keras.applications VGG16)"
    path = os.fspath(weights)
    if os.path.isfile(record_path(path)):
        with open(record_path(path)) as file:
            record = json.load(file)
        accuracy = record.get("test_accuracy")
        scored = f", test accuracy {accuracy:.3f}" if accuracy is not None else ""
        return (f"perceptual features: VGG-16 trained by this project on {record['data']} "
                f"({record['epochs']} epochs{scored}; no ImageNet weights in the Keras cache), "
                f"{path}")
    if not os.path.isfile(path):
        raise KCCError(f"VGG-16 weights file {path!r} does not exist; expected 'auto', "
                       f"'project', 'imagenet', None or a .weights.h5 file")
    return f"perceptual features: VGG-16, weights from {path}"
