"""The Transformer: encoder and decoder blocks, positions, and the paper's two sizes.

Papers: Ashish Vaswani, Noam Shazeer, Niki Parmar, Jakob Uszkoreit, Llion
Jones, Aidan N. Gomez, Lukasz Kaiser, Illia Polosukhin. "Attention Is All You
Need". NeurIPS 2017. arXiv:1706.03762. Pre-norm: Ruibin Xiong et al. "On
Layer Normalization in the Transformer Architecture". ICML 2020.
arXiv:2002.04745.

An encoder block is self-attention then a position-wise feed-forward
network ``max(0, x W1 + b1) W2 + b2``; a decoder block adds causal
self-attention before the cross-attention to the encoder's output. Each
sublayer is residual, with dropout on its output:

* post-norm (the paper, §3.1): ``x = LayerNorm(x + Dropout(sublayer(x)))``;
* pre-norm (Xiong et al.): ``x = x + Dropout(sublayer(LayerNorm(x)))``, which
  trains deep stacks without warm-up; the stack then needs a final LayerNorm.

Choices, named: LayerNorm epsilon 1e-6 (the paper gives none; the
tensor2tensor code uses 1e-6); the attention is ``sequence.attention``'s.
Learned positions, the alternative the paper tried in Table 3 (E), are the
ViT's ``layers.PositionEmbedding``.

The full model (``transformer``) shares one embedding matrix between the
encoder's input, the decoder's input and the pre-softmax projection (§3.4),
scales embeddings by ``sqrt(d_model)`` and adds the sinusoidal positions of
§3.5. Parameter counts (``transformer_parameter_count``, equal to
``count_params`` of the built model): with a shared vocabulary of exactly
37,000 tokens, Base has 63,082,496 and Big 214,245,376 parameters. The
paper's Table 3 says 65M and 213M ("about 37000 tokens"). No single
vocabulary size reproduces both at the paper's precision: Base rounds to 65M
with 39,769 to 41,721 tokens, Big to 213M with 35,296 to 36,272. The paper does not
give its exact vocabulary or counting rule, so the tests check the formula
and these two counts, and name the gap instead of hiding it.
"""

import keras
import numpy as np
from keras import ops

from keras_cv_course.sequence.attention import MultiHeadAttention

LAYER_NORM_EPSILON = 1e-6
TRANSFORMER_CONFIGS = {
    # Table 3: N, d_model, d_ff, h, P_drop.
    "base": dict(layers=6, model_dim=512, feedforward_dim=2048, num_heads=8, dropout=0.1),
    "big": dict(layers=6, model_dim=1024, feedforward_dim=4096, num_heads=16, dropout=0.3),
    "tiny": dict(layers=2, model_dim=16, feedforward_dim=32, num_heads=2, dropout=0.0),
}
PAPER_PARAMETERS = {"base": 65_000_000, "big": 213_000_000}


