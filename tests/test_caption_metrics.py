"""BLEU equals nltk's corpus BLEU, and CIDEr-D equals the COCO caption evaluation's."""

import numpy as np
import pytest
from nltk.translate.bleu_score import corpus_bleu as nltk_corpus_bleu
from pycocoevalcap.cider.cider import Cider

from keras_cv_course.sequence.caption_metrics import cider_d, corpus_bleu

WORDS = "a the red blue circle square on left right large small and".split()
WEIGHTS = {1: (1.0,), 2: (0.5, 0.5), 3: (1 / 3,) * 3, 4: (0.25,) * 4}


def random_corpus(seed, size=12):
    rng = np.random.default_rng(seed)

    def sentence():
        return list(rng.choice(WORDS, rng.integers(3, 10)))

    references = [[sentence() for _ in range(rng.integers(1, 4))] for _ in range(size)]
    hypotheses = [sentence() if rng.random() < 0.5 else list(refs[0][:-1]) + ["red"]
                  for refs in references]
    return references, hypotheses


@pytest.mark.parametrize("seed", range(6))
def test_bleu_equals_nltk(seed):
    references, hypotheses = random_corpus(seed)
    ours = corpus_bleu(references, hypotheses)
    for order, weights in WEIGHTS.items():
        expected = nltk_corpus_bleu(references, hypotheses, weights=weights)
        assert ours[f"bleu_{order}"] == pytest.approx(expected, abs=1e-12), order


def test_bleu_by_hand():
    # Hypothesis "a red circle on the left" against "a large red circle on the left":
    # p1 = 6/6, p2 = 4/5 (all but "a red"), length 6 < 7, so BP = exp(1 - 7/6).
    bleu = corpus_bleu([["a large red circle on the left"]], ["a red circle on the left"])
    assert bleu["bleu_1"] == pytest.approx(np.exp(1 - 7 / 6))
    assert bleu["bleu_2"] == pytest.approx(np.exp(1 - 7 / 6) * np.sqrt(4 / 5))


def test_bleu_without_matches_is_zero_as_in_nltk():
    references, hypotheses = [["a red circle".split()]], ["blue square left".split()]
    assert corpus_bleu(references, hypotheses)["bleu_4"] == 0.0
    assert nltk_corpus_bleu(references, hypotheses) == 0.0


def _coco(references, hypotheses):
    scorer = Cider()
    gts = {index: [" ".join(ref) for ref in refs] for index, refs in enumerate(references)}
    res = {index: [" ".join(hypothesis)] for index, hypothesis in enumerate(hypotheses)}
    return scorer.compute_score(gts, res)


@pytest.mark.parametrize("seed", range(4))
def test_cider_d_equals_coco_caption(seed):
    references, hypotheses = random_corpus(seed)
    corpus, each = cider_d(references, hypotheses)
    expected_corpus, expected_each = _coco(references, hypotheses)
    assert corpus == pytest.approx(expected_corpus, abs=1e-9)
    np.testing.assert_allclose(each, expected_each, atol=1e-9)


def test_cider_d_known_answers():
    references = [["a red circle on the left".split()], ["a blue square on the right".split()],
                  ["a small green triangle".split()]]
    exact, _ = cider_d(references, [refs[0] for refs in references])
    nothing, each = cider_d(references, ["purple".split()] * 3)
    assert nothing == 0.0 and np.all(each == 0.0)
    # Equal captions: each order's cosine is 1 for n-grams with nonzero idf, so the score
    # is 10 times the mean over orders of that cosine, at most 10.
    assert 0.0 < exact <= 10.0
    longer, _ = cider_d(references[:1] + references[1:],
                        ["a red circle on the left and more words here".split(),
                         *[refs[0] for refs in references[1:]]])
    assert longer < exact  # the Gaussian length penalty and the extra n-grams
