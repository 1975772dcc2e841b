"""Show, Attend and Tell: an LSTM that looks at a different part of the image for each word.

Paper: Kelvin Xu, Jimmy Ba, Ryan Kiros, Kyunghyun Cho, Aaron Courville, Ruslan
Salakhutdinov, Richard Zemel, Yoshua Bengio. "Show, Attend and Tell: Neural
Image Caption Generation with Visual Attention". ICML 2015. arXiv:1502.03044.

The encoder keeps the backbone's feature grid, ``L`` annotation vectors
``a_i`` (the paper: VGG's 14x14x512 conv5 map). At every step the decoder
scores each cell against its state and takes the weighted mean, the
context ``z_t`` ("soft" deterministic attention, §4.2):

    e_ti  = w^T tanh(W_a a_i + W_h h_{t-1} + b)          (f_att, eq. 4)
    alpha_t = softmax(e_t)                               (eq. 5)
    z_t   = beta_t sum_i alpha_ti a_i,  beta_t = sigmoid(f_beta(h_{t-1}))   (§4.2.1)
    h_t, c_t = LSTM([E y_{t-1}, z_t], h_{t-1}, c_{t-1})
    p_t   = softmax(L_o dropout(E y_{t-1} + L_h h_t + L_z z_t))   (deep output, eq. 7)

The initial state is ``tanh(f_init(mean_i a_i))`` (§4.2.1), and training adds
the doubly stochastic penalty ``lambda sum_i (1 - sum_t alpha_ti)^2`` (eq. 14,
``coverage_weight``, 1 in the paper). The one-step decoder returns
``alpha_t`` as its ``attention`` output: ``kcc predict`` draws it over the
image for every word, as in the paper's Figure 3.

Variant choices, named: soft attention only (the paper's stochastic "hard"
attention is trained with REINFORCE and is not built); the LSTM is this
package's (``sequence.cells.LSTMCell``). Full config: VGG-19's last stride-16
map (14x14x512 at 224x224), 512-wide embedding, 1,800-wide LSTM (the paper's
Flickr/COCO setting), attention width 512, a 10,000-word vocabulary; no
public model gives a reference parameter count.
"""

import keras
from keras import ops

from keras_cv_course.applications.captioning.captioner import (
    ATTENTION,
    FEATURES,
    LOGITS,
    NEXT,
    TINY_COMMON,
    RecurrentCaptioner,
    check_vocabulary,
    encoder_model,
    initial_state_from_mean,
    register_captioners,
    state_inputs,
    token_input,
)
from keras_cv_course.sequence.cells import LSTMCell

PAPER = ("Xu, Ba, Kiros, Cho, Courville, Salakhutdinov, Zemel, Bengio. Show, Attend and Tell: "
         "Neural Image Caption Generation with Visual Attention. ICML 2015. arXiv:1502.03044")
STATE = ("h", "c")


def soft_attention(features, hidden, attention_dim):
    """``alpha`` over the grid cells and the gated context ``z`` (eqs. 4-5, §4.2.1)."""
    keys = keras.layers.Dense(attention_dim, use_bias=False, name="attend_features")(features)
    query = keras.layers.Dense(attention_dim, name="attend_state")(hidden)
    energy = ops.tanh(keys + ops.expand_dims(query, 1))
    scores = ops.squeeze(keras.layers.Dense(1, name="attention_score")(energy), -1)
    alpha = ops.softmax(scores, axis=-1)
    gate = keras.layers.Dense(1, activation="sigmoid", name="context_gate")(hidden)
    context = gate * ops.sum(ops.expand_dims(alpha, -1) * features, axis=1)
    return alpha, context


def attention_decoder(vocabulary_size, feature_cells, feature_dim, embedding_dim, units,
                      attention_dim, dropout):
    """One step: ``{token, h, c, features} -> {logits, next_h, next_c, attention}``."""
    token, state = token_input(), state_inputs(units, STATE)
    features = keras.Input((feature_cells, feature_dim), name=FEATURES)
    words = keras.layers.Embedding(vocabulary_size, embedding_dim, name="word_embedding")(token)
    alpha, context = soft_attention(features, state["h"], attention_dim)
    lstm_input = keras.layers.Concatenate(name="word_and_context")([words, context])
    hidden, (_, cell) = LSTMCell(units, name="lstm")(lstm_input, [state["h"], state["c"]])
    deep = (words + keras.layers.Dense(embedding_dim, name="output_from_state")(hidden)
            + keras.layers.Dense(embedding_dim, name="output_from_context")(context))
    deep = keras.layers.Dropout(dropout, name="dropout")(deep)
    logits = keras.layers.Dense(vocabulary_size, name=LOGITS)(deep)
    outputs = {LOGITS: logits, NEXT + "h": hidden, NEXT + "c": cell, ATTENTION: alpha}
    return keras.Model({"token": token, FEATURES: features, **state}, outputs, name="decoder")


def ShowAttendTell(input_shape=(224, 224, 3), vocabulary_size=10_000, vocabulary=(),
                   max_length=16, backbone="vgg19", backbone_level="C4",
                   backbone_overrides=None, embedding_dim=512, units=1800, attention_dim=512,
                   dropout=0.5, coverage_weight=1.0, name="show_attend_tell"):
    """A Show, Attend and Tell captioner with soft attention (``RecurrentCaptioner``).

    Args are those of ``show_and_tell.ShowAndTell``, plus ``attention_dim``
    (the width of f_att) and ``coverage_weight`` (lambda of eq. 14).
    """
    vocabulary_size = check_vocabulary(vocabulary_size)
    encoder = encoder_model(input_shape, backbone, backbone_level, backbone_overrides,
                            lambda grid: initial_state_from_mean(grid, units, STATE))
    cells, channels = (int(d) for d in encoder.output[FEATURES].shape[1:])
    decoder = attention_decoder(vocabulary_size, cells, channels, embedding_dim, units,
                                attention_dim, dropout)
    return RecurrentCaptioner(encoder, decoder, max_length, vocabulary,
                              coverage_weight=coverage_weight, name=name)


TINY = dict(TINY_COMMON, embedding_dim=16, units=32, attention_dim=16, dropout=0.0)
VARIANTS = (
    dict(name="show_attend_tell", builder=ShowAttendTell,
         description="Show, Attend and Tell: LSTM with soft attention over the grid"),
)

register_captioners("show_attend_tell", VARIANTS, PAPER, TINY)
