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
# # Optimization: from SGD to AdamW
#
# Lecture: Optimization
#
# Tasks: classification
#
# **The question.** Backpropagation gives us the gradient; the optimizer decides what
# step to take with it. Why does plain stochastic gradient descent struggle when the
# loss is steep in one direction and flat in another, and what do momentum,
# per-coordinate adaptive steps and learning-rate schedules buy us?
#
# Every optimizer here is the package's reference implementation
# (`keras_cv_course/training/optimizers.py`), written from its paper as a
# `keras.optimizers.Optimizer`: SGD; momentum (Polyak 1964; Sutskever et al., ICML
# 2013); Nesterov's look-ahead (Nesterov 1983); RMSProp (Tieleman and Hinton, 2012);
# Adam (Kingma and Ba, ICLR 2015, arXiv:1412.6980); AdamW (Loshchilov and Hutter, ICLR
# 2019, arXiv:1711.05101). The schedules are in `training/schedules.py`.

# %%
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from keras_cv_course import applications  # noqa: E402
from keras_cv_course.data import load_dataset  # noqa: E402
from keras_cv_course.training import optimizers, schedules  # noqa: E402

FAST = os.environ.get("KCC_FAST") == "1"  # only shrinks budgets; the code path is the same
OUT = os.environ.get("KCC_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="kcc-tutorial-")
# (this tutorial trains in memory and writes no files into OUT)
EPOCHS = 6 if FAST else 15

# %% [markdown]
# ## An ill-conditioned valley
#
# Our test loss is the quadratic $f(x, y) = \frac{1}{2}(x^2 + 50\,y^2)$, with its
# minimum at the origin. It is 50 times more curved along $y$ than along $x$ (the
# *condition number* of its Hessian is 50), like the loss surface of a real network
# near a minimum, where some directions are far steeper than others.
#
# Gradient descent, $w \leftarrow w - \eta \nabla f(w)$, multiplies $y$ by
# $(1 - 50\eta)$ each step and $x$ by $(1 - \eta)$. It is stable only if
# $|1 - 50\eta| < 1$, that is $\eta < 2/50 = 0.04$; but then $x$ shrinks by at most 4%
# per step. The steep direction caps the learning rate, and the flat direction crawls.

# %%
CURVATURE = np.array([1.0, 50.0], dtype="float32")
START = np.array([-4.5, 1.5], dtype="float32")
STEPS = 60


def quadratic(points):
    return 0.5 * np.sum(CURVATURE * np.asarray(points) ** 2, axis=-1)


def descend(optimizer, steps=STEPS):
    """Runs an optimizer on the quadratic; returns the (steps + 1, 2) path."""
    w = keras.Variable(START.copy())
    points = [START.copy()]
    for _ in range(steps):
        gradient = CURVATURE * keras.ops.convert_to_numpy(w)  # the exact gradient
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(gradient), w)])
        points.append(keras.ops.convert_to_numpy(w).copy())
    return np.stack(points)


for lr in (0.038, 0.041):
    final = quadratic(descend(optimizers.SGD(learning_rate=lr))[-1])
    print(f"SGD, learning rate {lr}: loss after {STEPS} steps {final:.3g}")
assert quadratic(descend(optimizers.SGD(learning_rate=0.041))[-1]) > quadratic(START)
assert quadratic(descend(optimizers.SGD(learning_rate=0.038))[-1]) < quadratic(START)

# %% [markdown]
# Just above $\eta = 0.04$ the steep direction oscillates with growing amplitude and
# the loss ends higher than it started; just below, SGD converges but slowly. Now the
# cures, each run for the same 60 steps from the same start:
#
# * **Momentum** keeps a velocity $v \leftarrow \mu v - \eta g$, $w \leftarrow w + v$.
#   Along $x$ the gradients agree from step to step and the velocity builds up (up to
#   $1/(1-\mu) = 10$ times the step); along $y$ they alternate in sign and cancel.
# * **Nesterov** takes the gradient at the look-ahead point $w + \mu v$, which damps
#   the overshoot.
# * **RMSProp** divides each coordinate's step by a running root-mean-square of its
#   gradients, so steep and flat directions take steps of similar size.
# * **Adam** combines the two ideas: momentum on the gradient (first moment), RMSProp's
#   scaling (second moment), and a bias correction for the zero-initialised averages.
#   **AdamW** adds a weight decay outside the adaptive step, which matters in training
#   (below), not on this loss.

