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
# # Neural networks and backpropagation
#
# Lecture: Neural networks and backpropagation
#
# Tasks: classification
#
# **The question.** A network is a long chain of simple functions with thousands of
# weights. How do we get the gradient of the loss with respect to *every* weight at
# the cost of about one extra forward pass, and how do we know that gradient is right?
#
# The answer is backpropagation (Rumelhart, Hinton and Williams, "Learning
# representations by back-propagating errors", Nature 1986): apply the chain rule
# module by module, backwards through the graph. The package writes it out in NumPy
# in `keras_cv_course/fundamentals/backprop.py`, one `*_forward` and one `*_backward`
# function per module, with a numeric gradient checker. At the end we train the same
# two-layer network as the registry's `mlp` with `model.fit`.

# %%
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_cv_course import applications  # noqa: E402
from keras_cv_course.data import load_dataset  # noqa: E402
from keras_cv_course.fundamentals import backprop as bp  # noqa: E402

FAST = os.environ.get("KCC_FAST") == "1"  # only shrinks budgets; the code path is the same
OUT = os.environ.get("KCC_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="kcc-tutorial-")
# (this tutorial trains in memory and writes no files into OUT)
NUMPY_STEPS = 600 if FAST else 2000
EPOCHS = 10 if FAST else 30
rng = np.random.default_rng(0)

# %% [markdown]
# ## Modules with a forward and a backward pass
#
# Each module computes its output and keeps a *cache* of what its backward pass will
# need. The backward pass receives the *upstream* gradient $\partial L/\partial
# \text{out}$ and returns the gradients with respect to its inputs and parameters.
# For a linear layer $\text{out} = xW + b$:
#
# $$\frac{\partial L}{\partial x} = \frac{\partial L}{\partial \text{out}} W^\top,\qquad
# \frac{\partial L}{\partial W} = x^\top \frac{\partial L}{\partial \text{out}},\qquad
# \frac{\partial L}{\partial b} = \sum_{\text{batch}}
# \frac{\partial L}{\partial \text{out}}.$$
#
# ReLU is a *gate*: the gradient passes where the input was positive and stops where
# it was not.

# %%
x = rng.normal(size=(4, 5))
w, b = rng.normal(size=(5, 3)), rng.normal(size=3)
out, cache = bp.linear_forward(x, w, b)
dout = rng.normal(size=out.shape)  # some upstream gradient
dx, dw, db = bp.linear_backward(dout, cache)
print("shapes: x", x.shape, "dx", dx.shape, "| W", w.shape, "dW", dw.shape, "| b", b.shape,
      "db", db.shape)

z = np.array([[-1.0, 0.5, 2.0]])
print("ReLU gate: upstream [1, 1, 1] at inputs", z.tolist(), "->",
      bp.relu_backward(np.ones_like(z), bp.relu_forward(z)[1]).tolist())

# %% [markdown]
# ## Checking a gradient numerically
#
# A backward pass is easy to get subtly wrong, so we check it against the definition
# of the derivative. `bp.numeric_gradient` perturbs each input by $\pm h$ and takes the
# centred difference $(f(x + h) - f(x - h)) / 2h$, whose error is $O(h^2)$. To check a
# module for an upstream gradient `dout`, differentiate the scalar
# $\sum \text{out} \odot \text{dout}$, whose gradient is exactly what the backward pass
# returns. `bp.check_gradient` reports the largest *relative* error; in float64 a
# correct backward pass gives about $10^{-8}$ or less.

# %%
linear_error = bp.check_gradient(lambda: np.sum(bp.linear_forward(x, w, b)[0] * dout),
                                 [x, w, b], [dx, dw, db])
print(f"linear layer: relative error {linear_error:.1e}")
assert linear_error < 1e-7

# %% [markdown]
# Every module of the package passes the same check: convolution (via `im2col`), max
# pooling, batch normalization (Ioffe and Szegedy, arXiv:1502.03167), whose input
# gradient has three terms because the batch mean and variance depend on every input,
# and the softmax cross-entropy loss.

# %%
images = rng.normal(size=(2, 6, 6, 3))
kernel, bias = rng.normal(size=(3, 3, 3, 4)), rng.normal(size=4)
conv_out, conv_cache = bp.conv2d_forward(images, kernel, bias, stride=2, padding="same")
conv_dout = rng.normal(size=conv_out.shape)
errors = {"conv2d (3x3, stride 2, same)": bp.check_gradient(
    lambda: np.sum(bp.conv2d_forward(images, kernel, bias, 2, "same")[0] * conv_dout),
    [images, kernel, bias], bp.conv2d_backward(conv_dout, conv_cache))}

pool_in = rng.normal(size=(2, 4, 4, 3))
pool_out, pool_cache = bp.maxpool_forward(pool_in)
pool_dout = rng.normal(size=pool_out.shape)
errors["max pool 2x2"] = bp.check_gradient(
    lambda: np.sum(bp.maxpool_forward(pool_in)[0] * pool_dout),
    [pool_in], [bp.maxpool_backward(pool_dout, pool_cache)])

bn_in, gamma, beta = rng.normal(size=(8, 5)), rng.normal(size=5), rng.normal(size=5)
bn_out, bn_cache = bp.batchnorm_forward(bn_in, gamma, beta)
bn_dout = rng.normal(size=bn_out.shape)
errors["batch norm"] = bp.check_gradient(
    lambda: np.sum(bp.batchnorm_forward(bn_in, gamma, beta)[0] * bn_dout),
    [bn_in, gamma, beta], bp.batchnorm_backward(bn_dout, bn_cache))

logits, targets = rng.normal(size=(6, 10)), rng.integers(0, 10, size=6)
errors["softmax cross-entropy"] = bp.check_gradient(
    lambda: bp.softmax_cross_entropy(logits, targets)[0],
    [logits], [bp.softmax_cross_entropy(logits, targets)[1]])

for name, error in errors.items():
    print(f"{name:30s} relative error {error:.1e}")
    assert error < 1e-6, name

# %% [markdown]
# ## What a bug looks like
#
# Forget the ReLU gate (pass the upstream gradient straight through) and the checker
# reports a relative error of order 1, not $10^{-8}$. The check is cheap insurance:
# run it on a few numbers whenever you write a backward pass.
#
# It also has to run in float64. In float32, the rounding error of $f$ (about
# $10^{-7}$ relative) divided by $2h$ swamps the derivative, and even a correct
# backward pass looks wrong.

# %%
relu_in = rng.normal(size=(4, 6))
relu_dout = rng.normal(size=relu_in.shape)
correct = bp.relu_backward(relu_dout, bp.relu_forward(relu_in)[1])
buggy = relu_dout  # the forgotten gate


def relu_loss():
    return np.sum(bp.relu_forward(relu_in)[0] * relu_dout)


correct_error = bp.check_gradient(relu_loss, [relu_in], [correct])
buggy_error = bp.check_gradient(relu_loss, [relu_in], [buggy])

x32, w32, b32 = x.astype("float32"), w.astype("float32"), b.astype("float32")
dout32 = dout.astype("float32")
float32_error = bp.check_gradient(
    lambda: np.sum(bp.linear_forward(x32, w32, b32)[0] * dout32), [x32, w32, b32],
    bp.linear_backward(dout32, bp.linear_forward(x32, w32, b32)[1]))
print(f"ReLU, correct backward:  {correct_error:.1e}")
print(f"ReLU, forgotten gate:    {buggy_error:.1e}")
print(f"linear, correct, float32: {float32_error:.1e}")
assert correct_error < 1e-8 and buggy_error > 0.1
assert float32_error > 1e-4

# %% [markdown]
# ## A two-layer network, by hand
#
# Chain the modules: `linear -> relu -> linear -> softmax cross-entropy`. The forward
# pass runs them in order and keeps every cache; the backward pass runs the backward
# functions in *reverse* order, each feeding its input gradient to the module before.
# That is all backpropagation is.

# %%
def init_params(inputs=64, hidden=64, classes=10, seed=0):
    """He (Kaiming) initialisation for the ReLU layer, small weights for the scores."""
    generator = np.random.default_rng(seed)
    return {"w1": generator.normal(0, np.sqrt(2 / inputs), (inputs, hidden)),
            "b1": np.zeros(hidden),
            "w2": generator.normal(0, np.sqrt(1 / hidden), (hidden, classes)),
            "b2": np.zeros(classes)}


def loss_and_grads(params, images, labels):
    hidden_in, cache1 = bp.linear_forward(images, params["w1"], params["b1"])
    hidden, relu_cache = bp.relu_forward(hidden_in)
    scores, cache2 = bp.linear_forward(hidden, params["w2"], params["b2"])
    loss, dscores = bp.softmax_cross_entropy(scores, labels)
    # Backward: the same modules in reverse order.
    dhidden, dw2, db2 = bp.linear_backward(dscores, cache2)
    dhidden_in = bp.relu_backward(dhidden, relu_cache)
    _, dw1, db1 = bp.linear_backward(dhidden_in, cache1)
    return loss, {"w1": dw1, "b1": db1, "w2": dw2, "b2": db2}


def predict(params, images):
    hidden = bp.relu_forward(bp.linear_forward(images, params["w1"], params["b1"])[0])[0]
    return bp.linear_forward(hidden, params["w2"], params["b2"])[0].argmax(axis=1)


# %% [markdown]
# First, the gradient check of the whole network on a small batch (with a narrow
# hidden layer, to keep the numeric gradient quick).

# %%
bundle = load_dataset("digits")
x_train, y_train = (a.astype("float64") for a in bundle.arrays["train"])
x_test, y_test = bundle.arrays["test"]
small = init_params(hidden=8, seed=1)
batch, batch_labels = x_train[:5].reshape(5, -1), y_train[:5].astype(int)
_, analytic = loss_and_grads(small, batch, batch_labels)
network_error = bp.check_gradient(lambda: loss_and_grads(small, batch, batch_labels)[0],
                                  list(small.values()), [analytic[k] for k in small])
print(f"two-layer network, all four parameters: relative error {network_error:.1e}")
assert network_error < 1e-6

# %% [markdown]
# Then train it with plain minibatch SGD, $w \leftarrow w - \eta\,\partial L/\partial w$,
# on the 8x8 digits. Everything here is NumPy.

# %%
params = init_params()
flat_train = x_train.reshape(len(x_train), -1)
labels_train = y_train.astype(int)
losses = []
for _ in range(NUMPY_STEPS):
    indices = rng.integers(0, len(flat_train), size=32)
    loss, grads = loss_and_grads(params, flat_train[indices], labels_train[indices])
    for key in params:
        params[key] -= 0.1 * grads[key]
    losses.append(loss)
numpy_accuracy = np.mean(predict(params, x_test.reshape(len(x_test), -1)) == y_test)
print(f"NumPy network after {NUMPY_STEPS} SGD steps: test accuracy {numpy_accuracy:.3f}")
assert numpy_accuracy > 0.9

plt.figure(figsize=(7, 3.5))
plt.plot(np.convolve(losses, np.ones(20) / 20, mode="valid"))
plt.xlabel("SGD step")
plt.ylabel("training loss (moving average of 20)")
plt.title("The two-layer network trained with our own backward pass")
plt.show()

# %% [markdown]
# ## The same network in Keras
#
# The registry's `mlp` is this network: `Flatten`, a `Dense` ReLU layer, a `Dense`
# layer of class scores. Built with `classifier_activation=None` it returns the raw
# scores, so we can load our NumPy weights into it (a Keras dense kernel is
# `(in, out)`, the same layout) and ask TensorFlow's automatic differentiation for the
# gradients. They are the ones our backward pass computed.

# %%
keras_net = applications.build("mlp", input_shape=(8, 8, 1), hidden_units=8, classes=10,
                               classifier_activation=None)
keras_net.set_weights([small["w1"], small["b1"], small["w2"], small["b2"]])
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
images = tf.constant(x_train[:5], dtype="float32")
with tf.GradientTape() as tape:
    keras_loss = loss_fn(batch_labels, keras_net(images))
keras_grads = tape.gradient(keras_loss, keras_net.trainable_weights)
largest = max(np.max(np.abs(g.numpy() - analytic[k]))
              for g, k in zip(keras_grads, ("w1", "b1", "w2", "b2")))
print(f"largest difference between tf.GradientTape and our backward pass: {largest:.1e}")
assert largest < 1e-5

# %% [markdown]
# From here on Keras does the backward pass for us. Train the package's `mlp` (now
# with 64 hidden units and its softmax output) with `model.fit`: the same model, data
# and optimizer as our NumPy loop, with the bookkeeping (batching, shuffling, metrics,
# validation) done by the framework.

# %%
keras.utils.set_random_seed(0)
mlp = applications.build("mlp", input_shape=(8, 8, 1), hidden_units=64, classes=10)
mlp.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1),
            loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = mlp.fit(*bundle.arrays["train"], validation_data=bundle.arrays["val"],
                  batch_size=32, epochs=EPOCHS, verbose=0)
