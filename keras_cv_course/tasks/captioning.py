"""Image captioning: a sentence per image, one word at a time.

Data. A dataset's ``captions`` annotation holds one sentence per image. The
task fits a word-level tokenizer on the training split's captions
(``classes_from``: the vocabulary is the task's class list, saved with the
run as JSON) and turns every caption into ``CAPTION_TOKENS + 1`` ids,
``<start> w1 ... wn <end>`` padded with ``<pad>`` (0). Teacher forcing
splits them (``examples_from``): the model's ``tokens`` input is the
sequence without its last id, its ``next_tokens`` target the sequence
without its first, so position ``t`` learns to predict word ``t + 1``
from the image and the true words before it.

Training minimises the cross-entropy of the next token, ignoring padding.
Evaluation decodes greedily from the served networks and reports BLEU-1 to
BLEU-4 and CIDEr-D against the held-out captions
(``sequence.caption_metrics``).

Serving. A captioner serves two networks (``serving_parts``): the image
encoder and the one-step decoder, exported at batch 1, each verified
against Keras on its own. ``pipeline`` runs them together with the NumPy
decode loop of ``sequence.captioning``, from Keras or from any artifact;
``export_record`` writes what that loop needs (the tokenizer, the special
ids, the state names) into ``manifest.json``.
"""

import keras
import numpy as np

from keras_cv_course.specs import TensorSpec
from keras_cv_course.tasks.base import IMAGES, Task, to_rgb
from keras_cv_course.tasks.registry import register_task

CAPTION_TOKENS = 16
"""Positions a captioner trains on: ``<start>`` and up to 15 words; longer captions are cut."""
TOKENS = TensorSpec("tokens", ("length",), "int32",
                    "caption ids so far: <start> w1 ... (teacher forcing); 0 pads")
NEXT_TOKENS = TensorSpec("next_tokens", ("length",), "int32",
                         "the next id at every position: w1 ... <end>; 0 pads")
EVALUATION_BATCH = 64


