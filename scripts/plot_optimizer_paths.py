"""Optimizer paths on an ill-conditioned quadratic.

``f(x, y) = 0.5 (x^2 + 50 y^2)`` is 50 times steeper along ``y`` than along
``x``: plain SGD zig-zags across the valley and crawls along it, momentum
and Nesterov build up speed along ``x``, and the adaptive methods (AdaGrad,
RMSProp, Adam) rescale each coordinate. Each optimizer is the package's
reference implementation (``keras_cv_course.training.optimizers``), run
for the same number of steps from the same start.

Writes ``docs/figures/optimizer_paths.png``, one panel per optimizer.

Usage:
    python scripts/plot_optimizer_paths.py [--out docs/figures] [--steps 60]
"""

import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from keras_cv_course.training import optimizers  # noqa: E402

CURVATURE = np.array([1.0, 50.0], dtype="float32")
START = np.array([-4.5, 1.5], dtype="float32")
SETTINGS = {  # name: (constructor, learning rate)
    "SGD": (optimizers.SGD, 0.038),
    "SGD + momentum": (optimizers.SGDMomentum, 0.01),
    "Nesterov": (optimizers.Nesterov, 0.01),
    "AdaGrad": (optimizers.AdaGrad, 1.0),
    "RMSProp": (optimizers.RMSProp, 0.1),
    "Adam": (optimizers.Adam, 0.3),
}


def loss(points):
    return 0.5 * np.sum(CURVATURE * points**2, axis=-1)


def path(optimizer, steps):
    w = keras.Variable(START.copy())
    points = [START.copy()]
    for _ in range(steps):
        gradient = CURVATURE * keras.ops.convert_to_numpy(w)
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(gradient), w)])
        points.append(keras.ops.convert_to_numpy(w).copy())
    return np.stack(points)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs/figures"))
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    grid_x, grid_y = np.meshgrid(np.linspace(-5, 5, 200), np.linspace(-2, 2, 120))
    surface = loss(np.stack([grid_x, grid_y], axis=-1))
    fig, axes = plt.subplots(2, 3, figsize=(15, 7.5))
    for ax, (name, (constructor, lr)) in zip(axes.ravel(), SETTINGS.items(), strict=True):
        points = path(constructor(learning_rate=lr), args.steps)
        ax.contour(grid_x, grid_y, surface, levels=np.geomspace(0.01, 120, 14), cmap="Greys",
                   linewidths=0.7)
        ax.plot(points[:, 0], points[:, 1], ".-", color="tab:red", markersize=3, linewidth=1)
        ax.plot(*START, "ko", label="start")
        ax.plot(0, 0, "g*", markersize=12, label="minimum")
        ax.set_title(f"{name} (lr {lr}), final loss {loss(points[-1]):.2g}")
        ax.set_xlabel("x (flat direction)")
        ax.set_ylabel("y (steep direction)")
        ax.set_xlim(-5, 5)
        ax.set_ylim(-2, 2)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"{args.steps} steps on f(x, y) = 0.5 (x^2 + 50 y^2)")
    fig.tight_layout()
    out = os.path.join(args.out, "optimizer_paths.png")
    fig.savefig(out, dpi=110)
    print("wrote", out)


if __name__ == "__main__":
    main()
