"""Decode loops that drive any one-step decoder: greedy and beam search.

A step function follows one protocol, whatever runs it (a Keras model or an
exported TFLite or ONNX artifact):

    logits, new_state, extras = step(tokens, state)

with ``tokens`` int32 ``(B,)``, ``state`` a dict of arrays with a leading
batch axis ``B``, ``logits`` ``(B, vocabulary)``, ``new_state`` of the same
structure, and ``extras`` per-step arrays with a leading axis ``B`` (e.g.
attention weights) or ``{}``.

* Greedy decoding takes the most likely token at each step.
* Beam search (e.g. Sutskever, Vinyals and Le, "Sequence to Sequence
  Learning with Neural Networks", NeurIPS 2014, arXiv:1409.3215) keeps the
  ``beam_width`` most likely partial sequences, expanding each by every
  token, and returns the most likely finished one; with Wu et al.'s length
  penalty (GNMT, arXiv:1609.08144) ``((5 + length) / 6) ** alpha`` dividing
  the log-probability when ``length_penalty = alpha > 0``.

NumPy only: this runs beside the exported artifacts.
"""

import dataclasses

import numpy as np

from keras_cv_course.errors import KCCError


@dataclasses.dataclass
class Decoded:
    """Decoded sequences.

    Attributes:
        tokens: ``(B, L)`` int32, the tokens after the start token; ``<end>`` and
            everything after it are 0.
        lengths: ``(B,)`` tokens before ``<end>``.
        log_probs: ``(B,)`` log-probability of each sequence (``<end>`` included).
        extras: ``{name: (B, L, ...)}``, each step's extras stacked.
    """

    tokens: np.ndarray
    lengths: np.ndarray
    log_probs: np.ndarray
    extras: dict


def log_softmax(logits):
    """``log softmax`` over the last axis, stable for large logits."""
    logits = np.asarray(logits, dtype="float64")
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def greedy_decode(step, state, start_id, end_id, max_length):
    """The most likely token at every step, until every row has written ``end_id``.

    Returns:
        A ``Decoded``; sequences are at most ``max_length`` tokens long.
    """
    batch = len(next(iter(state.values())))
    tokens = np.full((batch,), start_id, dtype="int32")
    done = np.zeros(batch, dtype=bool)
    chosen, extras, log_probs = [], {}, np.zeros(batch)
    for _ in range(int(max_length)):
        logits, state, step_extras = step(tokens, state)
        scores = log_softmax(logits)
        tokens = scores.argmax(-1).astype("int32")
        log_probs += np.where(done, 0.0, scores[np.arange(batch), tokens])
        chosen.append(np.where(done, 0, tokens))
        for name, value in step_extras.items():
            extras.setdefault(name, []).append(np.asarray(value))
        done |= tokens == end_id
        if done.all():
            break
    return _finished(np.stack(chosen, axis=1), end_id, log_probs,
                     {name: np.stack(values, axis=1) for name, values in extras.items()})


def _finished(tokens, end_id, log_probs, extras):
    """Zeros from each row's first ``end_id`` on, and the lengths before it."""
    ended = np.cumsum(tokens == end_id, axis=1) > 0
    lengths = (~ended).sum(axis=1)
    return Decoded(np.where(ended, 0, tokens).astype("int32"), lengths, log_probs, extras)


def beam_search(step, state, start_id, end_id, max_length, beam_width=3, length_penalty=0.0):
    """The most likely sequence found with ``beam_width`` hypotheses, for one example.

    Args:
        step: the step function (called with a batch of ``beam_width`` rows).
        state: the initial state of ONE example (batch axis of size 1).
        start_id, end_id: special tokens.
        max_length: the longest sequence.
        beam_width: hypotheses kept at each step.
        length_penalty: GNMT's alpha; 0 ranks by the sum of log-probabilities.

    Returns:
        ``(best, finished)``: the best as a ``Decoded`` with one row, and every
        hypothesis that ended (or reached ``max_length``) as ``(tokens, score)``
        pairs, best first.

    Raises:
        KCCError: the state holds more than one example, or ``beam_width < 1``.
    """
    if len(next(iter(state.values()))) != 1:
        raise KCCError("beam_search decodes one example at a time; got a state of batch "
                       f"{len(next(iter(state.values())))}")
    if int(beam_width) < 1:
        raise KCCError(f"beam_width must be a positive int, got {beam_width!r}")
    beams = [([], 0.0, {})]  # (tokens, log-probability, {extra name: [per-step arrays]})
    finished = []
    for _ in range(int(max_length)):
        last = np.asarray([b[0][-1] if b[0] else start_id for b in beams], dtype="int32")
        logits, new_state, extras = step(last, state)  # one state row per beam
        scores = log_softmax(logits)
        candidates = [(total + scores[row, token], row, token)
                      for row, (_, total, _) in enumerate(beams)
                      for token in np.argsort(-scores[row], kind="stable")[:beam_width]]
        candidates.sort(key=lambda item: -item[0])
        kept, keep_rows = [], []
        for total, row, token in candidates:
            history = {name: [*beams[row][2].get(name, []), np.asarray(value[row])]
                       for name, value in extras.items()}
            hypothesis = ([*beams[row][0], int(token)], total, history)
            if token == end_id:
                finished.append(hypothesis)
            elif len(kept) < beam_width:
                kept.append(hypothesis)
                keep_rows.append(row)
            if len(kept) == beam_width:
                break
        if not kept:
            break
        beams = kept
        state = {name: np.take(value, keep_rows, axis=0) for name, value in new_state.items()}
        if len(finished) >= beam_width and _best_score(finished, length_penalty) >= max(
                _score(b, length_penalty) for b in beams):
            break
    finished = finished or beams
    ranked = sorted(finished, key=lambda b: -_score(b, length_penalty))
    tokens, total, history = ranked[0]
    best = _finished(np.asarray([tokens], dtype="int32"), end_id, np.asarray([total]),
                     {name: np.stack(values)[None] for name, values in history.items()})
    return best, [(np.asarray(b[0], dtype="int32"), _score(b, length_penalty)) for b in ranked]


def _score(hypothesis, length_penalty):
    tokens, total, _ = hypothesis
    if length_penalty <= 0:
        return float(total)
    return float(total / ((5.0 + len(tokens)) / 6.0) ** length_penalty)


def _best_score(finished, length_penalty):
    return max(_score(b, length_penalty) for b in finished)


def batched_step(step, batch_size):
    """``step`` for any batch, calling it with ``batch_size`` rows at a time (an artifact
    exported at a static batch); the results are concatenated."""

    def run(tokens, state):
        parts = []
        for start in range(0, len(tokens), batch_size):
            rows = slice(start, start + batch_size)
            parts.append(step(tokens[rows], {k: v[rows] for k, v in state.items()}))
        logits = np.concatenate([p[0] for p in parts])
        new_state = {k: np.concatenate([p[1][k] for p in parts]) for k in parts[0][1]}
        extras = {k: np.concatenate([p[2][k] for p in parts]) for k in parts[0][2]}
        return logits, new_state, extras

    return run