# %%
SETTINGS = {  # name: (optimizer, learning rate)
    "SGD": (optimizers.SGD, 0.038),
    "SGD + momentum": (optimizers.SGDMomentum, 0.01),
    "Nesterov": (optimizers.Nesterov, 0.01),
    "RMSProp": (optimizers.RMSProp, 0.1),
    "Adam": (optimizers.Adam, 0.3),
    "AdamW": (optimizers.AdamW, 0.3),
}
paths = {name: descend(make(learning_rate=lr)) for name, (make, lr) in SETTINGS.items()}

grid_x, grid_y = np.meshgrid(np.linspace(-5, 5, 200), np.linspace(-2, 2, 120))
surface = quadratic(np.stack([grid_x, grid_y], axis=-1))
fig, axes = plt.subplots(2, 3, figsize=(14, 7))
for ax, (name, path) in zip(axes.ravel(), paths.items()):
    ax.contour(grid_x, grid_y, surface, levels=np.geomspace(0.01, 120, 14), cmap="Greys",
               linewidths=0.7)
    ax.plot(path[:, 0], path[:, 1], ".-", color="tab:red", markersize=3, linewidth=1)
    ax.plot(0, 0, "g*", markersize=12)
    ax.set_title(f"{name} (lr {SETTINGS[name][1]}): final loss {quadratic(path[-1]):.2g}")
    ax.set_xlim(-5, 5)
    ax.set_ylim(-2, 2)
plt.suptitle(f"{STEPS} steps on f(x, y) = 0.5 (x^2 + 50 y^2), from (-4.5, 1.5)")
plt.tight_layout()
plt.show()

fig, ax = plt.subplots(figsize=(7, 4))
for name, path in paths.items():
    ax.semilogy(quadratic(path), label=name)
ax.set_xlabel("step")
ax.set_ylabel("loss")
ax.legend()
plt.show()


def steps_to_reach(path, radius=0.3):
    """The first step at which the iterate is within ``radius`` of the minimum."""
    close = np.flatnonzero(np.linalg.norm(path, axis=1) < radius)
    return int(close[0]) if close.size else None


final_losses = {name: float(quadratic(path[-1])) for name, path in paths.items()}
arrivals = {name: steps_to_reach(path) for name, path in paths.items()}
for name in paths:
    print(f"{name:15s} final loss {final_losses[name]:9.3g}   first within 0.3 of the "
          f"minimum at step {arrivals[name]}")

# %% [markdown]
# SGD's path zig-zags across the valley and, after 60 steps, is still crawling along
# $x$: it never comes within 0.3 of the minimum. Momentum, at a *smaller* learning
# rate, gets there in a fraction of the steps, because the velocity does the
# travelling; but the same velocity overshoots, and it ends up oscillating around the
# minimum. Nesterov's look-ahead sees the overshoot coming and damps it: the smallest
# final loss of all. The adaptive methods head almost diagonally for the minimum,
# because they rescale the steep coordinate. RMSProp's steps are about the learning
# rate in each coordinate whatever the gradient's size, so it walks at a steady pace,
# arrives late and then settles; Adam's momentum (its first moment) makes it arrive
# early, overshoot and circle in, as heavy-ball momentum does.
#
# Lesson: no single number (final loss, speed of arrival) ranks optimizers; the path
# shows what each one does with the same gradients.

# %%
assert arrivals["SGD"] is None
assert all(arrivals[name] is not None for name in ("SGD + momentum", "Nesterov", "RMSProp"))
for name in ("SGD + momentum", "Nesterov", "Adam"):
    assert arrivals[name] < STEPS / 2, name
assert final_losses["Nesterov"] < final_losses["SGD"] / 100
assert final_losses["RMSProp"] < final_losses["SGD"] / 10

# %% [markdown]
# ## The same optimizers on a network
#
# Now a real loss: the package's two-layer network `mlp` (64 hidden ReLU units) on the
# 8x8 digits. Every optimizer starts from the same initial weights and sees the same
# batches, with a learning rate typical of its family.