test_loss, test_accuracy = mlp.evaluate(x_test, y_test, verbose=0)
print(f"mlp ({applications.parameter_count(mlp):,} parameters) after {EPOCHS} epochs: "
      f"test accuracy {test_accuracy:.3f}")
assert test_accuracy > 0.93

plt.figure(figsize=(7, 3.5))
plt.plot(history.history["accuracy"], label="training accuracy")
plt.plot(history.history["val_accuracy"], label="validation accuracy")
plt.xlabel("epoch")
plt.legend()
plt.show()

# %% [markdown]
# The hidden layer is what the linear classifier of lecture 2 lacked: 64 templates
# instead of 10, mixed non-linearly by the second layer. On these easy 8x8 digits a
# linear model is already at about 96%, so the gain is small. On real photographs it
# is not: on CIFAR-10, a linear classifier on pixels reaches about 40% and a two-layer
# network of this kind about 50% (the numbers of CS231n's assignments).

# %% [markdown]
# ## Exercise
#
# Break the loss's gradient on purpose: in `loss_and_grads`, multiply `dscores` by the
# batch size before the backward pass (as if `softmax_cross_entropy` had forgotten its
# division by `n`), and rerun the gradient check of the two-layer network (batch of 5).
# Predict the relative error the checker reports before running.
#
# <details><summary>Answer</summary>
#
# Answer: about 0.67. Every analytic gradient is now exactly 5 times the true one $g$,
# so the relative error is $|5g - g| / (|5g| + |g|) = 4/6$. A relative error that is
# the same for every parameter points at a missing scale factor, not at a wrong module.
#
# </details>
