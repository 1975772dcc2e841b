"""The classifier argument contract, shared by every classification model.

keras.applications gives each classifier the same arguments: ``include_top``,
``weights``, ``input_tensor``, ``input_shape``, ``pooling``, ``classes``,
``classifier_activation`` and ``name``. The helpers here implement that
contract once, so each model file only describes its architecture.
"""

import os

import keras

from keras_cv_course.errors import KCCError

POOLINGS = (None, "avg", "max")


def check_image_shape(input_shape, min_size=1, name="input_shape"):
    """Validates an image shape ``(height, width, channels)``.

    Raises:
        KCCError: the shape is not three positive sizes (height and width may
            be ``None``) or is smaller than ``min_size``.
    """
    if input_shape is None or len(tuple(input_shape)) != 3:
        raise KCCError(f"{name} must be (height, width, channels), got {input_shape!r}")
    height, width, channels = tuple(input_shape)
    if channels is None or int(channels) < 1:
        raise KCCError(f"{name} must have a positive channel count, got {input_shape!r}")
    for size in (height, width):
        if size is not None and int(size) < min_size:
            raise KCCError(
                f"{name} height and width must be at least {min_size}, got {input_shape!r}"
            )
    return tuple(input_shape)


def image_input(input_tensor=None, input_shape=None, default_shape=(224, 224, 3),
                min_size=1):
    """Returns the model's image input, following keras.applications.

    Args:
        input_tensor: an existing Keras tensor to build on, or ``None``.
        input_shape: ``(height, width, channels)``; ``None`` uses
            ``default_shape``.
        default_shape: the shape used when neither argument is given.
        min_size: smallest height and width the architecture accepts.
    """
    if input_tensor is not None:
        check_image_shape(input_tensor.shape[1:], min_size, "input_tensor shape")
        return input_tensor
    shape = check_image_shape(input_shape or default_shape, min_size)
    return keras.Input(shape=shape, name="images")


def model_inputs(image, input_tensor=None):
    """The model's inputs: the source inputs of a user's ``input_tensor``."""
    if input_tensor is None:
        return image
    return keras.utils.get_source_inputs(input_tensor)


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
        return keras.layers.Dense(
            classes, activation=classifier_activation, name=head_name
        )(x)
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
