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
# # Training neural networks
# Lecture: Training neural networks
#
# Tasks: classification
#
# **The question.** A network that is correctly wired can still train badly: slowly, not at
# all, or to a model that memorises its training set. What do the standard remedies of the
# lecture (normalisation layers, data augmentation, regularisation and learning-rate
# schedules with warm-up) each do to the numbers flowing through a network, and how much
# does each one matter on a real, if small, problem?
#
# We look at every tool on a concrete tensor first. Then we run a controlled comparison on
# the 8x8 handwritten digits of scikit-learn for the two tools that matter most in a short
# run, normalisation and the learning-rate schedule: the same network, data, seed and
# budget, changing one thing at a time.

# %%
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from keras_cv_course import layers  # noqa: E402
from keras_cv_course.data import augment, load_dataset  # noqa: E402
from keras_cv_course.training import schedules, train  # noqa: E402

FAST = os.environ.get("KCC_FAST") == "1"  # shrinks the budget only; same code path
OUT = os.environ.get("KCC_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="kcc-tutorial-")
os.makedirs(OUT, exist_ok=True)
RUNS = tempfile.mkdtemp(prefix="06-training-", dir=OUT)  # fresh run folders every time
EPOCHS = 2 if FAST else 8
print(f"FAST={FAST}, epochs per run={EPOCHS}, writing into {RUNS}")

# %% [markdown]
# ## 1. Normalisation layers: who shares a mean and a variance?
#
# All four layers of `keras_cv_course.layers` compute
# `y = gamma * (x - mean) / sqrt(var + eps) + beta`; they differ only in *which entries*
# share the mean and variance. For a batch of feature maps `(N, H, W, C)`:
#
# | layer | statistics over | paper |
# |---|---|---|
# | `BatchNorm` | N, H, W (one pair per channel) | Ioffe and Szegedy, ICML 2015 |
# | `LayerNorm` | C (one pair per example and position) | Ba, Kiros and Hinton, 2016 |
# | `GroupNorm` | H, W and the C/G channels of a group | Wu and He, ECCV 2018 |
# | `InstanceNorm` | H, W (one pair per example and channel) | Ulyanov et al., 2016 |
#
# We feed one batch whose channels and examples have very different offsets and scales,
# and measure what is left of them.

# %%
rng = np.random.default_rng(0)
N, H, W, C = 8, 6, 6, 8
channel_offset = rng.uniform(-5, 5, C)
example_offset = rng.uniform(-3, 3, (N, 1, 1, 1))
example_scale = rng.uniform(0.5, 4.0, (N, 1, 1, 1))
noise = rng.normal(0, 1, (N, H, W, C))
x = (example_scale * noise + channel_offset + example_offset).astype("float32")

norms = {
    "BatchNorm": (layers.BatchNorm(), (0, 1, 2)),
    "LayerNorm": (layers.LayerNorm(), (3,)),
    "GroupNorm(4)": (layers.GroupNorm(groups=4), None),
    "InstanceNorm": (layers.InstanceNorm(), (1, 2)),
}
outputs = {}
print(f"{'layer':<14}{'max |mean|':>12}{'max |std - 1|':>15}   over its own statistics axes")
for name, (layer, axes) in norms.items():
    y = ops.convert_to_numpy(layer(x, training=True))
    outputs[name] = y
    if axes is None:  # GroupNorm: 4 groups of 2 channels
        grouped = y.reshape(N, H, W, 4, C // 4)
        mean, std = grouped.mean(axis=(1, 2, 4)), grouped.std(axis=(1, 2, 4))
    else:
        mean, std = y.mean(axis=axes), y.std(axis=axes)
    print(f"{name:<14}{np.abs(mean).max():>12.1e}{np.abs(std - 1).max():>15.1e}")
    assert np.abs(mean).max() < 1e-4 and np.abs(std - 1).max() < 0.05

# %% [markdown]
# Each layer removes exactly the offsets and scales it averages over, and no others. The
# plot shows the mean of each (example, channel) feature map, before and after. The input
# has an offset per channel (columns) and one per example (rows). BatchNorm removes the
# channel offsets but keeps each example's; LayerNorm, which normalises each position's
# vector of channels, does the opposite; GroupNorm centres each group of two channels of
# each example; InstanceNorm centres every cell.

# %%
fig, axes = plt.subplots(1, 5, figsize=(13, 2.8), sharey=True)
panels = {"input": x, **outputs}
for ax, (name, y) in zip(axes, panels.items()):
    cell_means = y.mean(axis=(1, 2))  # (N, C)
    limit = 5 if name == "input" else 1.5
    ax.imshow(cell_means, cmap="coolwarm", vmin=-limit, vmax=limit)
    ax.set_title(name, fontsize=10)
    ax.set_xlabel("channel")
axes[0].set_ylabel("example")
plt.tight_layout()
plt.show()

# %% [markdown]
# Only BatchNorm depends on the *other* examples of the batch, so only BatchNorm behaves
# differently at test time: there it uses running averages of the training statistics,
# `moving = momentum * moving + (1 - momentum) * batch_statistic`. Right after
# initialisation those averages are still 0 and 1, and a model in inference mode computes
# something else than it did in training. That is one reason why short runs need a smaller
# `momentum` (the digits tests of this package use 0.9 for the MobileNets).

# %%
bn = layers.BatchNorm(momentum=0.9)
train_mode = ops.convert_to_numpy(bn(x, training=True))
gaps = []
for _ in range(60):
    gaps.append(float(np.abs(ops.convert_to_numpy(bn(x, training=False)) - train_mode).max()))
    bn(x, training=True)  # each training call updates the running averages
print(f"max |inference - training| output after 1 update: {gaps[0]:.2f}, "
      f"after 60: {gaps[-1]:.4f}")
assert gaps[0] > 1.0 and gaps[-1] < 0.05

# %% [markdown]
# ## 2. Data augmentation: more data for free
#
# Augmentation trains on transformed copies of each image that keep its label.
# `keras_cv_course.data.augment` has three batch policies:
#
# * `standard`: zero-pad, random crop, horizontal flip and colour jitter, the CIFAR recipe of
#   He et al. (CVPR 2016);
# * `mixup`: convex combinations `lam x_i + (1 - lam) x_j` of two images *and of their
#   one-hot labels* (Zhang et al., ICLR 2018);
# * `cutmix`: a box from another image pasted in, labels mixed by area (Yun et al., ICCV
#   2019).
#
# The `Cutout` layer (DeVries and Taylor, 2017) blanks a square instead. We apply each one
# to the same eight images of the embedded `shapes` data.

# %%
shapes = load_dataset("shapes", task="classification", num_examples=64)
images, labels = (array[:8] for array in shapes.arrays["train"])
names = shapes.class_names
views = {"original": (images, keras.utils.to_categorical(labels, 3))}
for policy in ("standard", "mixup", "cutmix"):
    # alpha=1 draws the mixing weight uniformly; mixup's default 0.2 mostly draws weights
    # close to 0 or 1, which would make the mixing hard to see on eight images.
    options = {} if policy == "standard" else {"alpha": 1.0}
    function = augment.get_policy(policy, num_classes=3, seed=1, **options)
    augmented, targets = function(images, labels)
    targets = ops.convert_to_numpy(targets)
    if targets.ndim == 1:  # the standard policy keeps integer labels
        assert np.array_equal(targets, labels)
        targets = keras.utils.to_categorical(targets, 3)
    views[policy] = (ops.convert_to_numpy(augmented), targets)
views["Cutout(12)"] = (ops.convert_to_numpy(
    layers.Cutout(size=12, seed=1)(images, training=True)), views["original"][1])
for policy in ("mixup", "cutmix"):
    assert np.allclose(views[policy][1].sum(axis=1), 1.0)  # still a distribution over classes

fig, axes = plt.subplots(len(views), 8, figsize=(11, 7.5))
for row, (policy, (batch, targets)) in enumerate(views.items()):
    for col in range(8):
        ax = axes[row, col]
        ax.imshow(np.clip(batch[col], 0, 1))
        top = np.argsort(targets[col])[::-1][:2]
        text = " + ".join(f"{targets[col][k]:.2f} {names[k][:3]}" for k in top
                          if targets[col][k] > 0.005)
        ax.set_title(text, fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[row, 0].set_ylabel(policy)
plt.tight_layout()
plt.show()

# %% [markdown]
# Two things to notice. Mixup and CutMix change the *labels*: the network is asked to say
# "0.7 circle, 0.3 square", so training uses categorical cross-entropy on soft targets
# (`train(augment="mixup")` switches the loss for you). And an augmentation must keep the
# label true: a horizontal flip is harmless for shapes, but for digits it turns some into
# other symbols, which is one reason we do not flip digits below.

# %% [markdown]
# ## 3. Regularisation: noise in training, its expectation at test time
#
# Dropout (Srivastava et al., JMLR 2014), DropConnect (Wan et al., ICML 2013) and stochastic
# depth (`DropPath`, Huang et al., ECCV 2016) inject random masks while training and are
# scaled so that the *expected* output equals the deterministic output used at test time.
# We check that for `DropConnect`, which drops individual weights: average many training
# outputs and compare with the inference output.

# %%
drop_connect = layers.DropConnect(4, rate=0.5, seed=0)
inputs = np.repeat(rng.normal(0, 1, (1, 16)).astype("float32"), 20_000, axis=0)
inference = ops.convert_to_numpy(drop_connect(inputs[:1], training=False))[0]
noisy = ops.convert_to_numpy(drop_connect(inputs, training=True))  # one mask per row
print("inference output          ", inference.round(3))
print("mean of 20,000 noisy ones ", noisy.mean(axis=0).round(3))
print("std of one noisy output   ", noisy.std(axis=0).round(3))
assert np.allclose(noisy.mean(axis=0), inference, atol=0.05)

# %% [markdown]
# A single noisy output is far from the mean: the network cannot rely on any one weight,
# which is the regularising effect. Weight decay is the other classical regulariser;
# `keras_cv_course.training.optimizers` has AdamW, whose decay is *decoupled* from the
# adaptive step (Loshchilov and Hutter, ICLR 2019).

# %% [markdown]
# ## 4. Learning-rate schedules and warm-up
#
# A schedule maps the step counter to a learning rate. The common ones decay it so that
# late steps fine-tune instead of bouncing around a minimum; a *warm-up* (Goyal et al.,
# arXiv:1706.02677) starts near zero and ramps up linearly, because the first updates of a
# freshly initialised network have large, badly scaled gradients (and Adam's second-moment
# estimates are still poor). `train(schedule=..., warmup_epochs=...)` builds the same
# objects as `schedules.get`.

# %%
STEPS, WARMUP, PEAK = 1000, 100, 0.1
steps = np.arange(STEPS)
curves = {
    "step (x0.1 every 300)": schedules.get("step", initial_learning_rate=PEAK, step_size=300),
    "cosine": schedules.get("cosine", initial_learning_rate=PEAK, decay_steps=STEPS),
    "warm-up + cosine": schedules.get("cosine", warmup_steps=WARMUP, initial_learning_rate=PEAK,
                                      decay_steps=STEPS - WARMUP),
    "one-cycle": schedules.get("one_cycle", max_learning_rate=PEAK, total_steps=STEPS),
}
values = {name: ops.convert_to_numpy(schedule(steps)) for name, schedule in curves.items()}
warm = values["warm-up + cosine"]
print(f"warm-up + cosine: step 0 {warm[0]:.4f}, step {WARMUP} {warm[WARMUP]:.4f}, "
      f"last step {warm[-1]:.5f}")
assert warm[0] == 0.0 and abs(warm[WARMUP] - PEAK) < 1e-6 and warm[-1] < 1e-3

plt.figure(figsize=(7, 3))
for name, curve in values.items():
    plt.plot(steps, curve, label=name)
plt.xlabel("step")
plt.ylabel("learning rate")
plt.legend()
plt.show()

# %% [markdown]
# ## 5. A controlled comparison on digits
#
# Now the same network trained three times, each recipe changing one thing from the one
# before. The network is the package's VGG-11 (Simonyan and Zisserman, ICLR 2015), made
# narrow (block widths 8 to 32) for a CPU; `vgg11_bn` is the same network with BatchNorm
# after every convolution. The digits are upsampled to 32x32, the smallest input VGG's five
# poolings allow. Everything else is fixed: Adam at `3e-3`, batch size 32, the seed (so the
# initial weights and the order of the batches are the same), and the number of epochs.

# %%
bundle = load_dataset("digits", image_size=(32, 32))
NETWORK = dict(block_widths=(8, 16, 16, 32, 32), fc_units=32, dropout_rate=0.1)
RECIPES = {
    "VGG-11, constant lr": dict(model="vgg11"),
    "+ BatchNorm": dict(model="vgg11_bn"),
    "+ BatchNorm, warm-up + cosine": dict(model="vgg11_bn", schedule="cosine", warmup_epochs=1),
}
runs = {}
for index, (label, recipe) in enumerate(RECIPES.items()):
    options = {key: value for key, value in recipe.items() if key != "model"}
    runs[label] = train(recipe["model"], bundle, os.path.join(RUNS, f"recipe{index}"),
                        epochs=EPOCHS, batch_size=32, learning_rate=3e-3, seed=0, verbose=0,
                        **options, **NETWORK)
    validation = np.round(runs[label].history["val_accuracy"], 2)
    print(f"{label:31s} test accuracy {runs[label].metrics['accuracy']:.3f}; "
          f"validation per epoch {validation}")

# %%
plt.figure(figsize=(7, 3.2))
for label, run in runs.items():
    plt.plot(np.arange(1, EPOCHS + 1), run.history["val_accuracy"], marker="o", label=label)
plt.xlabel("epoch")
plt.ylabel("validation accuracy")
plt.legend()
plt.show()

# %% [markdown]
# Two effects, each from one change:
#
# * **BatchNorm speeds up the start.** After one epoch the normalised network is far ahead:
#   every layer sees inputs with a sane scale from the first step, so Adam's steps are
#   useful everywhere at once. (Given enough epochs the plain network catches up here:
#   with Adam, 8 layers are still trainable without normalisation.)
# * **Warm-up and decay settle the end.** At a constant `3e-3` the last epochs bounce
#   between good and worse minima; the cosine decay shrinks the steps so the weights settle,
#   and it ends at (or within two points of) the best test accuracy of the three: 0.931
#   against 0.894 at the fast budget when measured, but a busy machine changes the order of
#   the sums in training and, with it, the last few test images. The warm-up costs a little in the
#   first epoch (the rate is still small) and protects the first, largest updates.

# %%
plain, normalised, scheduled = runs.values()
assert normalised.history["val_accuracy"][0] > plain.history["val_accuracy"][0] + 0.1
best_other = max(plain.metrics["accuracy"], normalised.metrics["accuracy"])
assert scheduled.metrics["accuracy"] >= best_other - 0.02
print(f"best recipe: {scheduled.metrics['accuracy']:.3f} vs {best_other:.3f}")

# %% [markdown]
# ## Exercise
#
# Multiply the learning rate by ten (`learning_rate=3e-2`) and train the first two recipes
# again, the plain VGG-11 and the one with BatchNorm, for the same 8 epochs. Before running,
# predict the test accuracy of each.
#
# **Answer:** the plain network does not train at all: it stays at chance, about 10%, from
# the first epoch on (the first large steps leave it predicting one class for every image).
# The BatchNorm network still trains, to about 90%: normalisation keeps each layer's inputs
# at a fixed scale whatever the weights do, which is why BatchNorm allows larger learning
# rates (Ioffe and Szegedy's own argument).
