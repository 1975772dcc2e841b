"""The word tokenizer: ids, padding, decoding, JSON."""

import json

import numpy as np
import pytest

from keras_cv_course.errors import KCCError
from keras_cv_course.sequence.text import (
    END_ID,
    PAD_ID,
    SPECIALS,
    START_ID,
    UNKNOWN_ID,
    Tokenizer,
    normalize,
)

CAPTIONS = ["A red circle.", "a blue square", "a red square!"]


def test_normalize_lowers_and_drops_punctuation():
    assert normalize("A Red, circle!") == ["a", "red", "circle"]


def test_fit_orders_by_count_then_alphabet():
    tokenizer = Tokenizer.fit(CAPTIONS)
    assert tokenizer.vocabulary[:4] == SPECIALS
    assert tokenizer.vocabulary[4:] == ("a", "red", "square", "blue", "circle")
    assert Tokenizer.fit(CAPTIONS, min_count=2).vocabulary[4:] == ("a", "red", "square")


def test_encode_pads_and_decode_inverts():
    tokenizer = Tokenizer.fit(CAPTIONS)
    ids = tokenizer.encode("a red circle", length=7)
    np.testing.assert_array_equal(ids, [START_ID, 4, 5, 8, END_ID, PAD_ID, PAD_ID])
    assert ids.dtype == np.int32
    assert tokenizer.decode(ids) == "a red circle"
    assert tokenizer.encode("a green circle")[2] == UNKNOWN_ID
    assert tokenizer.encode_batch(CAPTIONS).shape == (3, 5)


def test_a_caption_longer_than_the_length_is_an_error():
    with pytest.raises(KCCError, match="needs 5 ids"):
        Tokenizer.fit(CAPTIONS).encode("a red circle", length=4)


def test_json_round_trip_and_bad_files(tmp_path):
    tokenizer = Tokenizer.fit(CAPTIONS)
    tokenizer.save(tmp_path / "tokenizer.json")
    assert Tokenizer.load(tmp_path / "tokenizer.json").vocabulary == tokenizer.vocabulary
    (tmp_path / "other.json").write_text(json.dumps({"kind": "something else"}))
    with pytest.raises(KCCError, match="tokenizer"):
        Tokenizer.load(tmp_path / "other.json")
    with pytest.raises(KCCError, match="not found"):
        Tokenizer.load(tmp_path / "missing.json")
    with pytest.raises(KCCError, match="must start with"):
        Tokenizer(("a", "b"))
