"""Greedy and beam search over a Markov chain whose best sequence is known."""

import itertools

import numpy as np
import pytest

from keras_cv_course.errors import KCCError
from keras_cv_course.sequence.decoding import batched_step, beam_search, greedy_decode

START, END, VOCABULARY = 1, 2, 6
# Transition probabilities p(next | previous). From <start>, token 3 is the most likely (0.5)
# but every continuation of 3 is weak; token 4 (0.4) leads to <end> with 0.9.
P = np.full((VOCABULARY, VOCABULARY), 1e-6)
P[START, [3, 4, 5]] = [0.5, 0.4, 0.1]
P[3, [3, 4, 5, END]] = [0.25, 0.25, 0.25, 0.25]
P[4, END], P[4, 5] = 0.9, 0.1
P[5, END], P[5, 3] = 0.5, 0.5
P /= P.sum(axis=1, keepdims=True)
LOG_P = np.log(P)


def markov_step(tokens, state):
    """Logits are the log transition probabilities; the state counts the steps."""
    return LOG_P[tokens], {"steps": state["steps"] + 1}, {"seen": tokens.astype("float32")}


def sequence_log_prob(tokens):
    previous, total = START, 0.0
    for token in tokens:
        total += LOG_P[previous, token]
        previous = token
    return total


def best_by_enumeration(max_length):
    """The most likely sequence ending in <end>, over every sequence up to max_length."""
    best = None
    for length in range(1, max_length + 1):
        for middle in itertools.product(range(3, VOCABULARY), repeat=length - 1):
            tokens = (*middle, END)
            if best is None or sequence_log_prob(tokens) > sequence_log_prob(best):
                best = tokens
    return best


def start_state(batch=1):
    return {"steps": np.zeros((batch,), "int32")}


def test_greedy_takes_the_locally_best_token_and_stops_at_end():
    decoded = greedy_decode(markov_step, start_state(2), START, END, max_length=6)
    assert decoded.tokens.shape[0] == 2 and decoded.tokens[0, 0] == 3
    assert decoded.extras["seen"].shape[:2] == decoded.tokens.shape


def test_beam_search_finds_the_most_likely_sequence():
    best, finished = beam_search(markov_step, start_state(), START, END, max_length=5,
                                 beam_width=3)
    expected = best_by_enumeration(5)
    length = int(best.lengths[0])
    assert tuple(best.tokens[0, :length]) + (END,) == expected == (4, END)
    assert best.log_probs[0] == pytest.approx(sequence_log_prob(expected))
    greedy = greedy_decode(markov_step, start_state(), START, END, max_length=5)
    assert greedy.log_probs[0] < best.log_probs[0]
    assert [score for _, score in finished] == sorted((s for _, s in finished), reverse=True)


def test_beam_of_width_one_is_greedy():
    greedy = greedy_decode(markov_step, start_state(), START, END, max_length=5)
    beam, _ = beam_search(markov_step, start_state(), START, END, max_length=5, beam_width=1)
    np.testing.assert_array_equal(beam.tokens[:, :greedy.tokens.shape[1]], greedy.tokens)


def test_the_state_is_threaded_and_batched_steps_agree():
    tokens = np.array([START, 3, 4], "int32")
    state = {"steps": np.array([0, 1, 2], "int32")}
    logits, new_state, extras = batched_step(markov_step, 1)(tokens, state)
    expected = markov_step(tokens, state)
    np.testing.assert_array_equal(logits, expected[0])
    np.testing.assert_array_equal(new_state["steps"], [1, 2, 3])
    np.testing.assert_array_equal(extras["seen"], expected[2]["seen"])


def test_beam_search_takes_one_example():
    with pytest.raises(KCCError, match="one example"):
        beam_search(markov_step, start_state(2), START, END, max_length=3)
