"""Sequences and attention: the course's recurrent networks, attention, and captioning.

* ``cells``: vanilla RNN, LSTM and GRU cells written from their equations,
  weight-compatible with Keras' own; ``unroll`` runs one over a sequence.
* ``copy_task``: the copy task and the gradient norms that show why a
  vanilla RNN forgets and an LSTM does not.
* ``attention``: dot-product, scaled and multi-head attention, with masks.
* ``transformer``: encoder and decoder blocks (pre- and post-norm) and the
  Transformer-Base and -Big configurations.
* ``text``: the word-level tokenizer kept beside a captioner, saved as JSON.
* ``caption_metrics``: corpus BLEU-1 to BLEU-4 and CIDEr-D.
* ``decoding``: greedy and beam-search loops over any one-step decoder.
* ``captioning``: a captioner's encoder and one-step decoder run together,
  from Keras or from exported artifacts.

``text``, ``caption_metrics``, ``decoding`` and ``captioning`` import NumPy
only, so they run where only the exported artifacts are; the others use Keras.
This package imports none of its modules itself.
"""