def sinusoidal_positions(length, dim):
    """The §3.5 encoding: ``PE(pos, 2i) = sin(pos / 10000^(2i/d))``, ``PE(pos, 2i+1) = cos(...)``.

    Returns:
        ``(length, dim)`` float32 NumPy array.
    """
    positions = np.arange(length)[:, None]
    rates = 1.0 / np.power(10000.0, np.arange(0, dim, 2) / dim)
    table = np.zeros((length, dim))
    table[:, 0::2] = np.sin(positions * rates)
    table[:, 1::2] = np.cos(positions * rates[:dim // 2])
    return table.astype("float32")


@keras.saving.register_keras_serializable(package="keras_cv_course")
class SinusoidalPositionEncoding(keras.layers.Layer):
    """Adds the fixed sinusoidal positions to ``(batch, L, d)`` (no weights)."""

    def call(self, inputs):
        length, dim = inputs.shape[1], inputs.shape[2]
        return inputs + ops.cast(sinusoidal_positions(length, dim)[None], inputs.dtype)


class _Block(keras.layers.Layer):
    """Residual sublayers with post-norm or pre-norm; the feed-forward network."""

    def __init__(self, model_dim, num_heads, feedforward_dim, dropout=0.1, norm_first=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.model_dim, self.num_heads = int(model_dim), int(num_heads)
        self.feedforward_dim, self.dropout = int(feedforward_dim), float(dropout)
        self.norm_first = bool(norm_first)
        self.hidden = keras.layers.Dense(self.feedforward_dim, activation="relu", name="ffn_1")
        self.project = keras.layers.Dense(self.model_dim, name="ffn_2")
        self.drop = keras.layers.Dropout(self.dropout)

    def attention(self, name):
        return MultiHeadAttention(self.num_heads, self.model_dim // self.num_heads,
                                  dropout=self.dropout, name=name)

    def norm(self, name):
        return keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name=name)

    def residual(self, x, sublayer, norm, training):
        """One residual sublayer: ``sublayer`` maps the (normalised) input to its output."""
        if self.norm_first:
            return x + self.drop(sublayer(norm(x)), training=training)
        return norm(x + self.drop(sublayer(x), training=training))

    def feedforward(self, x):
        return self.project(self.hidden(x))

    def build(self, input_shape, *args, **kwargs):
        """Builds every sublayer from the input's shape (a loaded model calls this with
        the saved shape before its weights are read); the context is ``model_dim`` wide."""
        self.build_attention(tuple(input_shape))
        self.hidden.build(input_shape)
        self.project.build((*input_shape[:-1], self.feedforward_dim))
        for norm in self.norms():
            norm.build(input_shape)

    def get_config(self):
        return {**super().get_config(), "model_dim": self.model_dim,
                "num_heads": self.num_heads, "feedforward_dim": self.feedforward_dim,
                "dropout": self.dropout, "norm_first": self.norm_first}


@keras.saving.register_keras_serializable(package="keras_cv_course")
class TransformerEncoderBlock(_Block):
    """Self-attention, then the feed-forward network (§3.1); ``call(x, attention_mask=None)``.

    ``attention_mask``: ``(batch, L, L)`` or ``(batch, 1, L)`` bool, True = may attend."""

    def __init__(self, model_dim, num_heads, feedforward_dim, dropout=0.1, norm_first=False,
                 **kwargs):
        super().__init__(model_dim, num_heads, feedforward_dim, dropout, norm_first, **kwargs)
        self.self_attention = self.attention("self_attention")
        self.norm_attention, self.norm_ffn = self.norm("norm_attention"), self.norm("norm_ffn")

    def build_attention(self, shape):
        self.self_attention.build(shape, shape)

    def norms(self):
        return [self.norm_attention, self.norm_ffn]

    def call(self, inputs, attention_mask=None, training=None):
        mask = attention_mask
        if mask is not None:
            mask = ops.broadcast_to(mask, (ops.shape(inputs)[0], inputs.shape[1],
                                           inputs.shape[1]))
        x = self.residual(inputs, lambda y: self.self_attention(
            y, y, attention_mask=mask, training=training), self.norm_attention, training)
        return self.residual(x, self.feedforward, self.norm_ffn, training)


@keras.saving.register_keras_serializable(package="keras_cv_course")
class TransformerDecoderBlock(_Block):
    """Causal self-attention, cross-attention to ``context``, feed-forward (§3.1).

    ``call(x, context=None, context_mask=None, return_attention_scores=False)``:
    ``context_mask`` is ``(batch, 1 or L, cells)`` bool; with
    ``return_attention_scores`` the cross-attention weights ``(batch, heads,
    L, cells)`` come back too. ``cross_attention=False`` makes a decoder-only
    block (no context)."""

    def __init__(self, model_dim, num_heads, feedforward_dim, dropout=0.1, norm_first=False,
                 cross_attention=True, **kwargs):
        super().__init__(model_dim, num_heads, feedforward_dim, dropout, norm_first, **kwargs)
        self.cross_attention = bool(cross_attention)
        self.self_attention = self.attention("self_attention")
        self.norm_self, self.norm_ffn = self.norm("norm_self"), self.norm("norm_ffn")
        if self.cross_attention:
            self.context_attention = self.attention("cross_attention")
            self.norm_context = self.norm("norm_cross")

    def build_attention(self, shape):
        self.self_attention.build(shape, shape)
        if self.cross_attention:
            self.context_attention.build(shape, (shape[0], None, self.model_dim))

    def norms(self):
        return [self.norm_self, self.norm_ffn, *([self.norm_context] if self.cross_attention
                                                 else [])]

    def call(self, inputs, context=None, context_mask=None, training=None,
             return_attention_scores=False):
        x = self.residual(inputs, lambda y: self.self_attention(
            y, y, use_causal_mask=True, training=training), self.norm_self, training)
        scores = None
        if self.cross_attention:
            if context_mask is not None:
                context_mask = ops.broadcast_to(
                    context_mask, (ops.shape(inputs)[0], inputs.shape[1], context.shape[1]))

            def attend(y):
                nonlocal scores
                out, scores = self.context_attention(
                    y, context, attention_mask=context_mask, training=training,
                    return_attention_scores=True)
                return out

            x = self.residual(x, attend, self.norm_context, training)
        x = self.residual(x, self.feedforward, self.norm_ffn, training)
        return (x, scores) if return_attention_scores else x

    def get_config(self):
        return {**super().get_config(), "cross_attention": self.cross_attention}


@keras.saving.register_keras_serializable(package="keras_cv_course")
class SharedEmbedding(keras.layers.Layer):
    """One ``(vocabulary, d)`` matrix: ``embed`` tokens (times ``sqrt(d)``) or ``project``
    to logits with its transpose (§3.4)."""

    def __init__(self, vocabulary_size, model_dim, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size, self.model_dim = int(vocabulary_size), int(model_dim)

    def build(self, input_shape=None):
        self.embeddings = self.add_weight(
            shape=(self.vocabulary_size, self.model_dim), name="embeddings",
            initializer=keras.initializers.RandomNormal(stddev=self.model_dim ** -0.5))

    def call(self, tokens):
        return ops.take(self.embeddings, tokens, axis=0) * (self.model_dim ** 0.5)

    def project(self, x):
        return ops.matmul(x, ops.transpose(self.embeddings))

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size,
                "model_dim": self.model_dim}


def transformer(config="base", vocab_size=37_000, max_length=64, norm_first=False,
                name=None):
    """The encoder-decoder Transformer: ``{source_tokens, target_tokens} -> logits``.

    Args:
        config: a key of ``TRANSFORMER_CONFIGS`` or a dict like its values.
        vocab_size: the shared source-target vocabulary.
        max_length: the sequence length of both inputs (padding id 0).
        norm_first: pre-norm blocks (with a final LayerNorm on each stack).
    """
    settings = TRANSFORMER_CONFIGS[config] if isinstance(config, str) else dict(config)
    block = {key: settings[key] for key in ("model_dim", "num_heads", "feedforward_dim",
                                            "dropout")}
    source = keras.Input((max_length,), dtype="int32", name="source_tokens")
    target = keras.Input((max_length,), dtype="int32", name="target_tokens")
    embedding = SharedEmbedding(vocab_size, settings["model_dim"], name="shared_embedding")
    positions, drop = SinusoidalPositionEncoding(), keras.layers.Dropout(settings["dropout"])
    x = drop(positions(embedding(source)))
    source_mask = ops.expand_dims(ops.not_equal(source, 0), 1)
    for index in range(settings["layers"]):
        x = TransformerEncoderBlock(**block, norm_first=norm_first,
                                    name=f"encoder{index + 1}")(x, attention_mask=source_mask)
    if norm_first:
        x = keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name="encoder_norm")(x)
    y = drop(positions(embedding(target)))
    for index in range(settings["layers"]):
        y = TransformerDecoderBlock(**block, norm_first=norm_first, name=f"decoder{index + 1}")(
            y, context=x, context_mask=source_mask)
    if norm_first:
        y = keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name="decoder_norm")(y)
    logits = embedding.project(y)
    return keras.Model({"source_tokens": source, "target_tokens": target}, {"logits": logits},
                       name=name or f"transformer_{config if isinstance(config, str) else ''}")


def transformer_parameter_count(config="base", vocab_size=37_000, norm_first=False):
    """The full model's parameters from the formula (post-norm unless ``norm_first``).

    Per attention: four ``d x d`` projections with biases; per feed-forward:
    ``d x d_ff + d_ff + d_ff x d + d``; per LayerNorm: ``2 d``; an encoder block
    has one attention, a decoder block two; plus the shared ``vocab x d``
    embedding (and two final LayerNorms with pre-norm)."""
    settings = TRANSFORMER_CONFIGS[config] if isinstance(config, str) else dict(config)
    d, ff, layers = settings["model_dim"], settings["feedforward_dim"], settings["layers"]
    attention = 4 * (d * d + d)
    feedforward = d * ff + ff + ff * d + d
    encoder = attention + feedforward + 2 * (2 * d)
    decoder = 2 * attention + feedforward + 3 * (2 * d)
    final_norms = 2 * (2 * d) if norm_first else 0
    return layers * (encoder + decoder) + vocab_size * d + final_norms
