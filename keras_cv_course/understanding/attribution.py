"""Attribution maps: which pixels a classifier's decision depends on.

* Saliency (Simonyan, Vedaldi and Zisserman, "Deep Inside Convolutional
  Networks", ICLR workshop 2014, arXiv:1312.6034): ``max_c |d S / d x_c|``,
  the largest absolute gradient of the class score ``S`` over the channels.
* SmoothGrad (Smilkov et al., "SmoothGrad: removing noise by adding noise",
  arXiv:1706.03825, 2017): the gradient averaged over ``n`` noisy copies
  ``x + N(0, sigma^2)``, ``sigma = noise_level * (max x - min x)``.
* Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep
  Networks via Gradient-based Localization", ICCV 2017, arXiv:1610.02391):
  ``ReLU(sum_k alpha_k A_k)`` with ``alpha_k`` the spatial mean of
  ``d S / d A_k`` over a convolutional layer's feature maps ``A``,
  upsampled bilinearly to the image.
* Guided backpropagation (Springenberg et al. 2015, see ``guided``) and
  guided Grad-CAM (Selvaraju et al.: their pixel-wise product).
* Occlusion (Zeiler and Fergus, "Visualizing and Understanding
  Convolutional Networks", ECCV 2014, arXiv:1311.2901): the drop in the
  class probability when a grey patch hides each region.

The score ``S`` is the *pre-softmax* class score (the logit), as in
Simonyan et al. and Selvaraju et al.: the gradient of a probability mixes
in every other class and vanishes when the softmax saturates. For a model
ending in a softmax, ``logit_model`` rebuilds the last layer without it
(a copy of the final ``Dense`` with ``activation=None`` and the same
weights, or the input of a final ``Activation("softmax")``).

Every function takes a classifier and images ``(batch, height, width,
channels)`` in ``[0, 1]`` and returns NumPy maps ``(batch, height, width)``.
"""

import keras
import numpy as np
from keras import layers, ops

from keras_cv_course.errors import KCCError
from keras_cv_course.understanding.gradients import gradient, value_and_gradient
from keras_cv_course.understanding.guided import guided_model
from keras_cv_course.understanding.scores import (
    check_images,
    model_input,
    outputs_probabilities,
)

GREY = 0.5


def logit_model(model):
    """``model`` with its final softmax removed; ``model`` itself when it has none.

    The new model shares every layer with ``model`` except the last, which is
    a copy with ``activation=None`` and copied weights; ``model`` is unchanged.
    """
    last = model.layers[-1]
    if getattr(getattr(last, "activation", None), "__name__", "") != "softmax":
        return model
    if isinstance(last, layers.Activation):
        return keras.Model(model_input(model), last.input, name=f"{model.name}_logits")
    config = dict(last.get_config(), activation=None, name=f"{last.name}_logits")
    linear = last.__class__.from_config(config)
    outputs = linear(last.input)
    linear.set_weights(last.get_weights())
    return keras.Model(model_input(model), outputs, name=f"{model.name}_logits")


def class_indices(model, images, class_index=None):
    """One class per image: ``class_index`` broadcast, or the predicted class.

    Raises:
        KCCError: a class out of range, or one class per image of the wrong count.
    """
    if class_index is None:
        return np.argmax(ops.convert_to_numpy(model(images, training=False)), axis=-1)
    classes = int(model.output_shape[-1])
    indices = np.asarray(class_index).astype("int64").reshape(-1)
    if indices.size == 1:
        indices = np.repeat(indices, len(images))
    if len(indices) != len(images):
        raise KCCError(f"class_index must be one class or one per image ({len(images)}), "
                       f"got {len(indices)}")
    if np.any((indices < 0) | (indices >= classes)):
        raise KCCError(f"class_index must be in [0, {classes}), got {indices.tolist()}")
    return indices


