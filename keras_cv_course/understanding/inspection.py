"""Looking inside a trained CNN: filters, top-activating patches, neighbours, embeddings.

* First-layer filters, the maximally activating image patches of a unit,
  and nearest neighbours in feature space are the visualisations of
  Krizhevsky, Sutskever and Hinton (NeurIPS 2012), Zeiler and Fergus
  (ECCV 2014, arXiv:1311.2901) and Girshick et al. (R-CNN, CVPR 2014).
* Two-dimensional embeddings of the features with PCA or t-SNE (van der
  Maaten and Hinton, "Visualizing Data using t-SNE", JMLR 2008), here
  from scikit-learn.
"""

import numpy as np
from keras import ops

from keras_cv_course.errors import KCCError
from keras_cv_course.understanding.gradients import gradient
from keras_cv_course.understanding.scores import check_images, feature_model


def first_conv_layer(model):
    """The first layer with a 4-D (convolution) kernel."""
    for layer in model.layers:
        kernels = [w for w in layer.weights if len(w.shape) == 4]
        if kernels:
            return layer, kernels[0]
    raise KCCError(f"model {model.name!r} has no convolution layer")


def first_layer_filters(model):
    """The first convolution's filters as images ``(n, kh, kw, channels)`` in ``[0, 1]``.

    The kernel ``(kh, kw, channels, n)`` is transposed and min-max
    normalised over all filters together, so their contrasts compare.
    """
    _, kernel = first_conv_layer(model)
    filters = np.transpose(ops.convert_to_numpy(kernel), (3, 0, 1, 2)).astype("float32")
    low, high = filters.min(), filters.max()
    return (filters - low) / max(high - low, 1e-12)


def receptive_field(model, layer_name, image_shape):
    """The side, in pixels, of the receptive field of a unit at ``layer_name``.

    Measured rather than derived from the kernels and strides: it is the
    extent of the pixels that the centre cell's activations (summed over
    channels) depend on, i.e. where their input gradient is non-zero, at a
    mid-grey image with a little noise (so that ReLUs are not all off).
    """
    features = feature_model(model, layer_name)
    rng = np.random.default_rng(0)
    probe = (0.5 + 0.1 * rng.standard_normal((1, *image_shape))).astype("float32")
    height, width = features.output.shape[1:3]

    def centre(x):
        return ops.sum(features(x, training=False)[:, height // 2, width // 2, :])

    support = np.argwhere(np.abs(gradient(centre, probe))[0].sum(axis=-1) > 0)
    if len(support) == 0:
        return 1
    extent = support.max(axis=0) - support.min(axis=0) + 1
    return int(extent.max())


def max_activating_patches(model, layer_name, unit, images, k=8):
    """The ``k`` image patches that excite one channel of a layer most.

    Each image's strongest activation of channel ``unit`` at ``layer_name``
    is found; the ``k`` strongest images are kept and, for each, the square
    crop of side ``receptive_field`` centred on the input position of that
    feature-map cell (cell ``(i, j)`` of an ``h x w`` map covers centre
    ``((i + 0.5) H / h, (j + 0.5) W / w)``), zero-padded at the borders.

    Returns:
        ``(patches, values)``: ``(k, side, side, channels)`` crops and the
        ``k`` activation values, strongest first.
    """
    images = check_images(images, model)
    features = feature_model(model, layer_name)
    activations = ops.convert_to_numpy(features.predict(images, verbose=0))
    if activations.ndim != 4 or not 0 <= int(unit) < activations.shape[-1]:
        raise KCCError(f"unit must be a channel of the 4-D output {activations.shape[1:]} "
                       f"of {layer_name!r}, got {unit}")
    maps = activations[..., int(unit)]
    flat = maps.reshape(len(images), -1)
    best = np.argsort(-flat.max(axis=1))[:int(k)]
    side = receptive_field(model, layer_name, images.shape[1:])
    half = side // 2
    padded = np.pad(images, ((0, 0), (half, side), (half, side), (0, 0)))
    scale = np.asarray(images.shape[1:3]) / np.asarray(maps.shape[1:3])
    patches = []
    for index in best:
        cell = np.unravel_index(np.argmax(flat[index]), maps.shape[1:3])
        top, left = ((np.asarray(cell) + 0.5) * scale).astype(int)  # + half - half
        patches.append(padded[index, top:top + side, left:left + side])
    return np.stack(patches), flat.max(axis=1)[best]


def nearest_neighbours(features, queries, k=5):
    """Indices ``(len(queries), k)`` of the ``k`` nearest rows of ``features``
    (Euclidean), nearest first."""
    features = np.asarray(features, "float64").reshape(len(features), -1)
    queries = np.asarray(queries, "float64").reshape(len(queries), -1)
    if features.shape[1] != queries.shape[1]:
        raise KCCError(f"queries have {queries.shape[1]} features, expected {features.shape[1]}")
    distances = (np.sum(queries**2, 1)[:, None] - 2 * queries @ features.T
                 + np.sum(features**2, 1)[None])
    return np.argsort(distances, axis=1, kind="stable")[:, :int(k)]


def feature_and_pixel_neighbours(model, images, queries, k=5, layer_name=None):
    """Nearest neighbours of ``queries`` among ``images`` in feature and in pixel space.

    Args:
        layer_name: the feature layer (default: the input of the last layer,
            the penultimate features of Krizhevsky et al.).

    Returns:
        ``{"feature": indices, "pixel": indices}``, each ``(len(queries), k)``.
    """
    images, queries = check_images(images, model), check_images(queries, model)
    extractor = feature_model(model, layer_name)
    embedded = extractor.predict(np.concatenate([images, queries]), verbose=0)
    embedded = np.asarray(embedded).reshape(len(images) + len(queries), -1)
    return {"feature": nearest_neighbours(embedded[:len(images)], embedded[len(images):], k),
            "pixel": nearest_neighbours(images, queries, k)}


def embed_2d(features, method="pca", seed=0):
    """A 2-D embedding ``(n, 2)`` of ``features`` by ``"pca"`` or ``"tsne"`` (scikit-learn)."""
    features = np.asarray(features, "float64").reshape(len(features), -1)
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(features)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = min(30.0, max(1.0, (len(features) - 1) / 3))
        return TSNE(n_components=2, perplexity=perplexity, init="pca",
                    random_state=seed).fit_transform(features)
    raise KCCError(f"method must be 'pca' or 'tsne', got {method!r}")
