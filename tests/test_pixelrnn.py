"""PixelRNN (Row LSTM): causality, the recurrence, likelihood, sampling, saving, config errors."""

import os

import keras
import numpy as np
import pytest

from keras_cv_course import applications
from keras_cv_course.applications.generative.pixelrnn import TINY, PixelRNN, RowLSTM
from keras_cv_course.errors import KCCError
from keras_cv_course.runs import load_keras_file
from tests.jax_runner import run_on_jax
from tests.test_pixelcnn import assert_causal, assert_channels_ordered, raster_later_or_equal


def tiny(**overrides):
    keras.utils.set_random_seed(0)
    return PixelRNN(**{**TINY, **overrides})


# -- causality --------------------------------------------------------------------------------

def test_no_output_sees_its_own_or_a_later_pixel():
    jacobian = assert_causal(tiny(lstm_layers=2), size=8)
    # The recurrence reaches rows that the 5x5 mask-A convolution alone cannot (it sees two
    # rows up), and the row so far; the reach upwards is a triangle (section 3.1): each
    # row up adds one column either side, so (7, 0) does not see the far end of row 6.
    assert np.all(jacobian[4, 4][:3] != 0) and np.all(jacobian[4, 4][4, :4] != 0)
    assert np.all(jacobian[7, 0][:2] != 0) and np.all(jacobian[7, 0][6, 3:] == 0)


def test_a_finite_change_of_a_later_pixel_changes_no_earlier_logit():
    model = tiny()
    rng = np.random.default_rng(2)
    images = rng.uniform(size=(1, 8, 8, 1)).astype("float32")
    before = keras.ops.convert_to_numpy(model(images)["logits"])[0, ..., 0, :]  # (H, W, L)
    row, column = 3, 5
    changed = images.copy()
    changed[0, row, column:] = 1.0 - changed[0, row, column:]  # the pixel and its row's rest
    changed[0, row + 1:] = rng.uniform(size=(8 - row - 1, 8, 1))  # and every later row
    after = keras.ops.convert_to_numpy(model(changed)["logits"])[0, ..., 0, :]
    earlier = ~raster_later_or_equal(8, 8, row, column)
    np.testing.assert_array_equal(after[earlier], before[earlier])
    assert not np.allclose(after[row, column + 1], before[row, column + 1])


def test_rgb_channels_are_ordered_within_a_pixel():
    # Wide enough that no colour group's head units are all dead at the checked pixels.
    model = tiny(input_shape=(4, 4, 3), filters=12, head_filters=24, levels=2)
    assert_channels_ordered(model, size=4)


# -- the Row LSTM recurrence ------------------------------------------------------------------

def test_row_lstm_matches_the_paper_equations_written_in_numpy():
    keras.utils.set_random_seed(4)
    layer = RowLSTM(3, kernel_size=3, name="row_lstm")
    x = np.random.default_rng(4).normal(size=(2, 4, 5, 2)).astype("float32")
    got = keras.ops.convert_to_numpy(layer(x))
    kernel_is = keras.ops.convert_to_numpy(layer.input_to_state.masked_kernel)[0]  # (3, 2, 12)
    bias = keras.ops.convert_to_numpy(layer.input_to_state.bias)
    kernel_ss = keras.ops.convert_to_numpy(layer.state_to_state.kernel)  # (3, 3, 12)

    def conv_row(row, kernel):  # 'same' 1D convolution along the width: (n, W, in) -> (n, W, out)
        padded = np.pad(row, ((0, 0), (1, 1), (0, 0)))
        return sum(padded[:, k:k + row.shape[1]] @ kernel[k] for k in range(3))

    def sigmoid(z):
        return 1.0 / (1.0 + np.exp(-z))

    hidden = cell = np.zeros((2, 5, 3))
    for row in range(4):
        z = conv_row(x[:, row], kernel_is) + bias + conv_row(hidden, kernel_ss)
        o, f, i, g = np.split(z, 4, axis=-1)
        cell = sigmoid(f) * cell + sigmoid(i) * np.tanh(g)
        hidden = sigmoid(o) * np.tanh(cell)
        np.testing.assert_allclose(got[:, row], hidden, atol=1e-5)
    assert np.all(kernel_is[2] == 0)  # mask B: nothing from the right
    assert layer.compute_output_shape((None, 4, 5, 2)) == (None, 4, 5, 3)


# -- shapes, loss, training -------------------------------------------------------------------

def test_registered_tiny_model_shapes_and_a_finite_loss():
    model = applications.build_tiny("pixelrnn_row_lstm")
    assert isinstance(model, PixelRNN) and model.name == "pixelrnn_row_lstm"
    images = np.random.default_rng(5).uniform(size=(3, 8, 8, 1)).astype("float32")
    logits = model(images)["logits"]
    assert tuple(logits.shape) == (3, 8, 8, 1, 4)
    loss = float(model.compute_loss(x=images, y_pred={"logits": logits}))
    # An untrained model is close to uniform: about log(4) nats per dimension.
    assert np.isfinite(loss) and abs(loss / 64 - np.log(4)) < 0.2
    info = applications.get_info("pixelrnn_row_lstm")
    assert info.task == "generative" and info.family == "pixelrnn"


