"""Sample-quality metrics for generative models: FID, KID, precision/recall, bits/dim.

A generative model is judged by comparing its samples with real data. The
first three metrics compare two sets of *features* (activations of a fixed
classifier, one row per image); the last one scores a likelihood model.

- **Fréchet distance (FID).** Heusel, Ramsauer, Unterthiner, Nessler and
  Hochreiter, "GANs Trained by a Two Time-Scale Update Rule Converge to a
  Local Nash Equilibrium", NeurIPS 2017, arXiv:1706.08500. Fit a Gaussian to
  each feature set and take the Fréchet (2-Wasserstein) distance between them:
  ``||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))``.
- **Kernel Inception Distance (KID).** Bińkowski, Sutherland, Arbel and
  Gretton, "Demystifying MMD GANs", ICLR 2018, arXiv:1801.01401. The unbiased
  estimator of the squared maximum mean discrepancy with the cubic polynomial
  kernel ``k(x, y) = (x . y / d + 1)^3``, averaged over random subsets. Unlike
  FID it has an unbiased estimator, so small sample sets can be compared.
- **Improved precision and recall.** Kynkäänniemi, Karras, Laine, Lehtinen and
  Aila, "Improved Precision and Recall Metric for Assessing Generative
  Models", NeurIPS 2019, arXiv:1904.06991. Each set's manifold is the union
  of balls around its samples, with radius the distance to the k-th nearest
  neighbour. Precision is the fraction of fake samples inside the real
  manifold (fidelity); recall the fraction of real samples inside the fake
  manifold (diversity).
- **Bits per dimension.** The negative log-likelihood of an image in nats,
  divided by ``D ln 2`` for ``D`` dimensions (pixels times channels), as
  reported for PixelRNN/PixelCNN (van den Oord, Kalchbrenner and Kavukcuoglu,
  "Pixel Recurrent Neural Networks", ICML 2016, arXiv:1601.06759). The
  pixel-independent baseline, one categorical distribution per pixel, shows
  how much a model gains by modelling dependencies between pixels.

Every function works on numpy arrays (numpy and scipy only); ``features_of``
turns images into feature rows with any Keras model, for example a digits
classifier trained by this project.

Example:
    >>> real = features_of(classifier, real_images)
    >>> fake = features_of(classifier, generator_samples)
    >>> fid = frechet_distance(real, fake)
    >>> kid_mean, kid_std = kernel_inception_distance(real, fake)
    >>> precision, recall = precision_recall(real, fake, k=3)
"""

import math
import warnings

import numpy as np
import scipy.linalg
from scipy.spatial.distance import cdist

from keras_cv_course.errors import KCCError

# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------


def _as_features(name, features, min_samples=2):
    """Returns ``features`` as a finite float64 (N, D) array, or raises ``KCCError``."""
    array = np.asarray(features)
    if array.ndim != 2:
        raise KCCError(
            f"{name}: expected a 2-D (samples, features) array, received shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise KCCError(f"{name}: expected real numbers, received dtype {array.dtype}")
    if array.shape[0] < min_samples:
        raise KCCError(
            f"{name}: expected at least {min_samples} samples, received {array.shape[0]}"
        )
    if array.shape[1] < 1:
        raise KCCError(f"{name}: expected at least 1 feature, received shape {array.shape}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        bad = int(np.size(array) - np.isfinite(array).sum())
        raise KCCError(f"{name}: expected finite values, received {bad} NaN or infinite values")
    return array


def _check_same_dim(name_a, a, name_b, b):
    if a.shape[1] != b.shape[1]:
        raise KCCError(
            f"{name_b}: expected {a.shape[1]} features per sample like {name_a}, "
            f"received {b.shape[1]}"
        )


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise KCCError(f"{name}: expected an integer >= {minimum}, received {value!r}")
    return int(value)


# ---------------------------------------------------------------------------
# Fréchet distance (FID)
# ---------------------------------------------------------------------------


def gaussian_statistics(features):
    """Mean and covariance of a feature set: the Gaussian that FID fits to it.

    Args:
        features: array of shape ``(N, D)``, one row per sample, ``N >= 2``.

    Returns:
        ``(mean, covariance)``: arrays of shape ``(D,)`` and ``(D, D)``. The
        covariance is the unbiased sample covariance (divided by ``N - 1``).
    """
    features = _as_features("features", features)
    return features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))


