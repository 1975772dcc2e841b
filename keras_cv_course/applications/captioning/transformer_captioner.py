"""A Transformer decoder that captions an image from its grid of feature tokens.

Papers: Ashish Vaswani et al. "Attention Is All You Need". NeurIPS 2017.
arXiv:1706.03762 (the decoder block). The image side follows the
"grid features" captioners, e.g. Marcella Cornia et al. "Meshed-Memory
Transformer for Image Captioning". CVPR 2020. arXiv:1912.08226, without
its meshed memory.

The encoder projects the backbone's feature grid to ``model_dim`` tokens
and adds a learned position embedding per cell (optionally followed by
Transformer encoder blocks). The decoder embeds the caption's tokens, adds
a learned position embedding, and runs blocks of causal self-attention,
cross-attention to the grid tokens, and a feed-forward network; a linear
layer gives the next-token logits. Training runs every position at once
(``TransformerCaptioner.teacher_forced``): the causal mask makes position
``t`` see tokens ``0..t`` only.

The served one-step decoder keeps the caption so far as its explicit state:
``{token, history (max_length,), position, features} -> {logits,
next_history, next_position, attention}``. It writes ``token`` into
``history`` at ``position`` (a one-hot blend, no scatter), runs the same
sequence decoder on the whole fixed-length history, and reads the logits
and the last block's cross-attention (averaged over heads) at
``position``. Every step recomputes the earlier positions: simple and
static-shaped; caching each block's keys and values would make a step
cost one position instead of ``max_length``.

No public model gives a reference parameter count for this configuration.
"""

import keras
from keras import ops

from keras_cv_course.applications.captioning.captioner import (
    ATTENTION,
    FEATURES,
    LOGITS,
    NEXT,
    TINY_COMMON,
    Captioner,
    check_vocabulary,
    encoder_model,
    register_captioners,
    token_input,
)
from keras_cv_course.layers import PositionEmbedding
from keras_cv_course.sequence.transformer import TransformerDecoderBlock, TransformerEncoderBlock

PAPER = ("Vaswani, Shazeer, Parmar, Uszkoreit, Jones, Gomez, Kaiser, Polosukhin. Attention Is "
         "All You Need. NeurIPS 2017. arXiv:1706.03762")
SEQUENCE_DECODER = "sequence_decoder"
HISTORY, POSITION = "history", "position"


@keras.saving.register_keras_serializable(package="keras_cv_course")
class TransformerCaptioner(Captioner):
    """Teacher forcing in one pass of the sequence decoder over all positions."""

    def teacher_forced(self, encoder, decoder, encoded, tokens):
        sequence = decoder.get_layer(SEQUENCE_DECODER)
        return sequence({"tokens": tokens, FEATURES: encoded[FEATURES]})[LOGITS]


@keras.saving.register_keras_serializable(package="keras_cv_course")
class EmptyCaption(keras.layers.Layer):
    """The decoder's state before the first word: an all-padding history and position 0."""

    def __init__(self, max_length, **kwargs):
        super().__init__(**kwargs)
        self.max_length = int(max_length)

    def call(self, grid):
        batch = ops.shape(grid)[0]
        return {HISTORY: ops.zeros((batch, self.max_length), "int32"),
                POSITION: ops.zeros((batch,), "int32")}

    def get_config(self):
        return {**super().get_config(), "max_length": self.max_length}


def grid_tokens(grid, model_dim, encoder_layers, num_heads, feedforward_dim, dropout):
    """Grid features projected to ``model_dim``, with positions, through encoder blocks."""
    tokens = keras.layers.Dense(model_dim, name="project_features")(grid)
    tokens = PositionEmbedding(name="cell_positions")(tokens)
    for index in range(encoder_layers):
        tokens = TransformerEncoderBlock(model_dim, num_heads, feedforward_dim, dropout,
                                         name=f"encoder_block{index + 1}")(tokens)
    return tokens