def test_a_few_steps_on_a_fixed_pattern_reduce_bits_per_dim():
    # 64 copies of a checkerboard of stripes: a model that learns it needs few bits.
    rows, columns = np.meshgrid(range(8), range(8), indexing="ij")
    pattern = ((rows + columns) % 4) / 3.0
    images = np.repeat(pattern[None, ..., None], 64, axis=0).astype("float32")
    model = tiny()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = model.evaluate(images, batch_size=64, verbose=0, return_dict=True)["bits_per_dim"]
    model.fit(images, epochs=30, batch_size=64, verbose=0)
    after = model.evaluate(images, batch_size=64, verbose=0, return_dict=True)["bits_per_dim"]
    print(f"bits/dim: {before:.3f} -> {after:.3f}")
    assert after < 0.5 * before


# -- sampling ---------------------------------------------------------------------------------

def test_sample_is_seeded_and_returns_levels():
    model = tiny()
    levels = model.sample(3, seed=7, return_levels=True)
    assert levels.shape == (3, 8, 8, 1) and levels.dtype == np.int32
    assert set(np.unique(levels)) <= {0, 1, 2, 3}
    np.testing.assert_array_equal(levels, model.sample(3, seed=7, return_levels=True))
    assert not np.array_equal(levels, model.sample(3, seed=8, return_levels=True))
    images = model.sample(3, seed=7)
    assert images.dtype == np.float32
    np.testing.assert_allclose(images, levels / 3.0, atol=1e-7)
    assert model.sampler.record() == {"method": "pixels", "image_shape": [8, 8, 1],
                                      "levels": 4, "classes": None}
    with pytest.raises(KCCError, match="not class-conditional"):
        model.sample(2, seed=0, class_ids=[0, 1])


# -- saving -----------------------------------------------------------------------------------

def test_get_config_and_keras_file_round_trips(tmp_path):
    model = tiny(lstm_layers=2)
    images = np.random.default_rng(6).uniform(size=(2, 8, 8, 1)).astype("float32")
    expected = keras.ops.convert_to_numpy(model(images)["logits"])
    clone = PixelRNN.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone(images)["logits"]), expected,
                               atol=1e-6)
    path = os.path.join(str(tmp_path), "model.keras")
    model.save(path)
    loaded = load_keras_file(path)
    assert isinstance(loaded, PixelRNN) and loaded.get_config() == model.get_config()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(images)["logits"]), expected,
                               atol=1e-6)


def test_the_same_keras_file_runs_on_jax(tmp_path):
    model = tiny(input_shape=(4, 4, 3), filters=6, head_filters=6, levels=2)
    images = np.random.default_rng(7).uniform(size=(2, 4, 4, 3)).astype("float32")
    np.save(str(tmp_path / "images.npy"), images)
    np.save(str(tmp_path / "expected.npy"), keras.ops.convert_to_numpy(model(images)["logits"]))
    model.save(str(tmp_path / "model.keras"))
    output = run_on_jax(f"""
import numpy as np, keras
from keras_cv_course.runs import load_keras_file
folder = {str(tmp_path)!r}
model = load_keras_file(folder + "/model.keras")
images = np.load(folder + "/images.npy")
got = keras.ops.convert_to_numpy(model(images)["logits"])
np.testing.assert_allclose(got, np.load(folder + "/expected.npy"), atol=1e-5)
model.compile(optimizer="adam")
history = model.fit(images, epochs=2, batch_size=2, verbose=0)
assert np.all(np.isfinite(history.history["loss"]))
print("jax ok", keras.backend.backend())
""", fast_compile=True)
    assert "jax ok jax" in output


# -- bad configs ------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides,message", [
    (dict(kernel_size=2), "kernel_size must be a positive odd int"),
    (dict(first_kernel_size=4), "first_kernel_size must be a positive odd int"),
    (dict(levels=1), "levels must be at least 2"),
    (dict(input_shape=(None, 8, 1)), "fixed image shape"),
    (dict(lstm_layers=0), "lstm_layers must be a positive int"),
    (dict(input_shape=(8, 8, 3), filters=4), "filters must be a positive multiple of the 3"),
], ids=["even_kernel", "even_first_kernel", "one_level", "unfixed_shape", "no_layers",
        "filters_not_per_channel"])
def test_bad_configs_raise_a_one_line_error(overrides, message):
    with pytest.raises(KCCError, match=message) as raised:
        PixelRNN(**{**TINY, **overrides})
    assert "\n" not in str(raised.value)
