"""Attention from its equations: dot-product, scaled and multi-head, with masks.

Papers: Dzmitry Bahdanau, Kyunghyun Cho, Yoshua Bengio. "Neural Machine
Translation by Jointly Learning to Align and Translate". ICLR 2015.
arXiv:1409.0473 (attention as a learned soft alignment). Minh-Thang Luong,
Hieu Pham, Christopher D. Manning. "Effective Approaches to Attention-based
Neural Machine Translation". EMNLP 2015. arXiv:1508.04025 (the dot-product
score). Ashish Vaswani et al. "Attention Is All You Need". NeurIPS 2017.
arXiv:1706.03762, §3.2 (scaled dot-product and multi-head attention).

Given queries ``Q`` (..., Lq, d), keys ``K`` (..., Lk, d) and values ``V``
(..., Lk, dv):

    weights = softmax(scale * Q K^T + masked)       (..., Lq, Lk), rows sum to 1
    output  = weights V                             (..., Lq, dv)

``scale`` is 1 for dot-product attention and ``1 / sqrt(d)`` for scaled
attention, which keeps the logits' variance near 1 when ``d`` is large.
A mask says which keys each query may attend to (True = may, Keras'
convention); masked logits get a large negative number, so their weights
are 0. A causal mask lets position ``t`` see positions ``<= t`` only.

Multi-head attention projects the inputs ``h`` times with learned weights,
attends in each head, and projects the concatenated heads back.
``MultiHeadAttention`` creates its weights in the order and shapes of
``keras.layers.MultiHeadAttention``, so the same weights give the same
outputs (the tests check it), and it uses only matmul, reshape, transpose
and softmax, which TFLite and ONNX run as builtins.
"""

import math

import keras
from keras import ops

from keras_cv_course.errors import KCCError

MASKED = -1e9
"""The logit of a masked key (as Keras' softmax uses for masks)."""


def dot_product_attention(query, key, value, mask=None, scale=1.0):
    """``softmax(scale * Q K^T) V``; returns ``(output, weights)``.

    Args:
        query: ``(..., Lq, d)``; key: ``(..., Lk, d)``; value: ``(..., Lk, dv)``.
        mask: broadcastable to ``(..., Lq, Lk)``; True where a query may attend.
        scale: multiplies the logits.
    """
    logits = ops.matmul(query, ops.swapaxes(key, -1, -2)) * scale
    if mask is not None:
        logits = ops.where(ops.cast(mask, "bool"), logits, ops.cast(MASKED, logits.dtype))
    weights = ops.softmax(logits, axis=-1)
    return ops.matmul(weights, value), weights


def scaled_dot_product_attention(query, key, value, mask=None):
    """Dot-product attention with the logits scaled by ``1 / sqrt(d)`` (Vaswani et al. eq. 1)."""
    return dot_product_attention(query, key, value, mask, scale=1.0 / math.sqrt(query.shape[-1]))


def causal_mask(length):
    """``(length, length)`` bool, lower-triangular: position ``t`` sees ``0..t``."""
    rows = ops.expand_dims(ops.arange(length), 1)
    return ops.greater_equal(rows, ops.expand_dims(ops.arange(length), 0))


def padding_mask(tokens, pad_id=0):
    """``(batch, 1, L)`` bool: True for real tokens, False for padding."""
    return ops.expand_dims(ops.not_equal(tokens, pad_id), 1)


