"""Tests of the sample-quality metrics in ``keras_cv_course.generative.metrics``."""

import math

import numpy as np
import pytest
import scipy.linalg

from keras_cv_course.errors import KCCError
from keras_cv_course.generative import metrics


def _random_spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


# --------------------------------------------------------------------------- FID


def test_fid_of_identical_sets_is_zero():
    features = np.random.default_rng(0).normal(size=(500, 16)) * 3.0 + 1.0
    fid = metrics.frechet_distance(features, features.copy())
    scale = np.trace(np.cov(features, rowvar=False))
    assert abs(fid) <= 1e-6 * scale


def test_gaussian_statistics_are_mean_and_unbiased_covariance():
    features = np.random.default_rng(1).normal(size=(50, 3))
    mean, cov = metrics.gaussian_statistics(features)
    centred = features - features.mean(axis=0)
    np.testing.assert_allclose(mean, features.mean(axis=0))
    np.testing.assert_allclose(cov, centred.T @ centred / 49)


def test_fid_closed_form_same_covariance_shifted_means():
    rng = np.random.default_rng(2)
    sigma, mu = _random_spd(rng, 6), rng.normal(size=6)
    shift = rng.normal(size=6)
    fid = metrics.frechet_distance_from_statistics(mu, sigma, mu + shift, sigma)
    assert fid == pytest.approx(shift @ shift, rel=1e-8, abs=1e-8)


def test_fid_closed_form_diagonal_covariances():
    rng = np.random.default_rng(3)
    s1, s2 = rng.uniform(0.2, 4.0, size=5), rng.uniform(0.2, 4.0, size=5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    expected = np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2) + np.sum((mu1 - mu2) ** 2)
    fid = metrics.frechet_distance_from_statistics(mu1, np.diag(s1), mu2, np.diag(s2))
    assert fid == pytest.approx(expected, rel=1e-8)


def test_fid_matches_symmetric_form_for_general_covariances():
    # Tr (S1 S2)^(1/2) == Tr (S1^(1/2) S2 S1^(1/2))^(1/2), a symmetric and well-posed form.
    rng = np.random.default_rng(4)
    s1, s2 = _random_spd(rng, 7), _random_spd(rng, 7)
    mu1, mu2 = rng.normal(size=7), rng.normal(size=7)
    root1 = scipy.linalg.sqrtm(s1).real
    middle = scipy.linalg.sqrtm(root1 @ s2 @ root1).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * middle)
    fid = metrics.frechet_distance_from_statistics(mu1, s1, mu2, s2)
    assert fid == pytest.approx(expected, rel=1e-7)
    assert fid > 0


def test_fid_on_samples_approaches_the_closed_form():
    rng = np.random.default_rng(5)
    shift = np.array([0.5, -0.5, 0.25])
    scales = np.array([1.0, 2.0, 0.5])
    a = rng.normal(size=(40000, 3))
    b = rng.normal(size=(40000, 3)) * scales + shift
    expected = np.sum((1.0 - scales) ** 2) + shift @ shift
    # The sampling error of the mean term is about 0.014 here.
    assert metrics.frechet_distance(a, b) == pytest.approx(expected, abs=0.06)


def test_fid_with_fewer_samples_than_features_is_finite():
    # The covariances are singular; sqrtm's round-off must not leak out.
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(10, 32)), rng.normal(size=(12, 32)) + 1.0
    fid = metrics.frechet_distance(a, b)
    assert np.isfinite(fid) and fid > 0
    assert abs(metrics.frechet_distance(a, a)) < 1e-6 * np.trace(np.cov(a, rowvar=False))


# --------------------------------------------------------------------------- KID


def _slow_unbiased_mmd2(x, y):
    """The unbiased MMD^2 estimator written as plain loops over pairs."""

    def k(u, v):
        return (sum(ui * vi for ui, vi in zip(u, v)) / len(u) + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_unbiased_mmd2_matches_a_direct_double_loop():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(7, 4)), rng.normal(size=(9, 4)) + 0.5
    assert metrics.unbiased_mmd2(x, y) == pytest.approx(_slow_unbiased_mmd2(x, y), rel=1e-10)


def test_kid_on_whole_sets_matches_a_direct_double_loop():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(8, 5)), rng.normal(size=(8, 5)) * 1.5
    mean, std = metrics.kernel_inception_distance(x, y, subsets=3, subset_size=8)
    # A subset of all 8 rows is a permutation, and the estimator ignores order.
    assert mean == pytest.approx(_slow_unbiased_mmd2(x, y), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-10)


def test_kid_subsets_are_reproducible_and_average_the_subset_estimates():
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(40, 4)), rng.normal(size=(30, 4)) + 0.3
    first = metrics.kernel_inception_distance(x, y, subsets=5, subset_size=10, seed=3)
    assert first == metrics.kernel_inception_distance(x, y, subsets=5, subset_size=10, seed=3)
    sampler = np.random.default_rng(3)
    estimates = []
    for _ in range(5):
        xs = x[sampler.choice(40, 10, replace=False)]
        ys = y[sampler.choice(30, 10, replace=False)]
        estimates.append(_slow_unbiased_mmd2(xs, ys))
    assert first[0] == pytest.approx(np.mean(estimates), rel=1e-9)
    assert first[1] == pytest.approx(np.std(estimates), rel=1e-6)


