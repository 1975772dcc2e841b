"""Training curves of one small CNN on the digits with each reference optimizer.

The same CNN (two 3x3 convolutions, global average pooling, a softmax
layer; about 5k parameters), the same initial weights and the same batches
are trained on scikit-learn's 8x8 handwritten digits (1,437 train, 360
validation images, pixels scaled to [0, 1]) with each optimizer of
``keras_cv_course.training.optimizers``, using a common default learning
rate per family.

Writes ``docs/figures/optimizer_training.png``: one panel per optimizer
(training and validation loss, validation accuracy), and a last panel
comparing the validation accuracies. Runs in about a minute on 2 CPU cores.

Usage:
    python scripts/plot_optimizer_training.py [--out docs/figures] [--epochs 15]
"""

import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from keras_cv_course.training import optimizers  # noqa: E402

LEARNING_RATES = {
    "sgd": 0.1,
    "sgd_momentum": 0.02,
    "nesterov": 0.02,
    "adagrad": 0.05,
    "rmsprop": 0.002,
    "adam": 0.003,
    "adamw": 0.003,
}


def digits():
    data = load_digits()
    images = (data.images / 16.0).astype("float32")[..., None]  # (1797, 8, 8, 1)
    return (images[:1437], data.target[:1437]), (images[1437:], data.target[1437:])


def small_cnn():
    inputs = keras.Input((8, 8, 1), name="images")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs/figures"))
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    (x_train, y_train), (x_val, y_val) = digits()
    keras.utils.set_random_seed(0)
    initial_weights = small_cnn().get_weights()

    histories = {}
    for name, lr in LEARNING_RATES.items():
        keras.utils.set_random_seed(0)  # same batches for every optimizer
        model = small_cnn()
        model.set_weights(initial_weights)
        model.compile(optimizer=optimizers.get(name, learning_rate=lr),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        history = model.fit(x_train, y_train, validation_data=(x_val, y_val), batch_size=32,
                            epochs=args.epochs, verbose=0)
        histories[name] = history.history
        print(f"{name:13s} lr {lr:<6} val accuracy {history.history['val_accuracy'][-1]:.3f}")

    fig, axes = plt.subplots(2, 4, figsize=(18, 8))
    epochs = np.arange(1, args.epochs + 1)
    for ax, (name, history) in zip(axes.ravel(), histories.items(), strict=False):
        ax.plot(epochs, history["loss"], label="training loss")
        ax.plot(epochs, history["val_loss"], label="validation loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("cross-entropy loss")
        ax.set_ylim(0, 2.5)
        accuracy_axis = ax.twinx()
        accuracy_axis.plot(epochs, history["val_accuracy"], "g:", label="validation accuracy")
        accuracy_axis.set_ylabel("validation accuracy")
        accuracy_axis.set_ylim(0, 1)
        ax.set_title(f"{name} (lr {LEARNING_RATES[name]}): "
                     f"val acc {history['val_accuracy'][-1]:.3f}")
        lines = ax.get_lines() + accuracy_axis.get_lines()
        ax.legend(lines, [line.get_label() for line in lines], loc="center right", fontsize=8)
    comparison = axes.ravel()[-1]
    for name, history in histories.items():
        comparison.plot(epochs, history["val_accuracy"], label=name)
    comparison.set_title("validation accuracy, all optimizers")
    comparison.set_xlabel("epoch")
    comparison.set_ylabel("validation accuracy")
    comparison.set_ylim(0, 1)
    comparison.legend(fontsize=8)
    fig.suptitle("A small CNN on the 8x8 digits, trained with each reference optimizer")
    fig.tight_layout()
    out = os.path.join(args.out, "optimizer_training.png")
    fig.savefig(out, dpi=100)
    print("wrote", out)


if __name__ == "__main__":
    main()