@keras.saving.register_keras_serializable(package="keras_cv_course")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention (Vaswani et al. §3.2.2), weight-compatible with Keras'.

    Args:
        num_heads: ``h``.
        key_dim: the width of each head's queries and keys.
        value_dim: the width of each head's values (``key_dim`` by default).
        output_dim: the output width (the query's by default).
        dropout: dropout on the attention weights while training.
        use_bias: biases on the four projections.

    Call ``layer(query, value, key=None, attention_mask=None,
    use_causal_mask=False, return_attention_scores=False)``: ``key`` defaults
    to ``value``; ``attention_mask`` is ``(batch, Lq, Lk)`` (True = attend).
    With ``return_attention_scores`` it also returns the weights,
    ``(batch, heads, Lq, Lk)``.
    """

    def __init__(self, num_heads, key_dim, value_dim=None, output_dim=None, dropout=0.0,
                 use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.key_dim = int(num_heads), int(key_dim)
        self.value_dim = int(value_dim or key_dim)
        self.output_dim = output_dim
        self.dropout, self.use_bias = float(dropout), bool(use_bias)
        self.attention_dropout = keras.layers.Dropout(self.dropout)

    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = value_shape or query_shape
        key_shape = key_shape or value_shape
        out = self.output_dim or query_shape[-1]
        heads = self.num_heads
        for name, width, head_dim in (("query", query_shape[-1], self.key_dim),
                                      ("key", key_shape[-1], self.key_dim),
                                      ("value", value_shape[-1], self.value_dim)):
            setattr(self, f"{name}_kernel", self.add_weight(
                shape=(width, heads, head_dim), initializer="glorot_uniform",
                name=f"{name}_kernel"))
            setattr(self, f"{name}_bias", self.add_weight(
                shape=(heads, head_dim), initializer="zeros", name=f"{name}_bias")
                if self.use_bias else None)
        self.output_kernel = self.add_weight(shape=(heads, self.value_dim, out),
                                             initializer="glorot_uniform", name="output_kernel")
        self.output_bias = self.add_weight(shape=(out,), initializer="zeros",
                                           name="output_bias") if self.use_bias else None

    def _heads(self, x, kernel, bias):
        """``(batch, L, width) -> (batch, heads, L, head_dim)``."""
        width, heads, head_dim = kernel.shape
        projected = ops.matmul(x, ops.reshape(kernel, (width, heads * head_dim)))
        if bias is not None:
            projected = projected + ops.reshape(bias, (heads * head_dim,))
        projected = ops.reshape(projected, (-1, x.shape[1] or ops.shape(x)[1], heads, head_dim))
        return ops.transpose(projected, (0, 2, 1, 3))

    def call(self, query, value, key=None, attention_mask=None, use_causal_mask=False,
             return_attention_scores=False, training=None):
        key = value if key is None else key
        mask = self._mask(query, value, attention_mask, use_causal_mask)
        q = self._heads(query, self.query_kernel, self.query_bias)
        k = self._heads(key, self.key_kernel, self.key_bias)
        v = self._heads(value, self.value_kernel, self.value_bias)
        q = q * ops.cast(1.0 / math.sqrt(self.key_dim), q.dtype)
        logits = ops.matmul(q, ops.swapaxes(k, -1, -2))
        if mask is not None:
            logits = ops.where(mask, logits, ops.cast(MASKED, logits.dtype))
        weights = ops.softmax(logits, axis=-1)
        attended = ops.matmul(self.attention_dropout(weights, training=training), v)
        length = query.shape[1] or ops.shape(query)[1]
        merged = ops.reshape(ops.transpose(attended, (0, 2, 1, 3)),
                             (-1, length, self.num_heads * self.value_dim))
        output = ops.matmul(merged, ops.reshape(self.output_kernel,
                                                (self.num_heads * self.value_dim, -1)))
        if self.output_bias is not None:
            output = output + self.output_bias
        return (output, weights) if return_attention_scores else output

    def _mask(self, query, value, attention_mask, use_causal_mask):
        """``(batch or 1, 1, Lq, Lk)`` bool, or ``None`` for no mask."""
        mask = None
        if attention_mask is not None:
            if len(attention_mask.shape) != 3:
                raise KCCError(f"attention_mask must be (batch, Lq, Lk), got shape "
                               f"{tuple(attention_mask.shape)}")
            mask = ops.expand_dims(ops.cast(attention_mask, "bool"), 1)
        if use_causal_mask:
            causal = causal_mask(query.shape[1])
            if value.shape[1] != query.shape[1]:
                raise KCCError("a causal mask needs as many keys as queries, got "
                               f"{query.shape[1]} queries and {value.shape[1]} keys")
            causal = ops.reshape(causal, (1, 1, *causal.shape))
            mask = causal if mask is None else ops.logical_and(mask, causal)
        return mask

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        return (*query_shape[:-1], self.output_dim or query_shape[-1])

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "value_dim": self.value_dim, "output_dim": self.output_dim,
                "dropout": self.dropout, "use_bias": self.use_bias}