def class_score(scorer, indices):
    """``x -> scorer(x)[i, indices[i]]``: one score per image, to differentiate."""
    columns = ops.expand_dims(ops.convert_to_tensor(indices.astype("int32")), -1)

    def score(x):
        return ops.take_along_axis(ops.cast(scorer(x, training=False), "float32"),
                                   columns, axis=-1)[:, 0]

    return score


def _prepared(model, images, class_index):
    images = check_images(images, model)
    return images, class_indices(model, images, class_index)


def channel_max_abs(grads):
    """``(batch, H, W, C)`` gradients -> ``(batch, H, W)`` maps ``max_c |g|``."""
    return np.max(np.abs(grads), axis=-1).astype("float32")


def saliency(model, images, class_index=None):
    """Vanilla gradient saliency (Simonyan et al. 2014): ``max_c |d logit / d x|``."""
    images, indices = _prepared(model, images, class_index)
    return channel_max_abs(gradient(class_score(logit_model(model), indices), images))


def smoothgrad(model, images, class_index=None, noise_level=0.15, samples=25, seed=0):
    """SmoothGrad (Smilkov et al. 2017) of the logit gradient.

    Args:
        noise_level: the noise's standard deviation as a fraction of each
            image's range ``max - min`` (the paper finds 10-20% works well).
        samples: number of noisy copies ``n``.
        seed: seed of the noise.

    Returns:
        ``max_c |mean_n grad(x + noise_n)|``, ``(batch, H, W)``.
    """
    images, indices = _prepared(model, images, class_index)
    if int(samples) < 1:
        raise KCCError(f"samples must be a positive integer, got {samples}")
    rng = np.random.default_rng(seed)
    sigma = noise_level * (images.max(axis=(1, 2, 3)) - images.min(axis=(1, 2, 3)))
    score = class_score(logit_model(model), indices)
    total = np.zeros_like(images)
    for _ in range(int(samples)):
        noise = rng.standard_normal(images.shape) * sigma[:, None, None, None]
        total += gradient(score, (images + noise).astype("float32"))
    return channel_max_abs(total / int(samples))


def last_spatial_layer(model):
    """The name of the last layer with a ``(batch, H, W, C)`` output."""
    for layer in reversed(model.layers):
        if len(layer.output.shape) == 4:
            return layer.name
    raise KCCError(f"model {model.name!r} has no layer with a (batch, H, W, C) output")


def tapped_model(model, layer_name):
    """``(images, delta) -> logits`` with ``delta`` added to ``layer_name``'s output.

    The gradient with respect to ``delta`` at ``delta = 0`` is the gradient
    with respect to the layer's activations, so ``value_and_gradient`` (an
    input gradient) gives Grad-CAM's ``d S / d A``. The layers are shared
    with ``model``, not copied; ``model`` is unchanged.
    """
    if layer_name not in [layer.name for layer in model.layers]:
        raise KCCError(f"model {model.name!r} has no layer {layer_name!r}")
    shape = model.get_layer(layer_name).output.shape[1:]
    logits = logit_model(model)
    # clone_model rebuilds a graph between a model's own inputs, so ``delta``
    # is first made an (unused) input of the model to clone.
    with_delta = keras.Model([logits.inputs[0], keras.Input(shape)], logits.outputs[0])
    images, delta = keras.Input(logits.inputs[0].shape[1:]), keras.Input(shape)

    def call(layer, *args, **kwargs):
        output = layer(*args, **kwargs)
        return output + delta if layer.name == layer_name else output

    return keras.models.clone_model(with_delta, input_tensors=[images, delta],
                                    clone_function=lambda layer: layer, call_function=call)


def upsample(maps, size):
    """``(batch, h, w)`` maps resized bilinearly to ``size = (H, W)``."""
    resized = ops.image.resize(maps[..., None].astype("float32"), size, interpolation="bilinear")
    return ops.convert_to_numpy(resized)[..., 0]


