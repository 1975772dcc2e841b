"""PixelCNN and Gated PixelCNN: causality, masking, likelihood, sampling, saving."""

import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cv_course import applications
from keras_cv_course.applications.generative.pixelcnn import (
    CLASS_INPUT,
    PixelCNN,
    pixel_levels,
)
from keras_cv_course.data.embedded import digits_arrays
from keras_cv_course.generative.pixels import sample_pixels
from keras_cv_course.layers.masked_conv import MaskedConv2D, causal_mask
from keras_cv_course.runs import load_keras_file

TINY = dict(input_shape=(8, 8, 1), levels=4, filters=8, blocks=1, kernel_size=3,
            first_kernel_size=5, head_filters=8)


def tiny(gated, **overrides):
    keras.utils.set_random_seed(0)
    return PixelCNN(**{**TINY, "gated": gated, **overrides})


def input_jacobian(model, images, extra=None):
    """``d sum(logits[:, i, j, c, :]) / d images``: ``(H, W, C, H, W, C)`` for one image."""
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        inputs = {"images": x, **extra} if extra else x
        logits = model(inputs, training=False)["logits"]
        per_output = tf.reduce_sum(logits, axis=-1)[0]  # (H, W, C)
    return tape.jacobian(per_output, x).numpy()[..., 0, :, :, :]


def raster_later_or_equal(height, width, row, column):
    """Mask of the pixels at or after ``(row, column)`` in raster order."""
    order = np.arange(height * width).reshape(height, width)
    return order >= row * width + column


# -- the masks --------------------------------------------------------------------------------

