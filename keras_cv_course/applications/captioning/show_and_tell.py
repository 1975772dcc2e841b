"""Show and Tell: a CNN encodes the image, a recurrent network writes the caption.

Paper: Oriol Vinyals, Alexander Toshev, Samy Bengio, Dumitru Erhan. "Show and
Tell: A Neural Image Caption Generator". CVPR 2015. arXiv:1411.4555.

The image is encoded once; the recurrent network then predicts each word
from the previous word and its state, ``p(S_t | I, S_0..S_{t-1})``:

    x_t = W_e S_{t-1}                         (word embedding)
    h_t, c_t = LSTM(x_t, h_{t-1}, c_{t-1})
    p_t = softmax(W_o dropout(h_t))

Variant choices, named:

* The image **initialises the state**: ``h_0, c_0 = tanh(W_init mean(grid))``
  from the mean of the backbone's feature grid. The paper instead feeds the
  image embedding as the LSTM's input at ``t = -1``; initialising the state
  is the form of Xu et al. and of NeuralTalk, and it keeps the encoder and
  the one-step decoder free of shared layers, so each exports on its own.
* ``cell="lstm"`` is Show and Tell; ``cell="rnn"`` is the vanilla RNN
  captioner of the course (``h_t = tanh(W_x x_t + W_h h_{t-1} + b)``,
  registered as ``cnn_rnn_captioner``); ``cell="gru"`` is also accepted.
  The cells are this package's, written from their equations
  (``sequence.cells``).
* Full config: GoogLeNet (the paper's encoder) at 224x224, 512-wide
  embedding and LSTM, dropout 0.5 before the softmax, a 10,000-word
  vocabulary. The paper's own vocabulary and training details are not
  published as a model, so there is no reference parameter count.
"""

import keras

from keras_cv_course.applications.captioning.captioner import (
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
from keras_cv_course.errors import KCCError
from keras_cv_course.sequence.cells import GRUCell, LSTMCell, RNNCell

PAPER = ("Vinyals, Toshev, Bengio, Erhan. Show and Tell: A Neural Image Caption Generator. "
         "CVPR 2015. arXiv:1411.4555")
CELLS = {"rnn": (RNNCell, ("h",)), "gru": (GRUCell, ("h",)), "lstm": (LSTMCell, ("h", "c"))}


def recurrent_decoder(vocabulary_size, embedding_dim, units, cell, dropout):
    """One step: ``{token, h(, c)} -> {logits, next_h(, next_c)}``."""
    if cell not in CELLS:
        raise KCCError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
    cell_class, names = CELLS[cell]
    token, state = token_input(), state_inputs(units, names)
    words = keras.layers.Embedding(vocabulary_size, embedding_dim, name="word_embedding")(token)
    output, new_state = cell_class(units, name=cell)(words, [state[name] for name in names])
    output = keras.layers.Dropout(dropout, name="dropout")(output)
    logits = keras.layers.Dense(vocabulary_size, name=LOGITS)(output)
    outputs = {LOGITS: logits, **{NEXT + name: value for name, value in zip(names, new_state)}}
    return keras.Model({"token": token, **state}, outputs, name="decoder")


def ShowAndTell(input_shape=(224, 224, 3), vocabulary_size=10_000, vocabulary=(),
                max_length=16, backbone="googlenet", backbone_level="C5",
                backbone_overrides=None, embedding_dim=512, units=512, cell="lstm",
                dropout=0.5, name="show_and_tell"):
    """A Show and Tell captioner (``RecurrentCaptioner``).

    Args:
        input_shape: image shape.
        vocabulary_size: tokens the decoder predicts (the tokenizer's size).
        vocabulary: the tokenizer's words, kept for export (optional).
        max_length: caption positions trained on.
        backbone: any registered backbone; its ``backbone_level`` map is
            mean-pooled for the initial state.
        backbone_overrides: its builder arguments (tiny configs).
        embedding_dim, units: word embedding and recurrent widths.
        cell: ``"lstm"``, ``"gru"`` or ``"rnn"``.
        dropout: before the output layer.
    """
    vocabulary_size = check_vocabulary(vocabulary_size)
    names = CELLS[cell][1] if cell in CELLS else ()
    encoder = encoder_model(input_shape, backbone, backbone_level, backbone_overrides,
                            lambda grid: initial_state_from_mean(grid, units, names))
    decoder = recurrent_decoder(vocabulary_size, embedding_dim, units, cell, dropout)
    return RecurrentCaptioner(encoder, decoder, max_length, vocabulary, name=name)


def CNNRNNCaptioner(**kwargs):
    """The vanilla-RNN captioner: Show and Tell with ``cell="rnn"``."""
    return ShowAndTell(**{"cell": "rnn", "name": "cnn_rnn_captioner", **kwargs})


TINY = dict(TINY_COMMON, embedding_dim=16, units=32, dropout=0.0)
VARIANTS = (
    dict(name="show_and_tell", builder=ShowAndTell,
         description="Show and Tell: CNN, then an LSTM initialised from the image"),
    dict(name="cnn_rnn_captioner", builder=CNNRNNCaptioner,
         description="CNN, then a vanilla (tanh) RNN initialised from the image"),
)

register_captioners("show_and_tell", VARIANTS, PAPER, TINY)