# %%
bundle = load_dataset("digits")
x_train, y_train = bundle.arrays["train"]
x_val, y_val = bundle.arrays["val"]


def make_model():
    return applications.build("mlp", input_shape=(8, 8, 1), hidden_units=64, classes=10)


keras.utils.set_random_seed(0)
initial_weights = make_model().get_weights()


def fit(optimizer, epochs=EPOCHS):
    keras.utils.set_random_seed(0)  # the same batches for every optimizer
    model = make_model()
    model.set_weights(initial_weights)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x_train, y_train, validation_data=(x_val, y_val), batch_size=32,
                        epochs=epochs, verbose=0)
    return model, history.history


SETTINGS = {  # optimizer: its arguments, a learning rate typical of its family
    "sgd": dict(learning_rate=0.1),
    "sgd_momentum": dict(learning_rate=0.1, momentum=0.9),
    "nesterov": dict(learning_rate=0.1, momentum=0.9),
    "rmsprop": dict(learning_rate=0.002),
    "adam": dict(learning_rate=0.003),
    "adamw": dict(learning_rate=0.003, weight_decay=1.0),  # a strong decay, to see it below
}
histories, models = {}, {}
for name, arguments in SETTINGS.items():
    models[name], histories[name] = fit(optimizers.get(name, **arguments))
    print(f"{name:13s} {arguments}: training loss {histories[name]['loss'][-1]:.3f}, "
          f"validation accuracy {histories[name]['val_accuracy'][-1]:.3f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for name, history in histories.items():
    epochs = np.arange(1, len(history["loss"]) + 1)
    axes[0].semilogy(epochs, history["loss"], label=name)
    axes[1].plot(epochs, history["val_accuracy"], label=name)
axes[0].set_ylabel("training loss")
axes[1].set_ylabel("validation accuracy")
for ax in axes:
    ax.set_xlabel("epoch")
    ax.legend()
plt.show()

# %% [markdown]
# On this small, well-scaled problem every optimizer gets there; the differences are
# in the first epochs. Momentum and the adaptive methods pull ahead of plain SGD early,
# which is why Adam is the usual first choice for a new model, and why SGD with
# momentum, tuned, is still used for the final runs of many vision papers.

# %%
for name, history in histories.items():
    assert history["val_accuracy"][-1] > 0.9, name
for name in ("sgd_momentum", "adam"):
    assert histories[name]["loss"][0] < histories["sgd"]["loss"][0], name

# %% [markdown]
# ## AdamW: weight decay that is not rescaled
#
# Adding $\frac{\lambda}{2}|w|^2$ to the loss (L2 regularisation) puts $\lambda w$ into
# the gradient, and Adam then divides it by $\sqrt{\hat v}$ like every other gradient:
# weights with large gradients are barely decayed. AdamW applies the decay *after* the
# adaptive step, $w \leftarrow w - \eta(\hat m/(\sqrt{\hat v} + \epsilon) + \lambda w)$,
# so every weight shrinks at the same rate. The AdamW run above used a strong decay,
# $\lambda = 1$: its weights stay markedly smaller than Adam's, at a similar accuracy.

# %%
def weight_norm(model):
    return float(np.sqrt(sum(np.sum(w**2) for w in model.get_weights())))


for name in ("adam", "adamw"):
    print(f"{name:6s} weight norm {weight_norm(models[name]):6.2f}, "
          f"validation accuracy {histories[name]['val_accuracy'][-1]:.3f}")
assert weight_norm(models["adamw"]) < 0.85 * weight_norm(models["adam"])
assert histories["adamw"]["val_accuracy"][-1] > histories["adam"]["val_accuracy"][-1] - 0.03

# %% [markdown]
# ## Learning-rate schedules
#
# A large learning rate makes fast progress but leaves the weights bouncing around the
# minimum (the gradient noise of small batches keeps kicking them); a small one settles
# but crawls. Schedules start large and decay. Each one in `training/schedules.py` is a
# `LearningRateSchedule`: a function from the step counter to the rate.
#
# * step decay: divide by 10 at fixed points (He et al., ResNet, CVPR 2016);
# * cosine decay: half a cosine down to 0 (Loshchilov and Hutter, SGDR, ICLR 2017);
# * linear decay, and inverse square root (Vaswani et al., NeurIPS 2017);
# * linear warm-up in front of any of them (Goyal et al., arXiv:1706.02677), which keeps
#   the first steps of a large-batch run from blowing up;
# * one-cycle: up, then down (Smith and Topin, arXiv:1708.07120).

# %%
TOTAL, PEAK = 1000, 0.1
CASES = {
    "step (x0.1 every 300)": schedules.StepDecay(PEAK, step_size=300),
    "cosine": schedules.CosineDecay(PEAK, decay_steps=TOTAL),
    "linear": schedules.LinearDecay(PEAK, decay_steps=TOTAL),
    "inverse sqrt": schedules.InverseSqrtDecay(PEAK, timescale=100),
    "warm-up + cosine": schedules.LinearWarmup(schedules.CosineDecay(PEAK, decay_steps=900),
                                               warmup_steps=100),
    "one-cycle": schedules.OneCycle(PEAK, total_steps=TOTAL),
}


def rates(schedule, steps):
    return np.array([float(keras.ops.convert_to_numpy(schedule(s))) for s in steps])


steps = np.arange(0, TOTAL + 1, 10)
fig, ax = plt.subplots(figsize=(8, 4))
for name, schedule in CASES.items():
    ax.plot(steps, rates(schedule, steps), label=name)
ax.set_xlabel("training step")
ax.set_ylabel("learning rate")
ax.legend()
plt.show()

cosine = CASES["cosine"]
assert np.isclose(rates(cosine, [500])[0], PEAK / 2)  # half-way: half the rate
assert rates(CASES["warm-up + cosine"], [0])[0] == 0.0  # warm-up starts at 0
assert np.isclose(rates(CASES["warm-up + cosine"], [100])[0], PEAK)  # and reaches the peak
assert np.isclose(rates(CASES["step (x0.1 every 300)"], [650])[0], PEAK / 100)

# %% [markdown]
# Does decaying help? Train the network with SGD + momentum at a deliberately large
# rate, 0.3 with $\mu = 0.9$: once constant, once with cosine decay from 0.3 down to 0
# over the same number of steps. The constant run keeps bouncing around (its loss
# curve stays noisy and high); near the end the cosine run takes tiny steps, the
# bouncing stops, and its training loss drops several times lower.

# %%
steps_per_epoch = -(-len(x_train) // 32)  # fit keeps the last, partial batch
LARGE = 0.3
_, constant = fit(optimizers.SGDMomentum(learning_rate=LARGE, momentum=0.9))
decay = schedules.CosineDecay(LARGE, decay_steps=EPOCHS * steps_per_epoch)
_, cosine_history = fit(optimizers.SGDMomentum(learning_rate=decay, momentum=0.9))

fig, ax = plt.subplots(figsize=(7, 4))
ax.semilogy(constant["loss"], label=f"constant {LARGE}")
ax.semilogy(cosine_history["loss"], label=f"cosine from {LARGE} to 0")
ax.set_xlabel("epoch")
ax.set_ylabel("training loss")
ax.legend()
plt.show()
print(f"final training loss: constant {constant['loss'][-1]:.4f}, "
      f"cosine {cosine_history['loss'][-1]:.4f}")
print(f"validation accuracy: constant {constant['val_accuracy'][-1]:.3f}, "
      f"cosine {cosine_history['val_accuracy'][-1]:.3f}")
assert cosine_history["loss"][-1] < constant["loss"][-1] / 3

# %% [markdown]
# ## Exercise
#
# In the quadratic experiment, give SGD + momentum the learning rate that plain SGD
# used, 0.038, instead of 0.01 (keep $\mu = 0.9$). Predict the final loss after 60
# steps before running: lower or higher than with 0.01?
#
# <details><summary>Answer</summary>
#
# Answer: higher. Momentum makes the effective step about $\eta/(1-\mu)$, ten times
# larger; along the steep $y$ direction that overshoots, and the iterate oscillates
# around the valley floor for many steps instead of settling. With momentum the
# stability limit is $\eta < 2(1 + \mu)/50 = 0.076$, so it still converges, just
# more slowly. A good learning rate depends on the optimizer.
#
# </details>
