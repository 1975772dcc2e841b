"""Every learning-rate schedule of the course, with and without linear warm-up.

Each panel shows one schedule from ``keras_cv_course.training.schedules``
over a 1,000-step run (solid), and the same schedule behind a 100-step
linear warm-up (dashed). The inverse-square-root panel uses the
Transformer form (warm-up read at the global step, ``shift=False``).

Writes ``docs/figures/lr_schedules.png``.

Usage:
    python scripts/plot_schedules.py [--out docs/figures]
"""

import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from keras_cv_course.training import schedules  # noqa: E402

STEPS, WARMUP, PEAK = 1000, 100, 0.1
CASES = {
    "step decay (x0.1 every 300)": schedules.StepDecay(PEAK, step_size=300),
    "cosine decay": schedules.CosineDecay(PEAK, decay_steps=STEPS),
    "linear decay": schedules.LinearDecay(PEAK, decay_steps=STEPS),
    "inverse square root": schedules.InverseSqrtDecay(PEAK, timescale=WARMUP),
    "one-cycle (linear)": schedules.OneCycle(PEAK, total_steps=STEPS),
    "one-cycle (cosine)": schedules.OneCycle(PEAK, total_steps=STEPS, anneal="cos"),
}


def values(schedule, steps):
    return np.array([float(keras.ops.convert_to_numpy(schedule(s))) for s in steps])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs/figures"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    steps = np.arange(0, STEPS + 1, 5)
    fig, axes = plt.subplots(2, 3, figsize=(14, 7))
    for ax, (name, schedule) in zip(axes.ravel(), CASES.items(), strict=True):
        ax.plot(steps, values(schedule, steps), label="schedule")
        if not name.startswith("one-cycle"):  # one-cycle has its own warm-up phase
            shift = not name.startswith("inverse")
            warm = schedules.LinearWarmup(schedule, warmup_steps=WARMUP, shift=shift)
            ax.plot(steps, values(warm, steps), "--", label=f"with {WARMUP}-step warm-up")
        ax.set_title(name)
        ax.set_xlabel("training step")
        ax.set_ylabel("learning rate")
        ax.set_ylim(0, PEAK * 1.08)
        ax.legend()
    fig.suptitle("Learning-rate schedules (keras_cv_course.training.schedules)")
    fig.tight_layout()
    out = os.path.join(args.out, "lr_schedules.png")
    fig.savefig(out, dpi=110)
    print("wrote", out)


if __name__ == "__main__":
    main()
