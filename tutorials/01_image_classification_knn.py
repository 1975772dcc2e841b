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
# # Image classification with k-nearest neighbours
#
# Lecture: Image classification and kNN
#
# Tasks: classification
#
# **The question.** We cannot write down rules that say "this grid of numbers is a 7".
# Can a classifier that only *memorises* labelled examples recognise handwritten
# digits? And how do we choose its hyperparameters (the distance and the number of
# neighbours `k`) without cheating on the test set?
#
# This is the *data-driven approach*: collect images with labels, let a learning
# algorithm turn them into a classifier, then measure it on images it never saw.
# The simplest such algorithm is the nearest-neighbour rule of Cover and Hart
# ("Nearest Neighbor Pattern Classification", IEEE Trans. Information Theory, 1967).
# Its package implementation is `keras_cv_course/applications/classification/knn.py`.

# %%
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from keras_cv_course import applications  # noqa: E402
from keras_cv_course.applications.classification import knn  # noqa: E402
from keras_cv_course.data import load_dataset  # noqa: E402
from keras_cv_course.training import train  # noqa: E402

FAST = os.environ.get("KCC_FAST") == "1"  # only shrinks budgets; the code path is the same
OUT = os.environ.get("KCC_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="kcc-tutorial-")
os.makedirs(OUT, exist_ok=True)
RUNS = tempfile.mkdtemp(prefix="01-knn-", dir=OUT)  # train() never overwrites a run
print("run folders go into", RUNS)

# %% [markdown]
# ## The data
#
# scikit-learn's handwritten digits ship with the package (no download): 1,797 real
# 8x8 grey-level images of the digits 0-9. `load_dataset` splits them, stratified by
# class, into 1,257 training, 180 validation and 360 test images with pixels in [0, 1].

# %%
bundle = load_dataset("digits")
x_train, y_train = bundle.arrays["train"]
x_val, y_val = bundle.arrays["val"]
x_test, y_test = bundle.arrays["test"]
print("train", x_train.shape, "val", x_val.shape, "test", x_test.shape)

fig, axes = plt.subplots(2, 10, figsize=(10, 2.3))
for digit in range(10):
    for row, index in enumerate(np.flatnonzero(y_train == digit)[:2]):
        axes[row, digit].imshow(x_train[index, :, :, 0], cmap="gray_r")
        axes[row, digit].set_title(str(digit) if row == 0 else "", fontsize=9)
for ax in axes.ravel():
    ax.axis("off")
plt.suptitle("Two training images per class (8x8 pixels)")
plt.show()

# %% [markdown]
# ## Distances between images
#
# A nearest-neighbour classifier needs a way to compare two images. The two classic
# choices treat an image as a vector of its 64 pixels:
#
# * L1 (Manhattan): $d_1(a, b) = \sum_p |a_p - b_p|$
# * L2 (Euclidean): $d_2(a, b) = \sqrt{\sum_p (a_p - b_p)^2}$
#
# `knn.pairwise_distances` computes all pairs at once; for L2 it uses
# $|a|^2 - 2\,a \cdot b + |b|^2$, so the whole distance matrix is one matrix product.

# %%
flat_train = x_train.reshape(len(x_train), -1)
flat_test = x_test.reshape(len(x_test), -1)
d1 = knn.pairwise_distances(flat_test[:1], flat_train, metric="l1")[0]
d2 = knn.pairwise_distances(flat_test[:1], flat_train, metric="l2")[0]
print(f"first test image: nearest training image by L1 is #{d1.argmin()} (d = {d1.min():.2f}), "
      f"by L2 #{d2.argmin()} (d = {d2.min():.2f})")
# The vectorised L2 agrees with the definition.
assert np.isclose(d2[0], np.sqrt(np.sum((flat_test[0] - flat_train[0]) ** 2)), atol=1e-4)

# %% [markdown]
# Here are test images with their five nearest training images (L2). For most test
# images the neighbours share the query's label (top rows). The bottom two rows are
# test images whose *nearest* neighbour has the wrong label: pixel by pixel, those
# digits really do look alike.

# %%
nearest_all = np.argsort(knn.pairwise_distances(flat_test, flat_train), axis=1)[:, :5]
wrong = np.flatnonzero(y_train[nearest_all[:, 0]] != y_test)
queries = np.concatenate([np.arange(4), wrong[:2]])
nearest = nearest_all[queries]
print(f"{len(wrong)} of {len(x_test)} test images have a nearest neighbour of another class")
fig, axes = plt.subplots(len(queries), 6, figsize=(6, 6.5))
for row, query in enumerate(queries):
    axes[row, 0].imshow(x_test[query, :, :, 0], cmap="gray_r")
    axes[row, 0].set_title(f"query {y_test[query]}", fontsize=8)
    for col, index in enumerate(nearest[row], start=1):
        axes[row, col].imshow(x_train[index, :, :, 0], cmap="Blues")
        axes[row, col].set_title(str(y_train[index]), fontsize=8)
for ax in axes.ravel():
    ax.axis("off")
plt.suptitle("Test images (left) and their 5 nearest training images (L2)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The k-nearest-neighbour rule
#
# *Training* stores the training set; *prediction* finds the `k` stored images closest
# to the query and takes a majority vote of their labels. With `k = 1` every training
# image is classified correctly (it is its own nearest neighbour), which says nothing
# about new images: only held-out data can tell us how well the rule generalises.

# %%
train_predictions = knn.knn_predict(x_train, y_train, x_train, k=1)
print(f"1-NN accuracy on its own training set: {np.mean(train_predictions == y_train):.3f}")
assert np.mean(train_predictions == y_train) == 1.0

# %% [markdown]
# ## Choosing k and the distance by cross-validation
#
# `k` and the metric are *hyperparameters*: choices about the algorithm that are not
# learned from the data by the algorithm itself. Choosing them by test accuracy would
# make the test accuracy an optimistic estimate, because we would have fitted it. The
# rule: tune on data the final evaluation never sees.
#
# With few training images, *k-fold cross-validation* uses them well: split the
# training set into 5 folds, train on 4 and validate on the fifth, rotate, and
# average. `knn.cross_validate_k` returns the accuracy of every `k` on every fold, and
# `knn.choose_k` picks the best mean (the smallest `k` on a tie).

# %%
ks = (1, 3, 5, 8, 12, 20, 50) if FAST else (1, 2, 3, 5, 8, 10, 12, 15, 20, 30, 50)
folds = 3 if FAST else 5
scores = {metric: knn.cross_validate_k(x_train, y_train, ks, folds=folds, metric=metric)
          for metric in knn.METRICS}

fig, ax = plt.subplots(figsize=(7, 4))
for metric, accuracy in scores.items():
    for fold in range(folds):
        ax.scatter(ks, accuracy[:, fold], s=8, alpha=0.4)
    ax.errorbar(ks, accuracy.mean(axis=1), yerr=accuracy.std(axis=1), capsize=3,
                label=f"{metric.upper()}: mean and std over {folds} folds")
ax.set_xscale("log")
ax.set_xlabel("k (number of neighbours)")
ax.set_ylabel("validation accuracy")
ax.set_title(f"{folds}-fold cross-validation on the {len(x_train)} training digits")
ax.legend()
plt.show()

best = {metric: (ks[int(np.argmax(s.mean(axis=1)))], s.mean(axis=1).max())
        for metric, s in scores.items()}
for metric, (k, accuracy) in best.items():
    print(f"{metric.upper()}: best k = {k}, cross-validated accuracy {accuracy:.3f}")
best_metric = max(best, key=lambda metric: best[metric][1])
best_k = knn.choose_k(x_train, y_train, ks, folds=folds, metric=best_metric)
print(f"chosen: metric {best_metric.upper()}, k = {best_k}")
assert best_k == best[best_metric][0]

# %% [markdown]
# Two things to read off the curves. Small `k` wins on these clean digits, and very
# large `k` loses: with `k = 50` the vote reaches far beyond the query's own
# neighbourhood and is dragged towards whatever classes are common nearby. And L2 edges
# out L1 here, but by less than the spread between folds; on other data the order can
# flip, which is why we measure instead of guessing.

# %%
small_k = scores[best_metric].mean(axis=1)[list(ks).index(best_k)]
large_k = scores[best_metric].mean(axis=1)[list(ks).index(50)]
print(f"{best_metric.upper()}: k = {best_k}: {small_k:.3f}, k = 50: {large_k:.3f}")
assert small_k > large_k

# %% [markdown]
# ## The kNN model of the package, trained with `train`
#
# The registry's `knn` is a Keras model whose "weights" are the memorised training set
# (non-trainable variables), so it saves, loads and exports like any other model.
# `training.train` notices its registry record says `training="memorize"` and calls
# `model.memorize(images, labels)` instead of `fit`. We pass the chosen `k` and metric
# as builder overrides and evaluate on the test set **once**.

# %%
run = train("knn", bundle, os.path.join(RUNS, "knn"), k=best_k, metric=best_metric,
            verbose=0)
test_accuracy = run.metrics["accuracy"]
print(f"kNN (k = {best_k}, {best_metric.upper()}) test accuracy: {test_accuracy:.3f}")
assert test_accuracy > 0.95

# The Keras model and the NumPy reference make the same predictions.
keras_predictions = run.model.predict(x_test, verbose=0).argmax(axis=1)
numpy_predictions = knn.knn_predict(x_train, y_train, x_test, k=best_k, metric=best_metric)
agreement = np.mean(keras_predictions == numpy_predictions)
print(f"Keras model and NumPy reference agree on {agreement:.1%} of the test images")
assert agreement > 0.99

# %% [markdown]
# The "parameters" of this model are its memory: 1,437 image slots of 64 pixels plus
# one label each. The model grows with the training set, unlike the parametric models
# of the next lectures, whose size is fixed by their design.

# %%
print(f"memory parameters: {applications.parameter_count(run.model):,} "
      f"= 1437 x 64 pixels + 1437 labels")
assert applications.parameter_count(run.model) == 1437 * 64 + 1437

# %% [markdown]
# ## Fast to train, slow to predict
#
# Training is a copy; prediction compares each query with every stored image. That is
# the opposite of what we want in practice: we can afford slow training, but a
# deployed classifier should be fast.

# %%
started = time.perf_counter()
run.model.memorize(x_train, y_train)
train_seconds = time.perf_counter() - started
started = time.perf_counter()
for _ in range(3):
    knn.knn_predict(x_train, y_train, x_test, k=best_k, metric="l1")
predict_seconds = (time.perf_counter() - started) / 3
print(f"memorise {len(x_train)} images: {train_seconds * 1e3:.1f} ms; "
      f"classify {len(x_test)} images (L1): {predict_seconds * 1e3:.1f} ms")

# %% [markdown]
# ## Why pixel distances are not enough
#
# Shift every test digit one pixel to the right. To a person it is the same digit; to
# L2 distance it is a different vector, and the nearest-neighbour rule falls apart.
# This is why kNN on raw pixels is never used on real photographs, and why the rest
# of the course learns *features* in which distances mean something.

# %%
shifted = np.zeros_like(x_test)
shifted[:, :, 1:] = x_test[:, :, :-1]
shift_distance = np.sqrt(np.sum((shifted - x_test) ** 2, axis=(1, 2, 3)))
neighbour_distance = knn.pairwise_distances(flat_test, flat_train).min(axis=1)
shifted_accuracy = np.mean(
    knn.knn_predict(x_train, y_train, shifted, k=best_k, metric=best_metric) == y_test)
print(f"median L2 distance of a digit to itself shifted by one pixel: "
      f"{np.median(shift_distance):.2f}; to its nearest training image: "
      f"{np.median(neighbour_distance):.2f}")
print(f"test accuracy: {test_accuracy:.3f} as is, {shifted_accuracy:.3f} shifted by one pixel")
assert np.median(shift_distance) > np.median(neighbour_distance)
assert shifted_accuracy < test_accuracy - 0.2

# %% [markdown]
# ## Exercise
#
# Set `k` to the size of the training set (1,257) in `knn.knn_predict` and measure the
# test accuracy. Before running it, predict the number, and say what the classifier
# is doing.
#
# <details><summary>Answer</summary>
#
# Answer: 10%. With every training image voting, every query gets the same prediction,
# the most frequent training class (here "1", with 128 images; a tie with "3" goes to
# the smaller class index), so the accuracy is that class's share of the stratified
# test set: 36 of 360. Large `k` trades variance for bias; the extreme is a constant
# classifier.
#
# </details>