def sequence_decoder(vocabulary_size, max_length, cells, model_dim, layers, num_heads,
                     feedforward_dim, dropout):
    """``{tokens (L,), features (cells, model_dim)} -> {logits (L, V), attention (L, cells)}``."""
    tokens = keras.Input((max_length,), dtype="int32", name="tokens")
    features = keras.Input((cells, model_dim), name=FEATURES)
    x = keras.layers.Embedding(vocabulary_size, model_dim, name="word_embedding")(tokens)
    x = PositionEmbedding(name="word_positions")(x)
    for index in range(layers):
        x, scores = TransformerDecoderBlock(model_dim, num_heads, feedforward_dim, dropout,
                                            name=f"decoder_block{index + 1}")(
            x, context=features, return_attention_scores=True)
    logits = keras.layers.Dense(vocabulary_size, name=LOGITS)(x)
    attention = ops.mean(scores, axis=1)  # the last block's, averaged over heads
    return keras.Model({"tokens": tokens, FEATURES: features},
                       {LOGITS: logits, ATTENTION: attention}, name=SEQUENCE_DECODER)


def step_decoder(sequence, max_length, cells, model_dim):
    """The served step around ``sequence`` (see the module docstring)."""
    token = token_input()
    history = keras.Input((max_length,), dtype="int32", name=HISTORY)
    position = keras.Input((), dtype="int32", name=POSITION)
    features = keras.Input((cells, model_dim), name=FEATURES)
    here = ops.one_hot(position, max_length)  # (batch, max_length) of 0. and 1.
    # A select, not integer arithmetic: Keras lowers an int add of a (1, L) term to
    # BiasAdd, which TFLite has no integer kernel for.
    written = ops.where(ops.cast(here, "bool"), ops.expand_dims(token, -1), history)
    outputs = sequence({"tokens": written, FEATURES: features})
    weight = ops.expand_dims(here, -1)
    return keras.Model(
        {"token": token, HISTORY: history, POSITION: position, FEATURES: features},
        {LOGITS: ops.sum(weight * outputs[LOGITS], axis=1), NEXT + HISTORY: written,
         NEXT + POSITION: position + 1, ATTENTION: ops.sum(weight * outputs[ATTENTION], axis=1)},
        name="decoder")


def TransformerCaptionerModel(input_shape=(224, 224, 3), vocabulary_size=10_000, vocabulary=(),
                              max_length=16, backbone="resnet50", backbone_level="C5",
                              backbone_overrides=None, model_dim=512, layers=3, encoder_layers=0,
                              num_heads=8, feedforward_dim=2048, dropout=0.1,
                              name="transformer_captioner"):
    """A Transformer-decoder captioner over a backbone's grid tokens.

    Args:
        input_shape, vocabulary_size, vocabulary, max_length, backbone,
            backbone_level, backbone_overrides: as for ``ShowAndTell``.
        model_dim, num_heads, feedforward_dim, dropout: the blocks' widths
            (Transformer-Base's by default).
        layers: decoder blocks; ``encoder_layers``: encoder blocks over the grid.
    """
    vocabulary_size = check_vocabulary(vocabulary_size)

    def initial_state(grid):
        return EmptyCaption(max_length, name="empty_caption")(grid)

    def encode(images):
        return grid_tokens(images, model_dim, encoder_layers, num_heads, feedforward_dim,
                           dropout)

    encoder = encoder_model(input_shape, backbone, backbone_level, backbone_overrides,
                            initial_state, project=encode)
    cells = int(encoder.output[FEATURES].shape[1])
    sequence = sequence_decoder(vocabulary_size, max_length, cells, model_dim, layers,
                                num_heads, feedforward_dim, dropout)
    decoder = step_decoder(sequence, max_length, cells, model_dim)
    return TransformerCaptioner(encoder, decoder, max_length, vocabulary, name=name)


TINY = dict(TINY_COMMON, model_dim=32, layers=2, num_heads=2, feedforward_dim=64, dropout=0.0)
VARIANTS = (
    dict(name="transformer_captioner", builder=TransformerCaptionerModel,
         description="Transformer decoder cross-attending to the backbone's grid tokens"),
)

register_captioners("transformer_captioner", VARIANTS, PAPER, TINY)
