"""Attention equals its definition in NumPy, and multi-head attention equals Keras'."""

import keras
import numpy as np
import pytest

from keras_cv_course.errors import KCCError
from keras_cv_course.sequence.attention import (
    MultiHeadAttention,
    causal_mask,
    dot_product_attention,
    padding_mask,
    scaled_dot_product_attention,
)

RNG = np.random.default_rng(0)


def numpy_attention(q, k, v, mask=None, scale=1.0):
    logits = q @ np.swapaxes(k, -1, -2) * scale
    if mask is not None:
        logits = np.where(mask, logits, -np.inf)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return weights @ v, weights


def arrays(*shapes):
    return [RNG.normal(size=shape).astype("float32") for shape in shapes]


@pytest.mark.parametrize("scaled", [False, True])
def test_attention_equals_the_definition(scaled):
    q, k, v = arrays((2, 4, 8), (2, 6, 8), (2, 6, 3))
    mask = RNG.random((2, 4, 6)) > 0.3
    mask[..., 0] = True  # every query sees a key
    function = scaled_dot_product_attention if scaled else dot_product_attention
    output, weights = function(q, k, v, mask=mask)
    expected, expected_weights = numpy_attention(q, k, v, mask, 1 / np.sqrt(8) if scaled else 1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(output), expected, atol=1e-6)
    weights = keras.ops.convert_to_numpy(weights)
    np.testing.assert_allclose(weights, expected_weights, atol=1e-6)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)
    assert np.all(weights[~mask] == 0.0)


def test_masks():
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(causal_mask(3)),
                                  [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    tokens = np.array([[5, 6, 0, 0]])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(padding_mask(tokens)),
                                  [[[True, True, False, False]]])


def twins(query_width, value_width, key_width, **settings):
    """Keras' layer and ours, built on the same shapes, ours with Keras' weights."""
    theirs = keras.layers.MultiHeadAttention(**settings)
    ours = MultiHeadAttention(**settings)
    q, v, k = arrays((2, 5, query_width), (2, 7, value_width), (2, 7, key_width))
    theirs(q, v, key=k)
    ours(q, v, key=k)
    ours.set_weights(theirs.get_weights())
    return theirs, ours


CASES = {
    "self": dict(query=(2, 5, 16), value=None, key=None, kwargs={}),
    "cross": dict(query=(2, 5, 16), value=(2, 7, 12), key=(2, 7, 10), kwargs={}),
    "padding": dict(query=(2, 5, 16), value=(2, 7, 12), key=None,
                    kwargs={"attention_mask": np.array([[[1] * 4 + [0] * 3] * 5] * 2, bool)}),
    "causal": dict(query=(2, 5, 16), value=None, key=None, kwargs={"use_causal_mask": True}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_multi_head_attention_equals_keras(case):
    spec = CASES[case]
    query = arrays(spec["query"])[0]
    value = query if spec["value"] is None else arrays(spec["value"])[0]
    key = value if spec["key"] is None else arrays(spec["key"])[0]
    settings = dict(num_heads=4, key_dim=8, value_dim=6)
    theirs, ours = keras.layers.MultiHeadAttention(**settings), MultiHeadAttention(**settings)
    expected, expected_scores = theirs(query, value, key=key, return_attention_scores=True,
                                       **spec["kwargs"])
    ours(query, value, key=key)
    ours.set_weights(theirs.get_weights())
    output, scores = ours(query, value, key=key, return_attention_scores=True, **spec["kwargs"])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(output), expected.numpy(), atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(scores), expected_scores.numpy(),
                               atol=1e-6)


def test_save_load_round_trip(tmp_path):
    inputs = keras.Input((5, 16))
    model = keras.Model(inputs, MultiHeadAttention(2, 8, name="attention")(
        inputs, inputs, use_causal_mask=True))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    batch = arrays((3, 5, 16))[0]
    np.testing.assert_allclose(loaded(batch), model(batch), atol=1e-6)
    clone = MultiHeadAttention.from_config(model.get_layer("attention").get_config())
    assert clone.num_heads == 2 and clone.key_dim == 8


def test_a_causal_mask_needs_square_attention():
    query, value = arrays((1, 3, 8), (1, 4, 8))
    with pytest.raises(KCCError, match="causal mask"):
        MultiHeadAttention(2, 4)(query, value, use_causal_mask=True)
