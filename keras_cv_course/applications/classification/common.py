"""The classifier argument contract, shared by every classification model.

keras.applications gives each classifier the same arguments: ``include_top``,
``weights``, ``input_tensor``, ``input_shape``, ``pooling``, ``classes``,
``classifier_activation`` and ``name``. The helpers here implement that
contract once, so each model file only describes its architecture.

``FeaturePyramid`` records, while a builder runs, the last tensor at each
cumulative stride: the feature levels ``C1``-``C5`` that
``applications.backbone`` returns (see ``applications/backbones.py``).
"""

import os

import keras

from keras_cv_course.applications.backbones import level_name, record_levels
from keras_cv_course.errors import KCCError

POOLINGS = (None, "avg", "max")
# The levels a CNN with the ImageNet stem records at stride 4 or coarser.
CNN_FEATURE_LEVELS = ("C2", "C3", "C4", "C5")
INT16_CONV_REFUSED = ("LiteRT refuses to prepare its 16x8 convolutions (the requantization "
                      "scale overflows: kernel_util.cc no_integer_overflow_from_quantization)")
"""Measured on the MobileNet v1 and v2 families: their 16x8 files convert but do not run."""


class FeaturePyramid:
    """The last tensor at each cumulative stride, recorded while a model is built.

    A builder starts at stride 1 (the input) and tells the pyramid each
    layer's own stride as it goes, so the stride is the true one even when
    the input's height and width are unknown. A tensor recorded at a stride
    replaces the one recorded there before: each level ends as the last
    tensor at its stride, as timm's ``feature_info`` picks them.

    Example:
        >>> pyramid = FeaturePyramid()
        >>> x = pyramid.record(stem(image), strides=2)  # level C1
        >>> x = pyramid.record(block(x))                # replaces C1
        >>> model = pyramid.attach(keras.Model(image, head(x)))
        >>> list(model.pyramid_outputs)
        ['C1']
    """

    def __init__(self):
        self.stride = 1
        self.levels = {}

    def record(self, tensor, strides=1):
        """Multiplies the stride by ``strides`` and records ``tensor`` there; returns it."""
        self.stride *= int(strides)
        self.levels[level_name(self.stride)] = tensor
        return tensor

    def attach(self, model):
        """Stores the levels as ``model.pyramid_outputs``; returns the model."""
        return record_levels(model, self.levels)


# The axes of an input of each rank (batch excluded); the last axis is channels.
AXES = {
    2: ("points", "channels"),  # a point cloud: (P, 3)
    3: ("height", "width", "channels"),  # an image
    4: ("time", "height", "width", "channels"),  # a video, or a voxel grid (D, H, W, C)
}


def check_image_shape(input_shape, min_size=1, name="input_shape", rank=3):
    """Validates an input shape: an image ``(height, width, channels)`` by default.

    Args:
        input_shape: the shape without the batch axis.
        min_size: the smallest size of every axis but the channels.
        name: what the shape is called in the error.
        rank: 3 for images, 4 for videos or voxels, 2 for point clouds
            (see ``AXES``).

    Raises:
        KCCError: the shape does not have ``rank`` positive sizes (all but
            the channels may be ``None``), or an axis is below ``min_size``.
    """
    axes = AXES[rank]
    layout = "(" + ", ".join(axes) + ")"
    if input_shape is None or len(tuple(input_shape)) != rank:
        raise KCCError(f"{name} must be {layout}, got {input_shape!r}")
    *sizes, channels = tuple(input_shape)
    if channels is None or int(channels) < 1:
        raise KCCError(f"{name} must have a positive channel count, got {input_shape!r}")
    for size in sizes:
        if size is not None and int(size) < min_size:
            sized = ", ".join(axes[:-2]) + (" and " if rank > 2 else "") + axes[-2]
            raise KCCError(f"{name} {sized.lstrip()} must be at least {min_size}, "
                           f"got {input_shape!r}")
    return tuple(input_shape)


def image_input(input_tensor=None, input_shape=None, default_shape=(224, 224, 3),
                min_size=1, rank=3, name="images"):
    """Returns the model's input tensor, following keras.applications.

    Args:
        input_tensor: an existing Keras tensor to build on, or ``None``.
        input_shape: the shape without the batch axis; ``None`` uses
            ``default_shape``.
        default_shape: the shape used when neither argument is given.
        min_size: smallest size of every axis but the channels.
        rank: 3 for images, 4 for videos and voxel grids, 2 for point clouds.
        name: the input's name (the task's input spec names it).
    """
    if input_tensor is not None:
        check_image_shape(input_tensor.shape[1:], min_size, "input_tensor shape", rank)
        return input_tensor
    shape = check_image_shape(input_shape or default_shape, min_size, rank=rank)
    return keras.Input(shape=shape, name=name)


def model_inputs(image, input_tensor=None):
    """The model's inputs: the source inputs of a user's ``input_tensor``."""
    if input_tensor is None:
        return image
    return keras.utils.get_source_inputs(input_tensor)


PREDICTION_DTYPE = "float32"
"""The dtype of every classifier's last layer. Under a mixed-precision policy the
network computes in float16 or bfloat16, but the predictions stay float32: the
loss, the softmax and an exported model's outputs keep full precision (bfloat16
has an 8-bit significand, so close logits would tie)."""


def classifier_head(x, include_top, pooling, classes, classifier_activation,
                    dropout_rate=0.0, head_name="predictions"):
    """Global pooling and the final classifier, or the chosen feature pooling.

    Args:
        x: the last feature map, ``(batch, height, width, channels)``.
        include_top: add the classifier.
        pooling: without the top, ``None`` (keep the map), ``"avg"`` or
            ``"max"``.
        classes: number of classes of the classifier.
        classifier_activation: activation of the classifier, usually
            ``"softmax"``; ``None`` returns logits.
        dropout_rate: dropout before the classifier.
        head_name: name of the classifier layer.
    """
    if pooling not in POOLINGS:
        raise KCCError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if include_top:
        if int(classes) < 1:
            raise KCCError(f"classes must be a positive integer, got {classes!r}")
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate:
            x = keras.layers.Dropout(dropout_rate, name="top_dropout")(x)
        return keras.layers.Dense(classes, activation=classifier_activation, name=head_name,
                                  dtype=PREDICTION_DTYPE)(x)
    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def load_weights(model, weights, imagenet_loader=None):
    """Loads ``weights`` into ``model``.

    Args:
        model: the freshly built model.
        weights: ``None`` (random init), ``"imagenet"``, or a path to a
            ``.weights.h5`` file.
        imagenet_loader: callable ``(model) -> None`` that transplants
            ImageNet weights, for architectures keras.applications ships.
    """
    if weights is None:
        return model
    if weights == "imagenet":
        if imagenet_loader is None:
            raise KCCError(
                f"{model.name}: no ImageNet weights are provided for this "
                "architecture (keras.applications does not ship it); use weights=None"
            )
        imagenet_loader(model)
        return model
    if not os.path.exists(str(weights)):
        raise KCCError(
            f"weights must be None, 'imagenet' or an existing file, got {weights!r}"
        )
    model.load_weights(weights)
    return model