def test_spatial_masks_a_and_b():
    a = causal_mask((3, 3, 1, 1), "A")[..., 0, 0]
    b = causal_mask((3, 3, 1, 1), "B")[..., 0, 0]
    np.testing.assert_array_equal(a, [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(b, [[1, 1, 1], [1, 1, 0], [0, 0, 0]])


def test_colour_group_masks_at_the_centre():
    # RGB first layer: output group g sees input channels < g (A) or <= g (B).
    a = causal_mask((1, 1, 3, 6), "A", color_groups=3)[0, 0]  # (in, out)
    b = causal_mask((1, 1, 6, 3), "B", color_groups=3)[0, 0]
    np.testing.assert_array_equal(a, [[0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1], [0] * 6])
    np.testing.assert_array_equal(b, [[1, 1, 1], [1, 1, 1], [0, 1, 1], [0, 1, 1], [0, 0, 1],
                                      [0, 0, 1]])
    with pytest.raises(ValueError, match="multiples of color_groups=3"):
        causal_mask((3, 3, 4, 6), "B", color_groups=3)
    with pytest.raises(ValueError, match="mask_type must be one of"):
        MaskedConv2D(4, 3, mask_type="C")


def test_mask_is_multiplied_in_not_stored_in_the_kernel():
    model = tiny(gated=False)
    layers = [layer for layer in model.layers if isinstance(layer, MaskedConv2D)]
    first = model.get_layer("conv_a")
    assert [w.path.split("/")[-1] for w in first.weights] == ["kernel", "bias"]
    hidden = first.mask == 0
    kernel = keras.ops.convert_to_numpy(first.kernel)
    assert np.all(kernel[hidden] != 0), "the kernel variable must stay unmasked"
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(first.masked_kernel)[hidden], 0)
    before = {layer.name: keras.ops.convert_to_numpy(layer.kernel) for layer in layers}
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    images = np.random.default_rng(0).uniform(size=(16, 8, 8, 1)).astype("float32")
    model.fit(images, epochs=2, batch_size=8, verbose=0)
    for layer in layers:
        after = keras.ops.convert_to_numpy(layer.kernel)
        hidden = layer.mask == 0
        # Masked-out weights get zero gradients: Adam leaves them exactly as initialised.
        np.testing.assert_array_equal(after[hidden], before[layer.name][hidden])
        assert not np.array_equal(after[~hidden], before[layer.name][~hidden])


# -- causality and the blind spot -------------------------------------------------------------

@pytest.mark.parametrize("gated", [False, True], ids=["pixelcnn", "gated"])
def test_no_output_sees_its_own_or_a_later_pixel(gated):
    jacobian = assert_causal(tiny(gated), size=8)
    assert np.any(jacobian[4, 4] != 0)


def assert_causal(model, size):
    """No output of a grey model sees its own or a later pixel; returns ``|d logits / d x|``
    as ``(H, W, H, W)``."""
    images = np.random.default_rng(1).uniform(size=(1, size, size, 1)).astype("float32")
    jacobian = np.abs(input_jacobian(model, images))[..., 0, :, :, 0]  # (H, W, H, W)
    for row in range(size):
        for column in range(size):
            later = raster_later_or_equal(size, size, row, column)
            assert np.all(jacobian[row, column][later] == 0), (row, column)
    return jacobian


def test_gated_pixelcnn_has_no_blind_spot():
    # 5x5 mask A then 3x3 mask B: plain PixelCNN reaches two columns right in the row
    # above, never three (the blind spot); the vertical stack reaches it.
    images = np.random.default_rng(2).uniform(size=(1, 8, 8, 1)).astype("float32")
    plain = np.abs(input_jacobian(tiny(gated=False), images))[4, 2, 0, ..., 0]  # (H, W)
    gated = np.abs(input_jacobian(tiny(gated=True), images))[4, 2, 0, ..., 0]
    assert plain[3, 4] != 0 and np.all(plain[3, 5:] == 0)  # the blind spot
    assert np.all(gated[1:4, 0:6] != 0)  # the three rows above, 3 columns either side
    assert np.all(gated[4, 0:2] != 0)  # the row so far


@pytest.mark.parametrize("gated", [False, True], ids=["pixelcnn", "gated"])
def test_rgb_channels_are_ordered_within_a_pixel(gated):
    model = tiny(gated, input_shape=(5, 5, 3), filters=24, head_filters=24, levels=2)
    assert_channels_ordered(model, size=5)


def assert_channels_ordered(model, size):
    """No output of an RGB model sees a later pixel, or its own pixel's channel or later ones."""
    images = np.random.default_rng(3).uniform(size=(1, size, size, 3)).astype("float32")
    jacobian = np.abs(input_jacobian(model, images))  # (H, W, C, H, W, C)
    for row in range(size):
        for column in range(size):
            later = raster_later_or_equal(size, size, row, column)
            later[row, column] = False
            for channel in range(3):
                sees = jacobian[row, column, channel]  # (H, W, C)
                assert np.all(sees[later] == 0)
                assert np.all(sees[row, column, channel:] == 0), (row, column, channel)
    assert np.all(jacobian[2, 2, 2, 2, 2, :2] != 0)  # B sees R and G of its own pixel
    assert np.all(jacobian[2, 2, 1, 2, 2, :1] != 0)


# -- the likelihood on real digits ------------------------------------------------------------

def test_beats_the_per_pixel_marginal_on_four_level_digits():
    images, _ = digits_arrays()
    order = np.random.default_rng(0).permutation(len(images))
    train, test = images[order[:1437]], images[order[1437:]]
    levels = 4
    train_levels = keras.ops.convert_to_numpy(pixel_levels(train, levels))[..., 0]
    test_levels = keras.ops.convert_to_numpy(pixel_levels(test, levels))[..., 0]
    # Baseline: each pixel position's own level frequencies, add-one smoothed.
    counts = np.stack([(train_levels == k).sum(0) for k in range(levels)], -1) + 1.0
    probabilities = counts / counts.sum(-1, keepdims=True)  # (8, 8, levels)
    rows, columns = np.meshgrid(range(8), range(8), indexing="ij")
    baseline = -np.mean(np.log2(probabilities[rows, columns, test_levels]))

    model = PixelCNN(input_shape=(8, 8, 1), levels=levels, filters=32, blocks=2,
                     head_filters=32, first_kernel_size=5, gated=True)
    keras.utils.set_random_seed(0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(train, epochs=5, batch_size=32, verbose=0)
    result = model.evaluate(test, batch_size=128, verbose=0, return_dict=True)
    nats_per_image = result["loss"]
    np.testing.assert_allclose(result["bits_per_dim"], nats_per_image / math.log(2) / 64,
                               rtol=1e-4)
    print(f"test bits/dim: model {result['bits_per_dim']:.3f}, marginal baseline {baseline:.3f}")
    assert result["bits_per_dim"] < baseline - 0.1


# -- sampling ---------------------------------------------------------------------------------

def test_sample_is_seeded_and_returns_levels():
    model = tiny(gated=True)
    levels = model.sample(3, seed=7, return_levels=True)
    assert levels.shape == (3, 8, 8, 1) and levels.dtype == np.int32
    assert levels.min() >= 0 and levels.max() <= 3
    np.testing.assert_array_equal(levels, model.sample(3, seed=7, return_levels=True))
    assert not np.array_equal(levels, model.sample(3, seed=8, return_levels=True))
    images = model.sample(3, seed=7)  # what the generative task shows: images in [0, 1]
    assert images.dtype == np.float32
    np.testing.assert_allclose(images, levels / 3.0, atol=1e-7)


def test_sample_pixels_feeds_each_draw_to_the_next_in_raster_order():
    calls = []

    def forward(images):  # the next level is the sum of every earlier level plus one, mod 4
        calls.append(1)
        levels = np.rint(images * 3).astype(int)[..., 0]  # (n, H, W)
        flat = levels.reshape(len(levels), -1)
        wanted = (np.cumsum(flat, axis=1) - flat + np.arange(flat.shape[1]) + 1) % 4
        logits = np.full((*levels.shape, 1, 4), -50.0, dtype="float32")
        np.put_along_axis(logits, wanted.reshape(*levels.shape, 1, 1), 50.0, axis=-1)
        return {"logits": logits}

    drawn = sample_pixels(forward, 2, (3, 4, 1), levels=4, seed=0)[..., 0].reshape(2, -1)
    expected = [1]
    for index in range(1, 12):
        expected.append((sum(expected) + index + 1) % 4)
    np.testing.assert_array_equal(drawn, [expected, expected])
    assert len(calls) == 12


def test_class_conditioning_changes_the_distribution_and_sampling():
    model = tiny(gated=True, classes=3)
    assert sorted(tensor.name for tensor in model.inputs) == sorted(["images", CLASS_INPUT])
    images = np.random.default_rng(4).uniform(size=(2, 8, 8, 1)).astype("float32")
    eye = np.eye(3, dtype="float32")
    logits = [keras.ops.convert_to_numpy(model({"images": images, CLASS_INPUT: eye[[k, k]]})
                                         ["logits"]) for k in (0, 1)]
    assert not np.allclose(logits[0], logits[1])
    samples = model.sample(4, seed=1, class_ids=[0, 1, 2, 0], return_levels=True)
    assert samples.shape == (4, 8, 8, 1)
    with pytest.raises(ValueError, match="gated model"):
        PixelCNN(**TINY, gated=False, classes=3)


# -- saving and export ------------------------------------------------------------------------

@pytest.mark.parametrize("gated,classes", [(False, None), (True, None), (True, 3)],
                         ids=["pixelcnn", "gated", "gated_conditional"])
def test_keras_file_round_trip(tmp_path, gated, classes):
    model = tiny(gated, classes=classes)
    images = np.random.default_rng(5).uniform(size=(2, 8, 8, 1)).astype("float32")
    inputs = {"images": images, CLASS_INPUT: np.eye(3, dtype="float32")[[0, 2]]} if classes \
        else images
    path = os.path.join(str(tmp_path), "model.keras")
    model.save(path)
    loaded = load_keras_file(path)
    assert isinstance(loaded, PixelCNN) and loaded.get_config() == model.get_config()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(inputs)["logits"]),
                               keras.ops.convert_to_numpy(model(inputs)["logits"]), atol=1e-6)


def test_an_exported_tflite_forward_pass_samples_like_keras(tmp_path):
    from keras_cv_course.export import export, load_runner

    model = applications.build_tiny("pixelcnn")
    export(model, str(tmp_path / "export"), formats=["tflite"], model_name="pixelcnn")
    runner = load_runner("tflite", str(tmp_path / "export" / "model.tflite"))
    from_tflite = sample_pixels(runner, 2, (8, 8, 1), levels=4, seed=3)
    np.testing.assert_array_equal(from_tflite, model.sample(2, seed=3, return_levels=True))