class CaptioningTask(Task):
    name = "captioning"
    description = "a sentence per image; BLEU and CIDEr-D of greedy captions"
    input_specs = (IMAGES, TOKENS)
    target_specs = (NEXT_TOKENS,)
    output_specs = (TensorSpec("logits", ("length", "vocabulary"), "float32",
                               "next-token logits at every position"),)
    annotations = ("captions",)
    headline_metrics = ("bleu_4", "cider_d", "bleu_1", "loss")
    serving_batch_size = 1  # the one-step decoder runs one caption at a time

    # -- data ---------------------------------------------------------------------------

    def classes_from(self, known_names, read_training_annotations):
        """The vocabulary of the training captions (``sequence.text.Tokenizer``)."""
        from keras_cv_course.sequence.text import Tokenizer

        return Tokenizer.fit(_strings(read_training_annotations()["captions"])).vocabulary

    def examples_from(self, images, annotations, class_names):
        ids = caption_ids(annotations["captions"], class_names)
        return {IMAGES.name: images, TOKENS.name: ids[..., :-1]}, ids[..., 1:]

    # -- building and training ----------------------------------------------------------

    def build_arguments(self, bundle):
        shapes = {spec.name: spec.shape for spec in bundle.input_specs}
        return {"input_shape": tuple(shapes[IMAGES.name]), "vocabulary_size": bundle.num_classes,
                "vocabulary": tuple(bundle.class_names), "max_length": shapes[TOKENS.name][0]}

    def loss(self, augmentation=None, model=None):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)

    def summaries(self, model, inputs, targets=None):
        return {}

    # -- evaluation ---------------------------------------------------------------------

    def evaluate(self, model, dataset):
        """The loss, then BLEU and CIDEr-D of greedy captions of every example."""
        from keras_cv_course.export.api import serving_function

        results = super().evaluate(model, dataset)
        parts = {name: _numpy_outputs(serving_function(network, self))
                 for name, network in self.serving_parts(model).items()}
        caption = self.pipeline(parts, self.export_record(model))
        predicted, references = [], []
        for inputs, targets in dataset:
            predicted.append(caption(keras.ops.convert_to_numpy(inputs[IMAGES.name]))["tokens"])
            references.append(keras.ops.convert_to_numpy(targets))
        return {**results, **self.caption_scores(model.vocabulary, predicted, references)}

    def caption_scores(self, vocabulary, predicted, references):
        """BLEU-1..4 and CIDEr-D of predicted ids against reference ids (lists of batches)."""
        from keras_cv_course.sequence.caption_metrics import cider_d, corpus_bleu
        from keras_cv_course.sequence.text import Tokenizer

        tokenizer = Tokenizer(vocabulary)
        hypotheses = [tokenizer.decode_words(row) for batch in predicted for row in batch]
        truths = [[tokenizer.decode_words(row)] for batch in references for row in batch]
        return {**corpus_bleu(truths, hypotheses), "cider_d": cider_d(truths, hypotheses)[0]}

    # -- export -------------------------------------------------------------------------

    def serving_parts(self, model):
        return {"encoder": model.encoder, "decoder": model.decoder}

    def export_record(self, model):
        from keras_cv_course.sequence.captioning import decoding_record

        return {"captioning": decoding_record(model)}

    def pipeline(self, parts, record):
        from keras_cv_course.sequence.captioning import CaptionPipeline

        return CaptionPipeline(parts["encoder"], parts["decoder"], record["captioning"])

    # -- pictures -----------------------------------------------------------------------

    def prediction_picture(self, image, outputs, class_names=()):
        from keras_cv_course.sequence.text import Tokenizer

        words = Tokenizer(class_names).decode(outputs["tokens"]) if class_names else \
            " ".join(str(int(i)) for i in outputs["tokens"])
        return to_rgb(image), [f'"{words}"']

    def extra_pictures(self, image, outputs, class_names=()):
        """One picture per word: where the decoder looked (its attention) when it wrote it."""
        from keras_cv_course.sequence.captioning import attention_pictures

        if "attention" not in outputs or not class_names:
            return {}
        return attention_pictures(to_rgb(image), outputs["tokens"], outputs["attention"],
                                  class_names)


def caption_ids(captions, vocabulary):
    """Captions -> ``(n, CAPTION_TOKENS + 1)`` int32 ids (NumPy arrays or, in a
    ``tf.data`` map, string tensors through ``tf.numpy_function``)."""
    from keras_cv_course.sequence.text import Tokenizer

    tokenizer = Tokenizer(vocabulary)

    def encode(texts):
        texts = np.asarray(texts)
        rows = [_fitted(tokenizer.encode(text)) for text in _strings(texts.reshape(-1))]
        return np.asarray(rows, "int32").reshape(*texts.shape, CAPTION_TOKENS + 1)

    if isinstance(captions, np.ndarray):
        return encode(captions)
    import tensorflow as tf

    ids = tf.numpy_function(encode, [captions], tf.int32)
    ids.set_shape([*captions.shape, CAPTION_TOKENS + 1])
    return ids


def _fitted(ids):
    """``<start> ... <end>`` cut to ``CAPTION_TOKENS + 1`` ids (still ending in ``<end>``),
    or padded with 0 to that length."""
    length = CAPTION_TOKENS + 1
    if len(ids) > length:
        ids = [*ids[:length - 1], ids[-1]]
    return [*ids, *[0] * (length - len(ids))]


def _strings(values):
    return [value.decode("utf-8") if isinstance(value, bytes) else str(value)
            for value in np.asarray(values).reshape(-1)]


def _numpy_outputs(function):
    def run(inputs):
        return {key: keras.ops.convert_to_numpy(value) for key, value in function(inputs).items()}

    return run


register_task(CaptioningTask())
