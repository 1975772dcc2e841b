"""Captioning from the served networks: the decode loop, outside any model.

A captioner is served as an image encoder and a one-step decoder
(``applications.captioning.captioner``). ``CaptionPipeline`` runs them
together: the encoder once per image, then the decoder once per word,
greedily or with beam search (``sequence.decoding``), each state output
``next_<name>`` fed back as the input ``<name>``. The networks may be the
Keras serving functions or exported TFLite, ONNX or SavedModel runners:
this module imports NumPy only, so a device that has the two artifacts and
``manifest.json`` captions images without TensorFlow or Keras.

``manifest.json`` holds the loop's recipe under ``captioning``
(``decoding_record``): the vocabulary, the special ids, the number of
positions, the state names and the decoder's inputs.
"""

import numpy as np

from keras_cv_course.errors import KCCError
from keras_cv_course.sequence import decoding, text

FEATURES, TOKEN, ATTENTION, NEXT = "features", "token", "attention", "next_"
"""The names the served networks share (``applications.captioning.captioner``)."""


def decoding_record(model):
    """What the decode loop needs to know about a ``Captioner`` (JSON-ready)."""
    from keras_cv_course.applications.captioning.captioner import state_names

    return {"vocabulary": list(model.vocabulary), "start_id": text.START_ID,
            "end_id": text.END_ID, "max_length": int(model.max_length),
            "state": list(state_names(model.decoder)),
            "decoder_inputs": sorted(model.decoder.input)}


class CaptionPipeline:
    """Images -> caption ids (and attention) through an encoder and a one-step decoder.

    Args:
        encoder, decoder: callables ``{input name: array} -> {output name: array}``.
        record: ``decoding_record`` of the model (the manifest's ``captioning``).
        beam_width: 1 decodes greedily; more runs beam search per image.

    Calling it on ``(batch, H, W, C)`` images returns ``{"tokens": (batch,
    max_length) int32}`` (the words, then 0s; no ``<start>``, no ``<end>``) and,
    for decoders with attention, ``{"attention": (batch, max_length, cells)}``,
    the weights each word was written with.
    """

    def __init__(self, encoder, decoder, record, beam_width=1):
        self.encoder, self.decoder, self.record = encoder, decoder, record
        self.beam_width = int(beam_width)
        if self.beam_width < 1:
            raise KCCError(f"beam_width must be a positive int, got {beam_width!r}")
        self.tokenizer = text.Tokenizer(record["vocabulary"]) if record["vocabulary"] else None

    def __call__(self, images):
        state = self.initial_state(np.asarray(images, dtype="float32"))
        if self.beam_width == 1:
            rows = [self._greedy(state)]
        else:
            rows = [self._beam(_row(state, index)) for index in range(len(images))]
        return {key: np.concatenate([row[key] for row in rows]) for key in rows[0]}

    def captions(self, images):
        """The captions of ``images`` as strings."""
        if self.tokenizer is None:
            raise KCCError("this captioner was exported without its vocabulary")
        return [self.tokenizer.decode(row) for row in self(images)["tokens"]]

    def initial_state(self, images):
        """The encoder's outputs that the decoder takes: the features and the first state."""
        encoded = self.encoder({"images": images})
        wanted = set(self.record["decoder_inputs"]) - {TOKEN}
        return {name: np.asarray(value) for name, value in encoded.items() if name in wanted}

    def step(self, tokens, state):
        """One decoder call in ``sequence.decoding``'s step protocol."""
        outputs = self.decoder({TOKEN: np.asarray(tokens, dtype="int32"), **state})
        new_state = {name: np.asarray(outputs[NEXT + name]) if NEXT + name in outputs else value
                     for name, value in state.items()}
        extras = {ATTENTION: np.asarray(outputs[ATTENTION])} if ATTENTION in outputs else {}
        return np.asarray(outputs["logits"]), new_state, extras

    def _greedy(self, state):
        decoded = decoding.greedy_decode(self.step, state, self.record["start_id"],
                                         self.record["end_id"], self.record["max_length"])
        return self._padded(decoded)

    def _beam(self, state):
        decoded, _ = decoding.beam_search(self.step, state, self.record["start_id"],
                                          self.record["end_id"], self.record["max_length"],
                                          beam_width=self.beam_width)
        return self._padded(decoded)

    def _padded(self, decoded):
        """Ids and attention padded (with 0) to ``max_length`` positions."""
        length = self.record["max_length"]
        tokens = np.asarray(decoded.tokens, dtype="int32")
        out = {"tokens": _pad_to(tokens, length)}
        if ATTENTION in decoded.extras:
            out[ATTENTION] = _pad_to(np.asarray(decoded.extras[ATTENTION], "float32"), length)
        return out


def _pad_to(array, length):
    """``array`` with axis 1 cut or zero-padded to ``length``."""
    array = array[:, :length]
    padding = [(0, 0), (0, length - array.shape[1])] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, padding)


def _row(state, index):
    return {name: value[index:index + 1] for name, value in state.items()}


def attention_pictures(image, tokens, attention, vocabulary):
    """One picture per word: the image lit where the decoder attended when writing it.

    Args:
        image: ``(H, W, 3)`` floats in [0, 1].
        tokens: ``(max_length,)`` caption ids (then 0s).
        attention: ``(max_length, cells)`` weights over the grid of cells.
        vocabulary: the tokenizer's words.

    Returns:
        ``{"NN-word": (H, W, 3) picture}`` in caption order, as in Xu et al.'s
        Figure 3: the weights are upsampled to the image (nearest), scaled to
        their maximum, and the image is darkened where they are low.
    """
    height, width = image.shape[:2]
    cells = attention.shape[-1]
    rows = int(round(np.sqrt(cells * height / width)))
    columns = cells // rows
    if rows * columns != cells:
        raise KCCError(f"cannot lay {cells} attention cells on a grid of the image's shape")
    pictures = {}
    for index, token in enumerate(int(t) for t in tokens):
        if token == text.PAD_ID:
            break
        grid = attention[index].reshape(rows, columns)
        light = _upsample(grid / max(float(grid.max()), 1e-12), height, width)
        word = vocabulary[token] if token < len(vocabulary) else str(token)
        pictures[f"{index + 1:02d}-{word}"] = image * (0.2 + 0.8 * light[..., None])
    return pictures


def _upsample(grid, height, width):
    rows = np.minimum((np.arange(height) * grid.shape[0]) // height, grid.shape[0] - 1)
    columns = np.minimum((np.arange(width) * grid.shape[1]) // width, grid.shape[1] - 1)
    return grid[rows][:, columns]
