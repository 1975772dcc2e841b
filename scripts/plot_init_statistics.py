"""Activation statistics through a deep network under three weight initialisations.

The experiment of the course (after Glorot & Bengio, AISTATS 2010, and He et
al., arXiv:1502.01852): push 4096-dimensional Gaussian inputs through 7
fully connected layers of 4096 units with tanh or ReLU, initialised

* too small: ``w ~ N(0, 0.01^2)``: activations collapse to zero;
* Xavier: ``Var(w) = 2 / (fan_in + fan_out)``: right for tanh, shrinks ReLU;
* Kaiming: ``Var(w) = 2 / fan_in``: right for ReLU.

Writes ``docs/figures/init_statistics.png`` (one histogram panel per
activation and initialisation) and ``docs/figures/init_std_per_layer.png``.

Usage:
    python scripts/plot_init_statistics.py [--out docs/figures] [--batch 128]
"""

import argparse
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from keras_cv_course.layers.initializers import KaimingInit, XavierInit  # noqa: E402

WIDTH, DEPTH = 4096, 7
ACTIVATIONS = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0.0)}
INITS = {
    "too small (std 0.01)": lambda shape: 0.01**2,
    "Xavier / Glorot": XavierInit().variance,
    "Kaiming / He": KaimingInit().variance,
}


def layer_activations(activation, variance, batch, rng):
    """The activations of each of the ``DEPTH`` layers for one Gaussian batch."""
    x = rng.standard_normal((batch, WIDTH), dtype=np.float32)
    outputs = []
    for _ in range(DEPTH):
        std = np.sqrt(variance((WIDTH, WIDTH)))
        w = rng.standard_normal((WIDTH, WIDTH), dtype=np.float32) * np.float32(std)
        x = ACTIVATIONS[activation](x @ w)
        outputs.append(x)
    return outputs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs/figures"))
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(0)

    fig, axes = plt.subplots(len(ACTIVATIONS), len(INITS), figsize=(15, 8), squeeze=False)
    fig_std, axes_std = plt.subplots(1, len(ACTIVATIONS), figsize=(11, 4), squeeze=False)
    colors = plt.cm.viridis(np.linspace(0, 0.9, DEPTH))
    for row, activation in enumerate(ACTIVATIONS):
        for col, (init_name, variance) in enumerate(INITS.items()):
            outputs = layer_activations(activation, variance, args.batch, rng)
            ax = axes[row, col]
            stds = [float(h.std()) for h in outputs]
            limit = max(1e-6, max(float(np.abs(h).max()) for h in outputs))
            bins = np.linspace(-limit if activation == "tanh" else 0.0, limit, 60)
            for depth, h in enumerate(outputs, start=1):
                ax.hist(h.ravel(), bins=bins, histtype="step", color=colors[depth - 1],
                        density=True, label=f"layer {depth}: std {stds[depth - 1]:.2g}")
            ax.set_yscale("log")
            ax.set_title(f"{activation}, {init_name}")
            ax.set_xlabel("activation value")
            ax.set_ylabel("density (log)")
            ax.legend(fontsize=7)
            axes_std[0, row].semilogy(range(1, DEPTH + 1), np.maximum(stds, 1e-30), "o-",
                                      label=init_name)
        axes_std[0, row].set_title(f"{activation}: activation std per layer")
        axes_std[0, row].set_xlabel("layer")
        axes_std[0, row].set_ylabel("std of activations (log)")
        axes_std[0, row].legend()
    fig.suptitle(f"Activations of a {DEPTH}-layer, {WIDTH}-wide network under three inits")
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "init_statistics.png"), dpi=110)
    fig_std.tight_layout()
    fig_std.savefig(os.path.join(args.out, "init_std_per_layer.png"), dpi=110)
    print("wrote", os.path.join(args.out, "init_statistics.png"))


if __name__ == "__main__":
    main()