def grad_cam(model, images, class_index=None, layer_name=None):
    """Grad-CAM (Selvaraju et al. 2017) at ``layer_name`` (default: the last 4-D layer).

    Returns:
        ``ReLU(sum_k alpha_k A_k)`` upsampled to ``(batch, H, W)``.
    """
    images, indices = _prepared(model, images, class_index)
    layer_name = layer_name or last_spatial_layer(model)
    features = keras.Model(model_input(model), model.get_layer(layer_name).output)
    activations = ops.convert_to_numpy(features(images, training=False))
    tapped = tapped_model(model, layer_name)
    columns = ops.expand_dims(ops.convert_to_tensor(indices.astype("int32")), -1)
    image_tensor = ops.convert_to_tensor(images)

    def score(delta):
        logits = ops.cast(tapped([image_tensor, delta], training=False), "float32")
        return ops.take_along_axis(logits, columns, axis=-1)[:, 0]

    _, grads = value_and_gradient(score, np.zeros_like(activations, dtype="float32"))
    weights = grads.mean(axis=(1, 2), keepdims=True)  # alpha_k, global-average-pooled
    cam = np.maximum((weights * activations).sum(axis=-1), 0.0)
    return upsample(cam, images.shape[1:3])


def guided_backprop(model, images, class_index=None):
    """Guided backpropagation (Springenberg et al. 2015): ``max_c |guided grad|``."""
    images, indices = _prepared(model, images, class_index)
    guided = guided_model(logit_model(model))
    return channel_max_abs(gradient(class_score(guided, indices), images))


def guided_grad_cam(model, images, class_index=None, layer_name=None):
    """Guided Grad-CAM (Selvaraju et al. 2017): guided backprop times Grad-CAM."""
    images, indices = _prepared(model, images, class_index)
    return guided_backprop(model, images, indices) * grad_cam(model, images, indices, layer_name)


def probabilities(model, images, batch_size=256):
    """Class probabilities ``(batch, classes)`` of softmax and logit models alike."""
    outputs = np.asarray(model.predict(images, batch_size=batch_size, verbose=0), "float64")
    if outputs_probabilities(model):
        return outputs
    exp = np.exp(outputs - outputs.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def occlusion(model, images, class_index=None, patch=8, stride=4, fill=GREY):
    """Occlusion sensitivity (Zeiler and Fergus 2014).

    A ``patch x patch`` square of value ``fill`` slides over each image with
    ``stride``; each pixel's value is the mean drop ``p(class | x) -
    p(class | occluded x)`` over the patches that cover it (large where the
    evidence for the class is). All occluded copies go through the model
    in one ``predict``.

    Returns:
        ``(batch, H, W)`` probability drops (negative where hiding helps).
    """
    images, indices = _prepared(model, images, class_index)
    if int(patch) < 1 or int(stride) < 1:
        raise KCCError(f"patch and stride must be positive integers, got {patch}, {stride}")
    height, width = images.shape[1:3]
    corners = [(top, left) for top in range(0, max(height - patch, 0) + 1, stride)
               for left in range(0, max(width - patch, 0) + 1, stride)]
    occluded = np.repeat(images[None], len(corners), axis=0)  # (patches, batch, H, W, C)
    for number, (top, left) in enumerate(corners):
        occluded[number, :, top:top + patch, left:left + patch, :] = fill
    batch = np.arange(len(images))
    base = probabilities(model, images)[batch, indices]
    hidden = probabilities(model, occluded.reshape(-1, *images.shape[1:]))
    hidden = hidden.reshape(len(corners), len(images), -1)[:, batch, indices]
    drops = np.zeros(images.shape[:3], dtype="float64")
    counts = np.zeros(images.shape[1:3], dtype="float64")
    for (top, left), probability in zip(corners, hidden):
        drops[:, top:top + patch, left:left + patch] += (base - probability)[:, None, None]
        counts[top:top + patch, left:left + patch] += 1
    return (drops / np.maximum(counts, 1)).astype("float32")
