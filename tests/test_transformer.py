"""Transformer blocks: shapes, causality, norms, positions, a training step, sizes."""

import keras
import numpy as np
import pytest

from keras_cv_course.sequence.transformer import (
    PAPER_PARAMETERS,
    TRANSFORMER_CONFIGS,
    TransformerDecoderBlock,
    TransformerEncoderBlock,
    sinusoidal_positions,
    transformer,
    transformer_parameter_count,
)

RNG = np.random.default_rng(0)


def test_sinusoidal_positions_by_hand():
    table = sinusoidal_positions(4, 6)
    assert table[0, 0] == 0.0 and table[0, 1] == 1.0
    assert table[2, 0] == pytest.approx(np.sin(2.0))
    assert table[3, 3] == pytest.approx(np.cos(3.0 / 10000 ** (2 / 6)), abs=1e-6)


def test_blocks_keep_the_shape_and_return_cross_attention():
    x, context = RNG.normal(size=(2, 6, 16)), RNG.normal(size=(2, 9, 16))
    encoded = TransformerEncoderBlock(16, 2, 32, dropout=0.0)(context)
    assert tuple(encoded.shape) == (2, 9, 16)
    decoded, scores = TransformerDecoderBlock(16, 2, 32, dropout=0.0)(
        x, context=encoded, return_attention_scores=True)
    assert tuple(decoded.shape) == (2, 6, 16) and tuple(scores.shape) == (2, 2, 6, 9)


def test_the_decoder_is_causal():
    block = TransformerDecoderBlock(16, 2, 32, dropout=0.0)
    x, context = RNG.normal(size=(1, 6, 16)), RNG.normal(size=(1, 4, 16))
    changed = x.copy()
    changed[0, 4:] += 1.0  # later positions only
    before = keras.ops.convert_to_numpy(block(x, context=context))
    after = keras.ops.convert_to_numpy(block(changed, context=context))
    np.testing.assert_allclose(after[0, :4], before[0, :4], atol=1e-5)
    assert not np.allclose(after[0, 4:], before[0, 4:])


def test_pre_norm_and_post_norm_differ():
    x = RNG.normal(size=(2, 5, 16)).astype("float32")
    post = TransformerEncoderBlock(16, 2, 32, dropout=0.0)
    pre = TransformerEncoderBlock(16, 2, 32, dropout=0.0, norm_first=True)
    post(x), pre(x)
    pre.set_weights(post.get_weights())
    outputs = [keras.ops.convert_to_numpy(block(x)) for block in (post, pre)]
    assert not np.allclose(*outputs, atol=1e-3)
    np.testing.assert_allclose(outputs[0].mean(-1), 0.0, atol=1e-5)  # post-norm ends normalised


def test_the_tiny_transformer_trains_and_reloads(tmp_path):
    model = transformer("tiny", vocab_size=30, max_length=8)
    assert model.count_params() == transformer_parameter_count("tiny", 30)
    tokens = RNG.integers(1, 30, (16, 8)).astype("int32")
    model.compile(optimizer="adam", loss={"logits": keras.losses.SparseCategoricalCrossentropy(
        from_logits=True)})
    history = model.fit({"source_tokens": tokens, "target_tokens": tokens}, {"logits": tokens},
                        epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    model.save(tmp_path / "t.keras")
    loaded = keras.saving.load_model(tmp_path / "t.keras")
    batch = {"source_tokens": tokens[:2], "target_tokens": tokens[:2]}
    np.testing.assert_allclose(loaded(batch)["logits"], model(batch)["logits"], atol=1e-5)


def test_pre_norm_adds_two_final_norms():
    model = transformer("tiny", vocab_size=30, max_length=8, norm_first=True)
    assert model.count_params() == transformer_parameter_count("tiny", 30, norm_first=True)


@pytest.mark.parametrize("config, expected", [("base", 63_082_496), ("big", 214_245_376)])
def test_full_sizes_against_the_paper(config, expected):
    """The exact counts with 37,000 shared tokens, and their gap to Table 3 (module docstring)."""
    assert transformer_parameter_count(config) == expected
    model = transformer(config, vocab_size=37_000, max_length=4) if config == "base" else None
    if model is not None:  # building Big adds 10 s and checks nothing the formula does not
        assert model.count_params() == expected
    paper = PAPER_PARAMETERS[config]
    assert abs(expected - paper) / paper < 0.035
    assert TRANSFORMER_CONFIGS[config]["layers"] == 6
