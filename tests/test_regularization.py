"""Stochastic layers and batch augmentations.

The course's rule: training adds randomness, testing marginalises it out.
Each stochastic layer is the identity (or its expectation) at inference, and
its training output has the right expectation (checked with fixed seeds and
a tolerance of several standard errors).
"""

import math

import keras
import numpy as np
import pytest

from keras_cv_course.data import augment
from keras_cv_course.errors import KCCError
from keras_cv_course.layers import regularization as reg


def np_(x):
    return keras.ops.convert_to_numpy(x)


def test_dropconnect_inference_is_dense_and_training_is_unbiased():
    layer = reg.DropConnect(3, rate=0.5, seed=0)
    x = np.random.default_rng(0).normal(size=(1, 6)).astype("float32")
    layer.build(x.shape)
    expected = x @ np_(layer.kernel) + np_(layer.bias)
    np.testing.assert_allclose(np_(layer(x)), expected, atol=1e-6)
    draws = np_(layer(np.repeat(x, 4000, axis=0), training=True))  # per-example masks
    standard_error = draws.std(axis=0) / math.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - expected[0]) < 5 * standard_error)
    assert draws.std(axis=0).min() > 0.01  # it really is random


def test_dropconnect_shared_mask_is_one_mask_per_batch():
    layer = reg.DropConnect(4, rate=0.5, per_example=False, seed=1)
    x = np.ones((5, 3), "float32")
    y = np_(layer(x, training=True))
    np.testing.assert_allclose(y, np.repeat(y[:1], 5, axis=0))


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_drop_path_identity_at_inference_unbiased_in_training(rate):
    layer = reg.DropPath(rate, seed=0)
    x = np.full((20000, 2, 2, 1), 3.0, "float32")
    np.testing.assert_array_equal(np_(layer(x)), x)
    y = np_(layer(x, training=True))
    per_example = y[:, 0, 0, 0]
    assert set(np.unique(per_example)) <= {0.0, np.float32(3.0 / (1 - rate))}
    np.testing.assert_array_equal(y, np.broadcast_to(y[:, :1, :1, :1], y.shape))  # whole branch
    standard_error = per_example.std() / math.sqrt(len(per_example))
    assert abs(per_example.mean() - 3.0) < 5 * standard_error
    assert reg.StochasticDepth is reg.DropPath


def _coverage_probability(size, length):
    """P(pixel i is inside the patch) when the centre is uniform on 0..length-1."""
    centres = np.arange(length)[:, None]
    pixels = np.arange(length)[None, :]
    top = centres - size // 2
    return ((pixels >= top) & (pixels < top + size)).mean(axis=0)


def test_cutout_identity_at_inference_and_expected_mask_in_training():
    layer = reg.Cutout(size=4, seed=0)
    x = np.ones((6000, 8, 10, 1), "float32")
    np.testing.assert_array_equal(np_(layer(x)), x)
    y = np_(layer(x, training=True))
    covered = np.outer(_coverage_probability(4, 8), _coverage_probability(4, 10))
    expected = 1.0 - covered  # E[cutout(x)] = x * P(pixel kept)
    standard_error = np.sqrt(expected * (1 - expected) / len(y)) + 1e-3
    assert np.all(np.abs(y.mean(axis=0)[..., 0] - expected) < 5 * standard_error)
    assert np.all((1 - y[:, :, :, 0]).reshape(len(y), -1).sum(axis=1) <= 16)


@pytest.mark.parametrize("pseudo_random", [True, False])
@pytest.mark.parametrize("overlapping", [False, True])
def test_fractional_max_pool_equals_tensorflow_on_its_sequences(pseudo_random, overlapping):
    import tensorflow as tf

    x = np.random.default_rng(0).normal(size=(2, 11, 13, 3)).astype("float32")
    expected, rows, cols = tf.nn.fractional_max_pool(
        x, [1.0, 1.44, 1.44, 1.0], pseudo_random=pseudo_random, overlapping=overlapping, seed=3)
    ours = reg.fractional_max_pool(keras.ops.convert_to_tensor(x), keras.ops.cast(rows, "int32"),
                                   keras.ops.cast(cols, "int32"), overlapping)
    np.testing.assert_array_equal(np_(ours), expected.numpy())


@pytest.mark.parametrize("pseudo_random", [True, False])
def test_fractional_max_pool_regions(pseudo_random):
    alpha, size = 1.44, 13
    layer = reg.FractionalMaxPooling2D(alpha, pseudo_random=pseudo_random, seed=0)
    x = np.random.default_rng(1).normal(size=(2, size, size, 2)).astype("float32")
    outputs = [np_(layer(x, training=True)) for _ in range(4)]
    assert outputs[0].shape == (2, math.floor(size / alpha), math.floor(size / alpha), 2)
    assert any(not np.array_equal(outputs[0], other) for other in outputs[1:])  # random
    inference = np_(layer(x))
    np.testing.assert_array_equal(inference, np_(layer(x)))  # deterministic at inference
    for _ in range(10):
        boundaries = np_(reg.pooling_boundaries(size, 9, pseudo_random,
                                                seed=keras.random.SeedGenerator(_)))
        assert boundaries[0] == 0 and boundaries[-1] == size
        assert set(np.diff(boundaries)) <= {1, 2}  # floor(alpha), ceil(alpha)


