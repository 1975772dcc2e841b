"""A word-level tokenizer, kept outside the model and saved as JSON with a run.

A captioner predicts one word id at a time. The tokenizer decides the ids:
four special tokens first (``<pad>`` 0, ``<start>`` 1, ``<end>`` 2,
``<unk>`` 3), then the training captions' words, most frequent first (ties
alphabetically). Text is normalised by ``normalize``: lower case,
punctuation dropped, split on white space.

It imports NumPy and the standard library only, so the decode loop that
turns ids back into words runs beside an exported model without TensorFlow.

Example:
    >>> tokenizer = Tokenizer.fit(["a red circle", "a blue square"])
    >>> tokenizer.encode("a red square", length=6)
    array([1, 4, 6, 8, 2, 0], dtype=int32)
    >>> tokenizer.decode([4, 6, 8, 2, 0])
    'a red square'
"""

import collections
import json
import os
import string

import numpy as np

from keras_cv_course.errors import KCCError

PAD, START, END, UNKNOWN = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, START, END, UNKNOWN)
PAD_ID, START_ID, END_ID, UNKNOWN_ID = range(4)
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize(text):
    """Lower case, punctuation removed, split on white space: a list of words."""
    return str(text).lower().translate(_PUNCTUATION).split()


class Tokenizer:
    """Words <-> ids, for captions.

    Args:
        vocabulary: every token in id order, starting with ``SPECIALS``.

    Raises:
        KCCError: the vocabulary does not start with the special tokens, or
            repeats a word.
    """

    def __init__(self, vocabulary):
        self.vocabulary = tuple(str(word) for word in vocabulary)
        if self.vocabulary[:len(SPECIALS)] != SPECIALS:
            raise KCCError(f"a vocabulary must start with {list(SPECIALS)}, got "
                           f"{list(self.vocabulary[:len(SPECIALS)])}")
        if len(set(self.vocabulary)) != len(self.vocabulary):
            raise KCCError("a vocabulary must not repeat a word")
        self.ids = {word: index for index, word in enumerate(self.vocabulary)}

    @classmethod
    def fit(cls, texts, min_count=1, max_words=None):
        """The tokenizer of ``texts``: words seen ``min_count`` times, most frequent first.

        Args:
            texts: captions (strings).
            min_count: a word needs this many occurrences to get an id.
            max_words: keep at most this many words (besides the specials).
        """
        counts = collections.Counter(word for text in texts for word in normalize(text))
        words = sorted((word for word, count in counts.items()
                        if count >= min_count and word not in SPECIALS),
                       key=lambda word: (-counts[word], word))
        return cls(SPECIALS + tuple(words[:max_words]))

    @property
    def size(self):
        """The number of ids, specials included."""
        return len(self.vocabulary)

    def encode(self, text, length=None):
        """``<start> words <end>`` as int32 ids, padded with ``<pad>`` to ``length``.

        Raises:
            KCCError: the caption needs more than ``length`` ids.
        """
        ids = [START_ID, *(self.ids.get(word, UNKNOWN_ID) for word in normalize(text)), END_ID]
        if length is not None:
            if len(ids) > length:
                raise KCCError(f"caption needs {len(ids)} ids with <start> and <end>, more "
                               f"than length {length}: {text!r}")
            ids += [PAD_ID] * (length - len(ids))
        return np.asarray(ids, dtype="int32")

    def encode_batch(self, texts, length=None):
        """``(len(texts), length)`` int32 ids; ``length`` defaults to the longest."""
        rows = [self.encode(text) for text in texts]
        length = max(len(row) for row in rows) if length is None else length
        return np.stack([self.encode(text, length) for text in texts]) if rows else \
            np.zeros((0, length or 0), "int32")

    def decode_words(self, ids):
        """The words of ``ids``, up to the first ``<end>``; ``<pad>`` and ``<start>`` skipped."""
        words = []
        for index in np.asarray(ids).reshape(-1):
            index = int(index)
            if index == END_ID:
                break
            if index in (PAD_ID, START_ID):
                continue
            words.append(self.vocabulary[index] if 0 <= index < self.size else UNKNOWN)
        return words

    def decode(self, ids):
        """The caption of ``ids`` as one string."""
        return " ".join(self.decode_words(ids))

    def to_json(self):
        return {"kind": "word_tokenizer", "vocabulary": list(self.vocabulary)}

    @classmethod
    def from_json(cls, payload):
        if not isinstance(payload, dict) or payload.get("kind") != "word_tokenizer":
            raise KCCError("expected a tokenizer's JSON ({'kind': 'word_tokenizer', "
                           "'vocabulary': [...]})")
        return cls(payload["vocabulary"])

    def save(self, path):
        """Writes the JSON through a temporary file, so a failure leaves nothing half-written."""
        temporary = f"{path}.tmp"
        try:
            with open(temporary, "w", encoding="utf-8") as handle:
                json.dump(self.to_json(), handle, indent=1)
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)

    @classmethod
    def load(cls, path):
        if not os.path.isfile(path):
            raise KCCError(f"tokenizer file not found: {path!r}")
        try:
            with open(path, encoding="utf-8") as handle:
                payload = json.load(handle)
        except (OSError, ValueError):
            raise KCCError(f"{path!r} is not a tokenizer's JSON file") from None
        return cls.from_json(payload)
