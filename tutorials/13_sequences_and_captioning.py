# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Recurrent networks, attention and image captioning
# Lecture: Recurrent networks, attention and image captioning
#
# Tasks: captioning
#
# **The question.** A classifier answers with one label. A caption is a *sequence* of words,
# each depending on the image and on the words before it:
# `p(w_1..w_n | I) = prod_t p(w_t | I, w_<t)`. This tutorial builds the pieces of the lecture
# from their equations, checks each against Keras, and ends with three captioners that run
# on a phone from two exported networks and a short NumPy loop.
#
# * **Recurrent cells.** The vanilla RNN (Elman 1990), the LSTM (Hochreiter and
#   Schmidhuber 1997) and the GRU (Cho et al. 2014, arXiv:1406.1078), written with
#   `keras.ops`, and why the RNN forgets (Bengio et al. 1994; Pascanu et al. 2013,
#   arXiv:1211.5063).
# * **Captioning.** Show and Tell (Vinyals et al., CVPR 2015, arXiv:1411.4555): a CNN encodes
#   the image, an LSTM writes the caption. Show, Attend and Tell (Xu et al., ICML 2015,
#   arXiv:1502.03044): the LSTM looks at a different part of the image for every word.
# * **Attention and the Transformer.** Scaled dot-product and multi-head attention (Vaswani
#   et al., NeurIPS 2017, arXiv:1706.03762), and a Transformer decoder over the image's grid.
#
# The data are the embedded `shapes` images, each captioned by its generator, e.g. "a large
# red circle on the left". Everything trains in a few minutes on a laptop CPU.

# %%
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from keras_cv_course.data import load_dataset  # noqa: E402
from keras_cv_course.evaluation import evaluate_model  # noqa: E402
from keras_cv_course.export import export  # noqa: E402
from keras_cv_course.predict import open_artifact_parts, open_pipeline  # noqa: E402
from keras_cv_course.sequence import attention, captioning, cells, copy_task, text  # noqa: E402
from keras_cv_course.sequence.caption_metrics import corpus_bleu  # noqa: E402
from keras_cv_course.tasks import get_task  # noqa: E402
from keras_cv_course.tasks.base import to_rgb  # noqa: E402
from keras_cv_course.training import train  # noqa: E402

