"""Caption metrics: corpus BLEU-1 to BLEU-4 and CIDEr-D.

* BLEU: Kishore Papineni, Salim Roukos, Todd Ward, Wei-Jing Zhu. "BLEU: a
  Method for Automatic Evaluation of Machine Translation". ACL 2002. For
  each order ``n``, the clipped n-gram matches of every hypothesis (each
  n-gram counts at most as often as in its most generous reference) are
  summed over the corpus and divided by the hypotheses' n-gram count:
  ``p_n``. BLEU-N is ``BP * exp(mean(log p_1 .. log p_N))`` with the brevity
  penalty ``BP = exp(1 - r / c)`` when the corpus's hypothesis length ``c``
  is below ``r``, the sum of the reference lengths closest to each
  hypothesis (the shorter on a tie). A zero ``p_n`` gives 0, and a
  hypothesis shorter than ``n`` words adds 1 to the n-gram count. These are the
  definitions of nltk's ``corpus_bleu`` without smoothing, and the tests
  check equality with it.
* CIDEr-D: Ramakrishna Vedantam, C. Lawrence Zitnick, Devi Parikh. "CIDEr:
  Consensus-based Image Description Evaluation". CVPR 2015.
  arXiv:1411.5726. Each sentence becomes TF-IDF vectors of its 1- to
  4-grams, with document frequencies counted over the images' reference
  sets. For each order, a hypothesis scores the mean over its references
  of the cosine similarity, with the hypothesis' counts clipped to the
  reference's and a Gaussian penalty ``exp(-(l_h - l_r)^2 / (2 sigma^2))``
  on the length difference; the orders are averaged and multiplied by 10.
  This is the "D" variant that the COCO caption evaluation reports.

NumPy and the standard library only.
"""

import collections
import math

import numpy as np

from keras_cv_course.sequence.text import normalize

BLEU_ORDERS = 4


def _words(sentence):
    return list(sentence) if not isinstance(sentence, str) else normalize(sentence)


def ngrams(words, order):
    """``Counter`` of the ``order``-grams of a word list."""
    return collections.Counter(tuple(words[i:i + order]) for i in range(len(words) - order + 1))


def corpus_bleu(references, hypotheses, max_order=BLEU_ORDERS):
    """Corpus BLEU-1 .. BLEU-``max_order``.

    Args:
        references: per hypothesis, a list of reference captions (strings or
            word lists).
        hypotheses: captions (strings or word lists).

    Returns:
        ``{"bleu_1": ..., ..., "bleu_<max_order>": ...}``.
    """
    matches, totals = np.zeros(max_order), np.zeros(max_order)
    hypothesis_length = reference_length = 0
    for refs, hypothesis in zip(references, hypotheses):
        hypothesis = _words(hypothesis)
        refs = [_words(ref) for ref in refs]
        for order in range(1, max_order + 1):
            counts = ngrams(hypothesis, order)
            most = collections.Counter()
            for ref in refs:
                most |= ngrams(ref, order)
            matches[order - 1] += sum(min(count, most[gram]) for gram, count in counts.items())
            # A hypothesis with no n-gram of this order still counts 1, as in nltk.
            totals[order - 1] += max(1, len(hypothesis) - order + 1)
        hypothesis_length += len(hypothesis)
        reference_length += min((len(ref) for ref in refs),
                                key=lambda length: (abs(length - len(hypothesis)), length))
    return {f"bleu_{order}": _bleu(matches[:order], totals[:order], hypothesis_length,
                                   reference_length) for order in range(1, max_order + 1)}


def _bleu(matches, totals, hypothesis_length, reference_length):
    if hypothesis_length == 0 or np.any(matches == 0):
        return 0.0
    log_precision = np.mean(np.log(matches / totals))
    brevity = 1.0 if hypothesis_length > reference_length else math.exp(
        1.0 - reference_length / hypothesis_length)
    return float(brevity * math.exp(log_precision))


def cider_d(references, hypotheses, sigma=6.0, max_order=4):
    """CIDEr-D of every hypothesis and their mean.

    Args:
        references: per hypothesis, a list of reference captions.
        hypotheses: captions (strings or word lists).
        sigma: the length penalty's width (6 in the paper and coco-caption).

    Returns:
        ``(corpus score, per-hypothesis scores as an array)``.
    """
    refs = [[_words(ref) for ref in group] for group in references]
    hyps = [_words(hypothesis) for hypothesis in hypotheses]
    frequency = collections.Counter(
        gram for group in refs for gram in {g for ref in group for order in range(1, max_order + 1)
                                            for g in ngrams(ref, order)})
    log_images = math.log(max(1.0, float(len(refs))))
    scores = np.zeros(len(hyps))
    for index, (group, hypothesis) in enumerate(zip(refs, hyps)):
        vector, norms = _tfidf(hypothesis, frequency, log_images, max_order)
        per_order = np.zeros(max_order)
        for ref in group:
            ref_vector, ref_norms = _tfidf(ref, frequency, log_images, max_order)
            penalty = math.exp(-((len(hypothesis) - len(ref)) ** 2) / (2 * sigma ** 2))
            for order in range(max_order):
                dot = sum(min(value, ref_vector[order].get(gram, 0.0)) * ref_vector[order].get(
                    gram, 0.0) for gram, value in vector[order].items())
                if norms[order] and ref_norms[order]:
                    per_order[order] += penalty * dot / (norms[order] * ref_norms[order])
        scores[index] = 10.0 * per_order.mean() / max(1, len(group))
    return (float(scores.mean()) if len(scores) else 0.0), scores


def _tfidf(words, frequency, log_images, max_order):
    """Per order, ``{n-gram: tf * idf}`` and the vector's norm (coco-caption's weights:
    term frequency as a raw count, idf ``log(N) - log(max(1, df))``)."""
    vectors, norms = [], []
    for order in range(1, max_order + 1):
        vector = {gram: count * (log_images - math.log(max(1.0, float(frequency[gram]))))
                  for gram, count in ngrams(words, order).items()}
        vectors.append(vector)
        norms.append(math.sqrt(sum(value * value for value in vector.values())))
    return vectors, norms
