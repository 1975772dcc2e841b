"""Vanishing gradients on the copy task: a vanilla RNN against an LSTM.

For ``RNNCell`` and ``LSTMCell`` (32 units each, Keras' default
initialisers, seeded) on the copy task with sequences of ``T = 50`` steps,
plots ``log10 ||dL/dh_t||`` against the step ``t``, where ``L`` is the loss
at the last 10 steps (``keras_cv_course.sequence.copy_task`` defines it).
Solid lines: after 100 Adam steps of ``train_on_copy_task``; dashed: at
initialisation, where the LSTM's forget gates (about 0.73) still forget
faster than the orthogonal RNN. Prints each curve's ratio first/last.

Writes ``docs/figures/vanishing_gradients.png`` (700 x 450 pixels).

Usage:
    python scripts/plot_vanishing_gradients.py [--out PATH]
"""

import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from keras_cv_course.sequence.cells import LSTMCell, RNNCell  # noqa: E402
from keras_cv_course.sequence.copy_task import (  # noqa: E402
    copy_task_batch,
    seeded_cell,
    state_gradient_norms,
    train_on_copy_task,
)

LENGTH, UNITS, STEPS, SEED = 50, 32, 100, 0
CELLS = {"vanilla RNN": (RNNCell, "tab:red"), "LSTM": (LSTMCell, "tab:blue")}


def curves():
    """``{(cell name, "initial" | "trained"): norms}`` on one fixed evaluation batch."""
    inputs, targets = copy_task_batch(64, LENGTH, seed=SEED + 1)
    found = {}
    for name, (cell_class, _) in CELLS.items():
        cell = seeded_cell(cell_class, UNITS, seed=SEED)
        found[name, "initial"] = state_gradient_norms(cell, inputs, targets, seed=SEED)
        readout, loss = train_on_copy_task(cell, LENGTH, steps=STEPS, seed=SEED)
        print(f"{name}: mean training loss {loss:.3f}")
        found[name, "trained"] = state_gradient_norms(cell, inputs, targets, readout=readout)
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[1] / "docs/figures/vanishing_gradients.png"
    parser.add_argument("--out", default=str(default), help="the PNG to write")
    args = parser.parse_args()
    found = curves()
    steps = np.arange(1, LENGTH + 1)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (name, state), norms in found.items():
        color = CELLS[name][1]
        ratio = norms[0] / norms[-1]
        print(f"{name} ({state}): ||dL/dh_1|| / ||dL/dh_{LENGTH}|| = {ratio:.2e}")
        style = dict(linestyle="-", linewidth=2) if state == "trained" else dict(
            linestyle="--", linewidth=1.2, alpha=0.7)
        label = f"{name}, {'after ' + str(STEPS) + ' steps' if state == 'trained' else state}"
        ax.plot(steps, np.log10(norms), color=color, label=f"{label} (first/last {ratio:.0e})",
                **style)
    ax.axvspan(LENGTH - 9.5, LENGTH + 0.5, color="0.9", zorder=0, label="loss steps")
    ax.set_xlim(1, LENGTH)
    ax.set_xlabel("time step t")
    ax.set_ylabel("log10 ||dL / dh_t||")
    ax.set_title(f"Vanishing gradients on the copy task (T={LENGTH}, {UNITS} units)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