FAST = os.environ.get("KCC_FAST") == "1"  # shrinks the budget only; same code path
OUT = os.environ.get("KCC_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="kcc-tutorial-")
os.makedirs(OUT, exist_ok=True)
RUNS = tempfile.mkdtemp(prefix="13-captioning-", dir=OUT)  # fresh run folders every time
EPOCHS = dict(show_and_tell=3, show_attend_tell=4, transformer_captioner=3) if FAST else \
    dict(show_and_tell=15, show_attend_tell=15, transformer_captioner=15)
COPY_STEPS = 20 if FAST else 100
print(f"FAST={FAST}, epochs={EPOCHS}, writing into {RUNS}")

# %% [markdown]
# ## 1. An LSTM cell from its equations
#
# One LSTM step computes four gates from the input `x` and the previous hidden state `h`,
# then updates the cell state `c` additively:
#
# ```
# i, f, o = sigmoid(.), sigmoid(.), sigmoid(.)       g = tanh(.)
# c' = f * c + i * g          h' = o * tanh(c')
# ```
#
# The lecture stacks the gates as (i, f, o, g); Keras packs its weight columns as
# (i, f, g, o). `cells.LSTMCell` creates its weights exactly as Keras' cell does, so we can
# copy the weights of a `keras.layers.LSTM` and compare the two on the same sequence.

# %%
rng = np.random.default_rng(0)
sequence = rng.normal(size=(3, 7, 5)).astype("float32")
reference = keras.layers.LSTM(8, return_sequences=True, return_state=True)
expected, _, _ = reference(sequence)
ours = cells.LSTMCell(8)
cells.copy_keras_weights(ours, reference)
outputs, _ = cells.unroll(ours, sequence)
error = float(np.max(np.abs(keras.ops.convert_to_numpy(outputs) - expected.numpy())))
print(f"our LSTM against keras.layers.LSTM: max error {error:.2e}")
assert error < 1e-6
kernel = ours.get_weights()[0]
course_order = cells.reorder_gates(kernel, source="keras", target="course")
print(f"kernel {kernel.shape}: Keras' columns (i, f, g, o) -> the lecture's (i, f, o, g)")
assert np.allclose(cells.reorder_gates(course_order, source="course", target="keras"), kernel)

# %% [markdown]
# ## 2. Why the vanilla RNN forgets
#
# The gradient that reaches step `t` from a loss at step `T` is multiplied by one Jacobian
# per step in between. For the vanilla RNN each is `diag(tanh'(a)) U^T`, and once its units
# saturate the product vanishes exponentially. The LSTM's cell state is carried by
# `c' = f * c + ...`, so the signal is only scaled by the forget gate.
#
# The copy task (Arjovsky et al. 2016, arXiv:1511.06464) shows 10 letters, waits, and asks
# for them back at the end. We train each cell briefly on it, then measure `||dL/dh_t||`
# for a loss on the last 10 steps.

# %%
inputs, targets = copy_task.copy_task_batch(64, 40, seed=1)
for cell_class in (cells.RNNCell, cells.LSTMCell):
    cell = copy_task.seeded_cell(cell_class, 32, seed=0)
    readout, loss = copy_task.train_on_copy_task(cell, 40, steps=COPY_STEPS, seed=0)
    norms = copy_task.state_gradient_norms(cell, inputs, targets, readout=readout)
    plt.semilogy(np.arange(1, 41), norms, label=cell_class.__name__)
    print(f"{cell_class.__name__}: ||dL/dh_1|| / ||dL/dh_40|| = {norms[0] / norms[-1]:.1e}")
plt.xlabel("time step t")
plt.ylabel("||dL / dh_t||")
plt.legend()
plt.title("gradient reaching each step of the copy task")
plt.show()

# %% [markdown]
# ## 3. Attention, checked against Keras
#
# Scaled dot-product attention is `softmax(Q K^T / sqrt(d)) V`; multi-head attention runs it
# on `h` learned projections and concatenates the results. A causal mask lets position `t`
# see positions `<= t` only, which is what a decoder needs when it trains on a whole caption
# at once.

# %%
queries = rng.normal(size=(2, 5, 16)).astype("float32")
mine = attention.MultiHeadAttention(num_heads=4, key_dim=8)
keras_attention = keras.layers.MultiHeadAttention(num_heads=4, key_dim=8)
keras_out, keras_scores = keras_attention(queries, queries, use_causal_mask=True,
                                          return_attention_scores=True)
mine(queries, queries)  # build, then copy Keras' weights
mine.set_weights(keras_attention.get_weights())
my_out, my_scores = mine(queries, queries, use_causal_mask=True, return_attention_scores=True)
error = float(np.max(np.abs(keras.ops.convert_to_numpy(my_out) - keras_out.numpy())))
print(f"multi-head attention against Keras: max error {error:.2e}")
assert error < 1e-5
print("head 0, causal weights:\n", np.round(keras.ops.convert_to_numpy(my_scores)[0, 0], 2))

# %% [markdown]
# ## 4. Captions as data
#
# The captioning task fits a word-level tokenizer on the training captions (saved with every
# run as JSON) and turns each caption into ids `<start> w1 ... wn <end>`, padded with 0.
# Teacher forcing feeds the model the true words so far and asks it for the next one: the
# input `tokens` and the target `next_tokens` are the same ids shifted by one.

# %%
data = load_dataset("shapes", task="captioning", num_examples=1200)
tokenizer = text.Tokenizer(data.class_names)
train_inputs, train_targets = data.arrays["train"]
print(f"vocabulary ({tokenizer.size}): {' '.join(tokenizer.vocabulary)}")
print("tokens     ", train_inputs["tokens"][0][:10])
print("next tokens", train_targets[0][:10])
print("caption:   ", tokenizer.decode(train_targets[0]))

# %% [markdown]
# ## 5. Three captioners
#
# Every captioner is two networks: an **encoder** (a registered backbone's feature grid plus
# the decoder's initial state) and a **one-step decoder** whose state is an explicit input
# and output. Training unrolls the step over the caption (the Transformer runs every
# position at once behind its causal mask); inference calls it once per word.
#
# The registry's tiny configs are test-sized; we widen them a little.

# %%
WIDER = dict(backbone_overrides=dict(stage_widths=(16, 32, 32, 64), stem_type="small"))
SETTINGS = {
    "show_and_tell": dict(units=64, embedding_dim=32),
    "show_attend_tell": dict(units=64, embedding_dim=32, attention_dim=32, coverage_weight=0.1),
    "transformer_captioner": dict(model_dim=64, feedforward_dim=128, num_heads=4),
}
runs = {}
for name, settings in SETTINGS.items():
    runs[name] = train(name, data, os.path.join(RUNS, name), config="tiny",
                       epochs=EPOCHS[name], batch_size=32, learning_rate=3e-3, verbose=0,
                       **WIDER, **settings)
    print(f"{name}: {runs[name].model.count_params():,} weights, trained in "
          f"{runs[name].seconds:.0f} s")

# %% [markdown]
# `evaluate` decodes every held-out image greedily and scores the captions with BLEU-1 to
# BLEU-4 (Papineni et al. 2002) and CIDEr-D (Vedantam et al. 2015, arXiv:1411.5726).

# %%
scores = {name: evaluate_model(run.model, data) for name, run in runs.items()}
for name, metrics in scores.items():
    print(f"{name:22s} bleu_1={metrics['bleu_1']:.3f} bleu_4={metrics['bleu_4']:.3f} "
          f"cider_d={metrics['cider_d']:.3f}")

# %% [markdown]
# Where the caption's words come from: the attention captioner returns, for every word, its
# weights over the 4x4 grid of backbone cells. The position words ("left", "right") are where
# it needs to look most.

# %%
attend, task = runs["show_attend_tell"], get_task("captioning")
test_images = data.arrays["test"][0]["images"][:3]
outputs = open_pipeline(task, attend.model)(test_images)
for image, tokens, weights in zip(test_images, outputs["tokens"], outputs["attention"]):
    panels = captioning.attention_pictures(to_rgb(image), tokens, weights, data.class_names)
    figure, axes = plt.subplots(1, len(panels) + 1, figsize=(1.4 * (len(panels) + 1), 1.8))
    for axis, (title, picture) in zip(axes, [("image", image), *panels.items()]):
        axis.imshow(np.clip(picture, 0, 1))
        axis.set_title(title.split("-", 1)[-1], fontsize=8)
        axis.axis("off")
    plt.show()

# %% [markdown]
# ## 6. Greedy or beam search
#
# Greedy decoding takes the most likely word at every step. Beam search keeps the `k` best
# partial captions and returns the most likely whole one. On captions this short and regular
# they mostly agree.

# %%
greedy = open_pipeline(task, attend.model)
beam = captioning.CaptionPipeline(greedy.encoder, greedy.decoder, greedy.record, beam_width=3)
test_inputs, test_targets = data.arrays["test"]
truth = [[tokenizer.decode_words(row)] for row in test_targets[:40]]
for label, pipeline in (("greedy", greedy), ("beam 3", beam)):
    found = pipeline(test_inputs["images"][:40])["tokens"]
    bleu = corpus_bleu(truth, [tokenizer.decode_words(row) for row in found])
    print(f"{label}: bleu_4={bleu['bleu_4']:.3f} on 40 test images")

# %% [markdown]
# ## 7. On a phone: an encoder, a one-step decoder and a NumPy loop
#
# Keras' own recurrent layers export to TFLite as while-loops. Here nothing loops inside a
# network: export writes the encoder and the one-step decoder (`export/encoder/`,
# `export/decoder/`), each verified against Keras, and the decode loop of
# `sequence.captioning` runs outside them. That loop imports only NumPy, so it runs with
# the TFLite interpreter alone.

# %%
folder = os.path.join(attend.path, "export")
manifest = export(attend.path, folder, formats=("tflite", "onnx"))
for part, entry in manifest["parts"].items():
    ops = entry["artifacts"]["tflite"]["ops"]
    print(f"{part}: inputs {sorted(entry['inputs'])}; TFLite ops {sorted(ops)}")
    assert "WHILE" not in ops
parts, record = open_artifact_parts(os.path.join(folder, "decoder", "model.tflite"))
from_tflite = task.pipeline(parts, record)(test_images)["tokens"]
from_keras = outputs["tokens"]
for row_tflite, row_keras in zip(from_tflite, from_keras):
    print(f"TFLite: {tokenizer.decode(row_tflite)!r}   Keras: {tokenizer.decode(row_keras)!r}")
assert np.array_equal(from_tflite, from_keras)

# %% [markdown]
# ## Exercises
#
# 1. Train `show_attend_tell` with `coverage_weight=0` and with `1.0` (the paper's). Does the
#    doubly stochastic penalty change BLEU-4, or only how the attention maps look?
# 2. `shapes` images with two shapes (`embedded.generate_shapes(..., max_shapes=2)`) are
#    captioned "... and ...". Which captioner copes with the longer captions, and why does the
#    order of the two shapes make greedy decoding harder?
# 3. Time one caption from the TFLite artifacts for the LSTM and for the Transformer. The
#    Transformer's step recomputes every earlier position: how would caching each block's
#    keys and values change the cost per word?

