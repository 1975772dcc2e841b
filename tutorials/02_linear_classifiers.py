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
# # Linear classifiers: scores, losses and templates
#
# Lecture: Linear classifiers
#
# Tasks: classification
#
# **The question.** kNN keeps the whole training set. Can we instead summarise it in a
# few numbers, one score function $f(x) = Wx + b$, and what should the loss ask of
# those scores? We compare the two classic losses, softmax cross-entropy and the
# multiclass SVM (hinge) loss, and look inside $W$: each of its rows is a *template*
# that the image is matched against.
#
# The softmax classifier is multinomial logistic regression (Cox, "The Regression
# Analysis of Binary Sequences", JRSS-B 1958); the multiclass SVM loss is that of
# Weston and Watkins ("Support Vector Machines for Multi-Class Pattern Recognition",
# ESANN 1999). The package's models are `linear_softmax` and `linear_svm`
# (`keras_cv_course/applications/classification/linear.py`).

# %%
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from keras_cv_course import applications  # noqa: E402
from keras_cv_course.data import load_dataset  # noqa: E402
from keras_cv_course.losses import MulticlassHinge  # noqa: E402
from keras_cv_course.training import train  # noqa: E402

FAST = os.environ.get("KCC_FAST") == "1"  # only shrinks budgets; the code path is the same
OUT = os.environ.get("KCC_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="kcc-tutorial-")
EPOCHS = 10 if FAST else 30
os.makedirs(OUT, exist_ok=True)
RUNS = tempfile.mkdtemp(prefix="02-linear-", dir=OUT)  # train() never overwrites a run
print("run folders go into", RUNS)

# %% [markdown]
# ## A score function
#
# A linear classifier flattens the image into a vector $x$ (64 pixels for an 8x8
# digit) and computes one score per class, $s = Wx + b$, with $W$ of shape
# (classes, pixels). In Keras that is `Flatten` then one `Dense` layer, whose kernel is
# $W^\top$ (pixels, classes). The whole model has 64 x 10 + 10 = 650 parameters,
# whatever the size of the training set.

# %%
model = applications.build("linear_svm", input_shape=(8, 8, 1), classes=10,
                           classifier_activation=None)
model.summary()
assert applications.parameter_count(model) == 64 * 10 + 10

# %% [markdown]
# ## Two losses on the same scores
#
# Take CS231n's example: three classes, the true class is 0, and the scores are
# $s = (3.2, 5.1, -1.7)$. The image is misclassified (class 1 scores highest).
#
# * **Multiclass SVM**: $L = \sum_{j \ne y} \max(0, s_j - s_y + 1)$. Every wrong class
#   must score at least a margin of 1 below the true one; each violation costs its size.
#   Here $\max(0, 5.1 - 3.2 + 1) + \max(0, -1.7 - 3.2 + 1) = 2.9 + 0$.
# * **Softmax cross-entropy**: turn scores into probabilities
#   $p_j = e^{s_j} / \sum_k e^{s_k}$ and pay $L = -\log p_y$, the surprise at the true
#   class. Here $p_0 = 0.13$ and $L = 2.04$.

# %%
labels = np.array([0])
scores = np.array([[3.2, 5.1, -1.7]], dtype="float32")
cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
svm_loss = float(MulticlassHinge()(labels, scores))
softmax_loss = float(cross_entropy(labels, scores))
print(f"SVM loss {svm_loss:.2f}, softmax loss {softmax_loss:.2f}")
assert np.isclose(svm_loss, 2.9, atol=1e-5)
assert np.isclose(softmax_loss, 2.04, atol=5e-3)

# %% [markdown]
# **A sanity check you should always run.** At initialisation the scores are all
# about equal. Then the SVM loss is $(C - 1) \times 1$ (every wrong class violates the
# margin by exactly 1) and the softmax loss is $\log C$ (uniform probabilities). With
# $C = 10$ digits: 9 and 2.303. A first loss far from these numbers means a bug.

# %%
zeros = np.zeros((4, 10), dtype="float32")
ten_labels = np.array([0, 3, 7, 9])
print(f"equal scores: SVM loss {float(MulticlassHinge()(ten_labels, zeros)):.3f}, "
      f"softmax loss {float(cross_entropy(ten_labels, zeros)):.3f}")
assert np.isclose(float(MulticlassHinge()(ten_labels, zeros)), 9.0)
assert np.isclose(float(cross_entropy(ten_labels, zeros)), np.log(10.0), atol=1e-5)

# %% [markdown]
# **Where they differ.** The SVM loss is *satisfied*: once the true class beats every
# other class by the margin, the loss is exactly 0 and the scores get no more push.
# Softmax is never satisfied: it always wants the true class's probability closer to 1,
# so making the wrong scores even lower still reduces it.

# %%
confident = np.array([[10.0, -2.0, 3.0]], dtype="float32")
very_confident = np.array([[10.0, -5.0, -5.0]], dtype="float32")
for name, s in (("s = (10, -2, 3)", confident), ("s = (10, -5, -5)", very_confident)):
    print(f"{name:22s} SVM {float(MulticlassHinge()(labels, s)):.4f}   "
          f"softmax {float(cross_entropy(labels, s)):.2e}")
assert float(MulticlassHinge()(labels, confident)) == 0.0
assert float(MulticlassHinge()(labels, very_confident)) == 0.0
assert float(cross_entropy(labels, very_confident)) < float(cross_entropy(labels, confident))

# %% [markdown]
# ## Training both on the digits
#
# `training.train` builds each registered model for the data (input shape, 10
# classes), compiles it with its task's loss (cross-entropy for `linear_softmax`, the
# registry's `MulticlassHinge` for `linear_svm`) and fits it with plain SGD. Same data,
# same seed, same budget.

# %%
bundle = load_dataset("digits")
x_test, y_test = bundle.arrays["test"]
runs = {}
for name in ("linear_softmax", "linear_svm"):
    runs[name] = train(name, bundle, os.path.join(RUNS, name), epochs=EPOCHS, batch_size=32,
                       optimizer="sgd", learning_rate=0.3, verbose=0)
    print(f"{name:15s} test accuracy {runs[name].metrics['accuracy']:.3f}, "
          f"final training loss {runs[name].history['loss'][-1]:.3f}")
for run in runs.values():
    assert run.metrics["accuracy"] > 0.9

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for ax, (name, run) in zip(axes, runs.items()):
    ax.plot(run.history["loss"], label="training loss")
    ax.plot(run.history["val_loss"], label="validation loss")
    ax.set_title(f"{name}: test accuracy {run.metrics['accuracy']:.3f}")
    ax.set_xlabel("epoch")
    ax.legend()
plt.show()

# %% [markdown]
# Both reach about the same accuracy, and they agree on almost every test image: with
# the same score function, the choice of loss matters much less than the choice of
# model. (The loss values are not comparable: they measure different things.)

# %%
predictions = {name: run.model.predict(x_test, verbose=0).argmax(axis=1)
               for name, run in runs.items()}
agreement = np.mean(predictions["linear_softmax"] == predictions["linear_svm"])
print(f"the two classifiers agree on {agreement:.1%} of the test images")
assert agreement > 0.9

# %% [markdown]
# ## The weights are templates
#
# The score of class $c$ is the dot product of row $c$ of $W$ with the image: a
# *template match*. Reshaped to 8x8, each row shows which pixels vote for the class
# (red) and which vote against it (blue).
#
# What should a template look like? Each SGD step adds a multiple of the batch's images
# to $W$, pushing row $c$ towards images of class $c$ and away from images the model
# confuses with it. So we compare the templates with each class's average image minus
# the average of all digits (top row): red where the class has more ink than a typical
# digit. A "0" votes for its ring and against the centre, which most other digits cross.
#
# One artefact is worth understanding: a few border pixels are 0 in every training
# image. Their weights receive a gradient of exactly 0, so they keep their random
# initial values, noise that never affects a score.

# %%
x_train, y_train = bundle.arrays["train"]
never_lit = x_train.max(axis=0)[:, :, 0] == 0
print(f"{never_lit.sum()} of 64 pixels are 0 in every training image")

class_means = np.stack([x_train[y_train == digit].mean(axis=0) for digit in range(10)])
prototypes = (class_means - class_means.mean(axis=0))[..., 0]  # (10, 8, 8)
templates = {name: keras.ops.convert_to_numpy(run.model.get_layer("predictions").kernel)
             .T.reshape(10, 8, 8) for name, run in runs.items()}  # row c of W, as an image

fig, axes = plt.subplots(3, 10, figsize=(12, 4.2))
for row, (title, images) in enumerate((("mean - all", prototypes), *templates.items())):
    for digit in range(10):
        limit = np.abs(images[digit]).max()
        axes[row, digit].imshow(images[digit], cmap="RdBu_r", vmin=-limit, vmax=limit)
        axes[row, digit].set_title(f"{title.replace('linear_', '')} {digit}", fontsize=8)
        axes[row, digit].axis("off")
plt.suptitle("Class mean minus mean of all digits (top) and the learned templates "
             "(red: votes for the class)")
plt.tight_layout()
plt.show()

for name, images in templates.items():
    correlation = np.array([[np.corrcoef(images[c].ravel(), prototypes[d].ravel())[0, 1]
                             for d in range(10)] for c in range(10)])
    print(f"{name:15s} correlation of template c with (class mean c - mean): "
          f"{np.mean(np.diag(correlation)):.2f} on average; best match is its own class "
          f"for {np.sum(correlation.argmax(axis=1) == np.arange(10))} of 10 templates")
    assert np.mean(np.diag(correlation)) > 0.7
    assert np.all(correlation.argmax(axis=1) == np.arange(10))

# %% [markdown]
# Another check of the template picture: score each class's *average* training image.
# If the templates capture the classes, every class mean is classified as its own
# class.

# %%
for name, run in runs.items():
    mean_predictions = run.model.predict(class_means, verbose=0).argmax(axis=1)
    print(f"{name:15s} predicts the class means as {mean_predictions.tolist()}")
    assert np.sum(mean_predictions == np.arange(10)) >= 9

# %% [markdown]
# One template per class is also the linear classifier's limit. A class that comes in
# several shapes (a "7" with and without a crossbar, a car seen from the front and from
# the side) must share one template, which ends up as a blurry average of them all. The
# two-layer network of lecture 4 learns many templates and mixes them.

# %% [markdown]
# ## Exercise
#
# A template is tied to pixel positions. Shift every test image two pixels to the
# right (`np.roll(x_test, 2, axis=2)`) and measure the test accuracy of
# `runs["linear_softmax"].model`. Predict the accuracy before running.
#
# <details><summary>Answer</summary>
#
# Answer: it collapses from about 96% to around chance (10%), or even below. The
# shifted strokes land on pixels whose weights vote for other classes; nothing in
# $Wx + b$ knows that a shifted digit is the same digit. Convolutional networks
# (lecture 5) share weights across positions for exactly this reason.
#
# </details>