def _check_statistics(mu1, sigma1, mu2, sigma2):
    """Returns the statistics as float64 arrays after checking their shapes."""
    mu1, mu2 = (np.atleast_1d(np.asarray(mu, np.float64)) for mu in (mu1, mu2))
    sigma1, sigma2 = (np.atleast_2d(np.asarray(s, np.float64)) for s in (sigma1, sigma2))
    for name, mu, sigma in (("1", mu1, sigma1), ("2", mu2, sigma2)):
        d = mu.shape[0]
        if mu.ndim != 1 or sigma.shape != (d, d):
            raise KCCError(
                f"statistics {name}: expected a mean of shape (D,) and a covariance of shape "
                f"(D, D); received {mu.shape} and {sigma.shape}"
            )
        if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
            raise KCCError(f"statistics {name}: expected finite values, received NaN or infinity")
    if mu1.shape != mu2.shape:
        raise KCCError(
            f"statistics 2: expected dimension {mu1.shape[0]} like statistics 1, "
            f"received {mu2.shape[0]}"
        )
    return mu1, sigma1, mu2, sigma2


def _sqrtm(matrix):
    """``scipy.linalg.sqrtm`` without its warning on (nearly) singular input."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return scipy.linalg.sqrtm(matrix)


def _trace_sqrt_product(sigma1, sigma2, eps, imaginary_tolerance):
    """``Tr((sigma1 sigma2)^(1/2))``, robust to the round-off of nearly singular products.

    ``sigma1 @ sigma2`` is not symmetric, and when there are fewer samples than
    features it is singular, so ``sqrtm`` can return non-finite values or small
    imaginary parts. As public implementations do, a failed square root is
    retried with ``eps * I`` added to both covariances, and an imaginary part
    is dropped only if it is negligible.
    """
    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        largest = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if largest > imaginary_tolerance:
            raise KCCError(
                f"matrix square root: expected a negligible imaginary part "
                f"(<= {imaginary_tolerance}), received {largest:.3g}"
            )
        covmean = covmean.real
    return float(np.trace(covmean))


def frechet_distance_from_statistics(mu1, sigma1, mu2, sigma2, eps=1e-6, imaginary_tolerance=1e-3):
    """Fréchet distance between the Gaussians ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    ``d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))``.

    Args:
        mu1: mean of shape ``(D,)``.
        sigma1: covariance of shape ``(D, D)``.
        mu2: mean of shape ``(D,)``.
        sigma2: covariance of shape ``(D, D)``.
        eps: added to the covariances' diagonals when the square root of
            their product is not finite.
        imaginary_tolerance: the largest imaginary part on the square root's
            diagonal that is treated as round-off and dropped.

    Returns:
        The squared Fréchet distance, a float ``>= 0`` up to round-off.

    Example:
        >>> frechet_distance_from_statistics(np.zeros(2), np.eye(2), np.ones(2), np.eye(2))
        2.0
    """
    mu1, sigma1, mu2, sigma2 = _check_statistics(mu1, sigma1, mu2, sigma2)
    diff = mu1 - mu2
    trace_sqrt = _trace_sqrt_product(sigma1, sigma2, eps, imaginary_tolerance)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


def frechet_distance(features_a, features_b, eps=1e-6):
    """Fréchet distance between Gaussians fitted to two feature sets: FID on any features.

    Args:
        features_a: array of shape ``(N, D)``, e.g. features of real images.
        features_b: array of shape ``(M, D)``, e.g. features of generated images.
        eps: see ``frechet_distance_from_statistics``.

    Returns:
        The squared Fréchet distance (FID when the features are Inception
        pool3 features). Lower is better; identical sets give 0. The estimate
        is biased upwards for small N, so compare models at equal N.
    """
    features_a = _as_features("features_a", features_a)
    features_b = _as_features("features_b", features_b)
    _check_same_dim("features_a", features_a, "features_b", features_b)
    mu_a, sigma_a = gaussian_statistics(features_a)
    mu_b, sigma_b = gaussian_statistics(features_b)
    return frechet_distance_from_statistics(mu_a, sigma_a, mu_b, sigma_b, eps=eps)


# ---------------------------------------------------------------------------
# Kernel Inception Distance (KID)
# ---------------------------------------------------------------------------


def polynomial_kernel(x, y):
    """The cubic polynomial kernel of KID, ``k(x, y) = (x . y / d + 1)^3``.

    Args:
        x: array of shape ``(N, d)``.
        y: array of shape ``(M, d)``.

    Returns:
        The ``(N, M)`` kernel matrix.
    """
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def unbiased_mmd2(x, y):
    """Unbiased estimate of the squared MMD between the samples ``x`` and ``y``.

    ``MMD^2 = E k(x, x') + E k(y, y') - 2 E k(x, y)``; the unbiased (U-statistic)
    estimator leaves out the diagonal terms ``k(x_i, x_i)`` of the within-set
    averages, so it can be slightly negative.

    Args:
        x: array of shape ``(m, d)``, ``m >= 2``.
        y: array of shape ``(n, d)``, ``n >= 2``.

    Returns:
        The estimate, a float.
    """
    m, n = x.shape[0], y.shape[0]
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * k_xy.mean())


def kernel_inception_distance(features_a, features_b, subsets=100, subset_size=1000, seed=0):
    """KID: the unbiased MMD^2 with a cubic kernel, averaged over random subsets.

    Each subset draws ``subset_size`` rows of each set without replacement;
    ``subset_size`` is capped at the smaller set's size.

    Args:
        features_a: array of shape ``(N, D)``, e.g. features of real images.
        features_b: array of shape ``(M, D)``, e.g. features of generated images.
        subsets: number of random subsets, ``>= 1``.
        subset_size: samples drawn from each set per subset, ``>= 2``.
        seed: seed of the subset sampler, so results are reproducible.

    Returns:
        ``(mean, std)`` of the per-subset estimates. Lower is better; the
        mean is about 0 for two samples of one distribution.
    """
    features_a = _as_features("features_a", features_a)
    features_b = _as_features("features_b", features_b)
    _check_same_dim("features_a", features_a, "features_b", features_b)
    subsets = _check_int("subsets", subsets, 1)
    size = min(_check_int("subset_size", subset_size, 2), len(features_a), len(features_b))
    rng = np.random.default_rng(seed)
    estimates = np.empty(subsets)
    for i in range(subsets):
        x = features_a[rng.choice(len(features_a), size, replace=False)]
        y = features_b[rng.choice(len(features_b), size, replace=False)]
        estimates[i] = unbiased_mmd2(x, y)
    return float(estimates.mean()), float(estimates.std())


# ---------------------------------------------------------------------------
# Improved precision and recall
# ---------------------------------------------------------------------------


def _kth_neighbour_radii(features, k, batch_size):
    """Squared distance from each row to its k-th nearest other row, ``(N,)``.

    Distances are computed ``batch_size`` rows at a time, so memory stays
    at ``batch_size * N`` floats.
    """
    radii = np.empty(len(features))
    for start in range(0, len(features), batch_size):
        block = cdist(features[start : start + batch_size], features, "sqeuclidean")
        # Index 0 of each sorted row is the sample itself (distance 0), so
        # index k is its k-th nearest neighbour.
        radii[start : start + batch_size] = np.partition(block, k, axis=1)[:, k]
    return radii


def _fraction_inside(manifold, radii, queries, batch_size):
    """Fraction of ``queries`` inside at least one ball ``|q - manifold_i|^2 <= radii_i``."""
    inside = 0
    for start in range(0, len(queries), batch_size):
        block = cdist(queries[start : start + batch_size], manifold, "sqeuclidean")
        inside += int(np.any(block <= radii[None, :], axis=1).sum())
    return inside / len(queries)


def precision_recall(real_features, fake_features, k=3, batch_size=1024):
    """Improved precision and recall of generated samples against real ones.

    Args:
        real_features: array of shape ``(N, D)``.
        fake_features: array of shape ``(M, D)``.
        k: the neighbour whose distance sets each sample's ball radius;
            ``1 <= k < min(N, M)``. The paper uses 3.
        batch_size: rows of the distance matrix held in memory at once.

    Returns:
        ``(precision, recall)``, both in ``[0, 1]``: the fraction of fake
        samples inside the real manifold, and of real samples inside the fake
        manifold. Higher is better for both.
    """
    real = _as_features("real_features", real_features)
    fake = _as_features("fake_features", fake_features)
    _check_same_dim("real_features", real, "fake_features", fake)
    k = _check_int("k", k, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    if k >= min(len(real), len(fake)):
        raise KCCError(
            f"k: expected fewer than the number of samples in each set "
            f"({len(real)} real, {len(fake)} fake), received k={k}"
        )
    real_radii = _kth_neighbour_radii(real, k, batch_size)
    fake_radii = _kth_neighbour_radii(fake, k, batch_size)
    precision = _fraction_inside(real, real_radii, fake, batch_size)
    recall = _fraction_inside(fake, fake_radii, real, batch_size)
    return precision, recall


# ---------------------------------------------------------------------------
# Bits per dimension
# ---------------------------------------------------------------------------


def _dimension_count(dimensions):
    """``D`` from an integer or from an image shape such as ``(28, 28, 1)``."""
    if isinstance(dimensions, (tuple, list)):
        if not dimensions or not all(
            isinstance(size, (int, np.integer)) and not isinstance(size, bool) and size >= 1
            for size in dimensions
        ):
            raise KCCError(
                f"dimensions: expected a positive integer or an image shape of positive "
                f"integers, received {dimensions!r}"
            )
        return int(np.prod(dimensions))
    return _check_int("dimensions", dimensions, 1)


def bits_per_dimension(nll_nats_per_image, dimensions):
    """Converts a negative log-likelihood in nats per image to bits per dimension.

    ``bits/dim = NLL / (D ln 2)``.

    Args:
        nll_nats_per_image: ``-log p(x)`` in nats, a scalar or an array of
            per-image values.
        dimensions: ``D``, the number of dimensions of one image (height *
            width * channels), or the image shape itself.

    Returns:
        A float for a scalar input, else an array of the input's shape.

    Example:
        >>> bits_per_dimension(784 * math.log(256), (28, 28, 1))  # uniform over 256 levels
        8.0
    """
    d = _dimension_count(dimensions)
    nll = np.asarray(nll_nats_per_image, dtype=np.float64)
    if not np.isfinite(nll).all():
        raise KCCError("nll_nats_per_image: expected finite values, received NaN or infinity")
    bits = nll / (d * math.log(2.0))
    return float(bits) if bits.ndim == 0 else bits


def bits_per_dimension_from_log_likelihood(log_likelihood_nats, dimensions):
    """Bits per dimension from a log-likelihood ``log p(x)`` in nats per image.

    Args:
        log_likelihood_nats: ``log p(x)`` in nats, a scalar or an array.
        dimensions: ``D``, or the image shape.

    Returns:
        ``-log p(x) / (D ln 2)``, a float or an array like the input.
    """
    return bits_per_dimension(-np.asarray(log_likelihood_nats, dtype=np.float64), dimensions)


def _as_levels(name, images, levels):
    """Returns ``images`` as an int64 (N, P) array of values in ``[0, levels)``."""
    array = np.asarray(images)
    if array.ndim < 2 or array.shape[0] < 1:
        raise KCCError(
            f"{name}: expected a batch of images of shape (N, ...) with N >= 1, "
            f"received shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise KCCError(f"{name}: expected integer levels, received dtype {array.dtype}")
    if not np.isfinite(array).all() or not np.array_equal(array, np.round(array)):
        raise KCCError(f"{name}: expected integer levels in [0, {levels}), received non-integers")
    low, high = array.min(), array.max()
    if low < 0 or high >= levels:
        raise KCCError(
            f"{name}: expected integer levels in [0, {levels}), received values in [{low}, {high}]"
        )
    return array.reshape(array.shape[0], -1).astype(np.int64)


def pixel_independent_bits_per_dimension(train_images_levels, test_images_levels, levels):
    """Test bits/dim of a model with one independent categorical per pixel.

    Each dimension (pixel and channel) gets its own categorical distribution
    over ``levels`` values, fitted on the training images with add-one
    (Laplace) smoothing, ``p_j(v) = (count_j(v) + 1) / (N + levels)``, so no
    test value has probability 0. It is the baseline an autoregressive model
    must beat by modelling the dependencies between pixels.

    Args:
        train_images_levels: integer array of shape ``(N, ...)``, values in
            ``[0, levels)``.
        test_images_levels: integer array of shape ``(M, ...)``, the same
            per-image shape.
        levels: the number of values per dimension, ``>= 2`` (256 for 8-bit).

    Returns:
        The mean negative log2-likelihood per dimension of the test images.
        A uniform model scores ``log2(levels)``.
    """
    levels = _check_int("levels", levels, 2)
    train = _as_levels("train_images_levels", train_images_levels, levels)
    test = _as_levels("test_images_levels", test_images_levels, levels)
    train_shape = np.shape(train_images_levels)[1:]
    test_shape = np.shape(test_images_levels)[1:]
    if train_shape != test_shape:
        raise KCCError(
            f"test_images_levels: expected images of shape {train_shape} like the training "
            f"images, received {test_shape}"
        )
    n, pixels = train.shape
    # Dimension j's value v goes to bin j * levels + v: one bincount for all pixels.
    offsets = np.arange(pixels, dtype=np.int64) * levels
    counts = np.bincount((train + offsets).ravel(), minlength=pixels * levels)
    log2_p = np.log2((counts + 1.0) / (n + levels))  # (pixels * levels,)
    return float(-log2_p[test + offsets].mean())


# ---------------------------------------------------------------------------
# Features from a Keras model
# ---------------------------------------------------------------------------


def features_of(model, images, layer_name=None, batch_size=256):
    """A Keras model's activations for ``images``, flattened to rows of features.

    Args:
        model: a built Keras model, e.g. a digits classifier.
        images: the model's input, e.g. an array of shape ``(N, H, W, C)``.
        layer_name: the layer whose output is returned. By default, the
            input of the model's last layer: the penultimate features.
        batch_size: images per ``predict`` batch.

    Returns:
        A numpy array of shape ``(N, D)``.

    Example:
        >>> features = features_of(classifier, images)  # (N, D) penultimate features
    """
    from keras_cv_course.understanding.scores import feature_model

    batch_size = _check_int("batch_size", batch_size, 1)
    extractor = feature_model(model, layer_name)
    features = np.asarray(extractor.predict(images, batch_size=batch_size, verbose=0))
    return features.reshape(features.shape[0], -1)