def test_kid_is_about_zero_for_one_distribution_and_large_for_two():
    rng = np.random.default_rng(10)
    features = rng.normal(size=(300, 8))
    identical, _ = metrics.kernel_inception_distance(features, features, subset_size=300)
    # Unbiased, so not exactly 0 for one set against itself: the cross term keeps
    # the k(x_i, x_i) pairs that the within-set terms leave out.
    k = metrics.polynomial_kernel(features, features)
    m, total = len(features), k.sum()
    closed_form = 2 * (total - np.trace(k)) / (m * (m - 1)) - 2 * total / m**2
    assert identical == pytest.approx(closed_form, rel=1e-9)
    same, same_std = metrics.kernel_inception_distance(
        features, rng.normal(size=(300, 8)), subsets=20, subset_size=100
    )
    shifted, _ = metrics.kernel_inception_distance(
        features, rng.normal(size=(300, 8)) + 1.0, subsets=20, subset_size=100
    )
    assert abs(same) < 0.05 * shifted and abs(identical) < 0.05 * shifted
    assert shifted > 10 * same_std


# --------------------------------------------------------------------------- precision and recall


def _modes(rng, centres, per_mode):
    return np.concatenate([c + 0.3 * rng.normal(size=(per_mode, 2)) for c in centres])


def test_precision_recall_of_identical_sets_is_one():
    features = np.random.default_rng(11).normal(size=(200, 5))
    assert metrics.precision_recall(features, features.copy(), k=3) == (1.0, 1.0)


def test_fake_covering_half_the_modes_has_full_precision_half_recall():
    rng = np.random.default_rng(12)
    centres = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0], [20.0, 20.0]])
    real = _modes(rng, centres, 250)
    fake = _modes(rng, centres[:2], 250)
    precision, recall = metrics.precision_recall(real, fake, k=3, batch_size=64)
    assert precision > 0.95
    assert recall == pytest.approx(0.5, abs=0.05)
    # Swapping the roles swaps the two numbers' meaning.
    precision_swapped, recall_swapped = metrics.precision_recall(fake, real, k=3)
    assert precision_swapped == pytest.approx(0.5, abs=0.05) and recall_swapped > 0.95


def test_precision_recall_batching_does_not_change_the_result():
    rng = np.random.default_rng(13)
    real, fake = rng.normal(size=(90, 3)), rng.normal(size=(70, 3)) + 0.7
    whole = metrics.precision_recall(real, fake, k=4, batch_size=1000)
    assert metrics.precision_recall(real, fake, k=4, batch_size=7) == whole
    assert 0.0 < whole[0] < 1.0 and 0.0 < whole[1] < 1.0


# --------------------------------------------------------------------------- bits per dimension


@pytest.mark.parametrize("levels", [2, 16, 256])
def test_uniform_model_scores_log2_levels_bits_per_dimension(levels):
    shape = (28, 28, 1)
    nll = 784 * math.log(levels)
    assert metrics.bits_per_dimension(nll, shape) == pytest.approx(math.log2(levels))
    assert metrics.bits_per_dimension(nll, 784) == pytest.approx(math.log2(levels))
    from_ll = metrics.bits_per_dimension_from_log_likelihood(np.array([-nll, -nll]), 784)
    np.testing.assert_allclose(from_ll, [math.log2(levels)] * 2)


def test_pixel_independent_baseline_on_constant_images_is_near_zero():
    images = np.full((5000, 4, 4, 1), 3, dtype=np.uint8)
    bits = metrics.pixel_independent_bits_per_dimension(images, images[:100], levels=4)
    assert 0.0 < bits < 1e-3
    assert bits == pytest.approx(-math.log2(5001 / 5004))


def test_pixel_independent_baseline_on_uniform_noise_is_near_log2_levels():
    rng = np.random.default_rng(14)
    train = rng.integers(0, 8, size=(4000, 6, 6))
    test = rng.integers(0, 8, size=(500, 6, 6))
    bits = metrics.pixel_independent_bits_per_dimension(train, test, levels=8)
    assert bits == pytest.approx(3.0, abs=0.02)


def test_pixel_independent_baseline_uses_laplace_smoothed_per_pixel_counts():
    train = np.array([[0, 1], [0, 1], [1, 1]])  # pixel 0: two 0s, one 1; pixel 1: three 1s
    test = np.array([[1, 0]])
    expected = -(math.log2((1 + 1) / (3 + 3)) + math.log2((0 + 1) / (3 + 3))) / 2
    bits = metrics.pixel_independent_bits_per_dimension(train, test, levels=3)
    assert bits == pytest.approx(expected)


# --------------------------------------------------------------------------- features_of


def _tiny_classifier():
    import keras

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(16, activation="relu", name="penultimate")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="logits")(x)
    return keras.Model(inputs, outputs)