def test_fractional_max_pool_in_a_saved_model(tmp_path):
    inputs = keras.Input((9, 9, 2))
    model = keras.Model(inputs, reg.FractionalMaxPooling2D(1.5, seed=2)(inputs))
    path = str(tmp_path / "m.keras")
    model.save(path)
    x = np.random.default_rng(0).normal(size=(1, 9, 9, 2)).astype("float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0),
                                  keras.saving.load_model(path).predict(x, verbose=0))


def test_bad_rates():
    with pytest.raises(KCCError, match="rate"):
        reg.DropPath(1.0)
    with pytest.raises(KCCError, match="pooling_ratio"):
        reg.FractionalMaxPooling2D(0.5)


# --- batch augmentations -------------------------------------------------------------


def _batch(n=64, size=8, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(n, size, size, channels)).astype("float32"), rng.integers(0, 5, n)


def test_mixup_mixes_images_and_labels_with_the_same_weight():
    images, labels = _batch()
    mixed, soft = augment.mixup(images, labels, num_classes=5, alpha=0.4,
                                seed=keras.random.SeedGenerator(3))
    mixed, soft = np_(mixed), np_(soft)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-6)
    # Recover (lam, partner) of example 0 from its labels and check the image.
    lam = soft[0, labels[0]] if soft[0].max() < 1 else 1.0
    candidates = [j for j in range(len(images))
                  if np.allclose(mixed[0], lam * images[0] + (1 - lam) * images[j], atol=1e-5)]
    assert candidates, "image 0 is not a lam-mixture of itself and a partner"


def test_cutmix_label_weights_equal_pasted_areas():
    images, _ = _batch(n=32, size=16, channels=1)
    labels = np.arange(32)  # distinct labels, so each weight belongs to one image
    mixed, soft = augment.cutmix(images, labels, num_classes=32,
                                 seed=keras.random.SeedGenerator(4))
    mixed, soft = np_(mixed), np_(soft)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, atol=1e-6)
    assert soft[:, labels].diagonal().min() < 1  # a non-empty box was pasted
    for i in range(len(images)):
        partner = int(np.argmax(np.where(np.arange(32) == i, -1, soft[i])))
        if soft[i, i] == 1:  # paired with itself or an empty box
            np.testing.assert_array_equal(mixed[i], images[i])
            continue
        from_self = np.isclose(mixed[i], images[i])
        from_partner = np.isclose(mixed[i], images[partner])
        assert np.all(from_self | from_partner)
        assert from_self.mean() == pytest.approx(soft[i, i], abs=1e-6)
        assert from_partner.mean() == pytest.approx(soft[i, partner], abs=1e-6)


def test_cutmix_box_area():
    mask, kept = augment.cutmix_box(10, 10, keras.ops.convert_to_tensor(0.64),
                                    seed=keras.random.SeedGenerator(0))
    assert np_(mask).sum() / 100 == pytest.approx(1 - float(np_(kept)))


def test_standard_policy_preserves_shape_range_and_expectation():
    images, labels = _batch(n=512, size=8, channels=3)
    policy = augment.get_policy("standard", seed=0)
    out, out_labels = policy(images, labels)
    out = np_(out)
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    np.testing.assert_array_equal(np_(out_labels), labels)
    assert not np.allclose(out, images)
    # Crops keep most pixels; zero padding makes the mean drop a little, not more.
    assert 0.35 < out.mean() < images.mean() + 0.02


def test_random_crop_is_a_shift():
    images = np.arange(2 * 6 * 6).reshape(2, 6, 6, 1).astype("float32") + 1
    out = np_(augment.random_crop_with_padding(images, padding=2,
                                               seed=keras.random.SeedGenerator(5)))
    for original, cropped in zip(images, out, strict=True):
        padded = np.pad(original, [(2, 2), (2, 2), (0, 0)])
        assert any(np.array_equal(cropped, padded[r:r + 6, c:c + 6])
                   for r in range(5) for c in range(5))


def test_policy_names_and_errors():
    images, labels = _batch(n=4)
    for name in augment.POLICIES:
        out, out_labels = augment.get_policy(name, num_classes=5, seed=1)(images, labels)
        assert out.shape == images.shape
        assert np_(out_labels).shape == ((4, 5) if name in ("mixup", "cutmix") else (4,))
    with pytest.raises(KCCError, match="mixup"):
        augment.get_policy("mixupp")
    with pytest.raises(KCCError, match="num_classes"):
        augment.get_policy("cutmix")


def test_policy_runs_in_tf_data_with_fresh_randomness():
    import tensorflow as tf

    images, labels = _batch(n=4)
    dataset = tf.data.Dataset.from_tensors((images, labels)).repeat(3)
    outputs = [a.numpy() for a, _ in dataset.map(augment.get_policy("standard", seed=1))]
    assert not np.allclose(outputs[0], outputs[1])