def test_features_of_returns_flattened_rows():
    model = _tiny_classifier()
    images = np.random.default_rng(15).uniform(size=(20, 8, 8, 1)).astype("float32")
    penultimate = metrics.features_of(model, images, batch_size=8)
    assert penultimate.shape == (20, 16)
    assert np.isfinite(penultimate).all()
    np.testing.assert_allclose(
        penultimate, metrics.features_of(model, images, layer_name="penultimate"), atol=1e-5
    )
    assert metrics.features_of(model, images, layer_name="conv").shape == (20, 8 * 8 * 4)
    with pytest.raises(KCCError, match="penultimate"):
        metrics.features_of(model, images, layer_name="penultimat")


# --------------------------------------------------------------------------- bad input

_GOOD = np.random.default_rng(16).normal(size=(10, 3))
_NAN = _GOOD.copy()
_NAN[2, 1] = np.nan

_BAD_CALLS = {
    "fid mismatched dims": lambda: metrics.frechet_distance(_GOOD, _GOOD[:, :2]),
    "fid one sample": lambda: metrics.frechet_distance(_GOOD[:1], _GOOD),
    "fid 1-D features": lambda: metrics.frechet_distance(_GOOD[:, 0], _GOOD),
    "fid non-finite": lambda: metrics.frechet_distance(_GOOD, _NAN),
    "statistics mismatched dims": lambda: metrics.frechet_distance_from_statistics(
        np.zeros(3), np.eye(3), np.zeros(2), np.eye(2)
    ),
    "statistics bad covariance shape": lambda: metrics.frechet_distance_from_statistics(
        np.zeros(3), np.eye(2), np.zeros(3), np.eye(3)
    ),
    "statistics non-finite": lambda: metrics.frechet_distance_from_statistics(
        np.zeros(3), np.diag([1.0, np.inf, 1.0]), np.zeros(3), np.eye(3)
    ),
    "gaussian statistics one sample": lambda: metrics.gaussian_statistics(_GOOD[:1]),
    "kid mismatched dims": lambda: metrics.kernel_inception_distance(_GOOD, _GOOD[:, :2]),
    "kid one sample": lambda: metrics.kernel_inception_distance(_GOOD[:1], _GOOD),
    "kid non-finite": lambda: metrics.kernel_inception_distance(_NAN, _GOOD),
    "kid zero subsets": lambda: metrics.kernel_inception_distance(_GOOD, _GOOD, subsets=0),
    "kid subset of one": lambda: metrics.kernel_inception_distance(_GOOD, _GOOD, subset_size=1),
    "pr mismatched dims": lambda: metrics.precision_recall(_GOOD, _GOOD[:, :2]),
    "pr k equals samples": lambda: metrics.precision_recall(_GOOD, _GOOD, k=10),
    "pr k above fake samples": lambda: metrics.precision_recall(_GOOD, _GOOD[:4], k=4),
    "pr k zero": lambda: metrics.precision_recall(_GOOD, _GOOD, k=0),
    "pr non-finite": lambda: metrics.precision_recall(_GOOD, _NAN),
    "pr one sample": lambda: metrics.precision_recall(_GOOD[:1], _GOOD, k=1),
    "bpd zero dimensions": lambda: metrics.bits_per_dimension(1.0, 0),
    "bpd bad shape": lambda: metrics.bits_per_dimension(1.0, (28, 0, 1)),
    "bpd non-finite": lambda: metrics.bits_per_dimension(np.nan, 10),
    "bpd from ll non-finite": lambda: metrics.bits_per_dimension_from_log_likelihood(-np.inf, 10),
    "baseline level too high": lambda: metrics.pixel_independent_bits_per_dimension(
        np.full((3, 2, 2), 4), np.zeros((1, 2, 2), int), levels=4
    ),
    "baseline negative level": lambda: metrics.pixel_independent_bits_per_dimension(
        np.zeros((3, 2, 2), int), np.full((1, 2, 2), -1), levels=4
    ),
    "baseline non-integer levels": lambda: metrics.pixel_independent_bits_per_dimension(
        np.full((3, 2, 2), 0.5), np.zeros((1, 2, 2)), levels=4
    ),
    "baseline one level": lambda: metrics.pixel_independent_bits_per_dimension(
        np.zeros((3, 2, 2), int), np.zeros((1, 2, 2), int), levels=1
    ),
    "baseline shape mismatch": lambda: metrics.pixel_independent_bits_per_dimension(
        np.zeros((3, 2, 2), int), np.zeros((1, 2, 3), int), levels=4
    ),
    "baseline no images": lambda: metrics.pixel_independent_bits_per_dimension(
        np.zeros((0, 2, 2), int), np.zeros((1, 2, 2), int), levels=4
    ),
    "features_of batch size": lambda: metrics.features_of(
        _tiny_classifier(), np.zeros((2, 8, 8, 1)), batch_size=0
    ),
}


@pytest.mark.parametrize("case", sorted(_BAD_CALLS))
def test_bad_input_raises_a_one_line_kcc_error(case):
    with pytest.raises(KCCError) as info:
        _BAD_CALLS[case]()
    message = str(info.value)
    assert "\n" not in message
    assert "expect" in message and "receiv" in message
