"""Adversarial robustness of a clean and a PGD-trained digits classifier.

Trains the two-layer network on scikit-learn's 8x8 digits twice with
``training.train``: once cleanly, once with its PGD adversarial-training
option (``adversarial_epsilon``, the ``kcc train --adversarial-epsilon``
flag; Madry et al. 2018, arXiv:1706.06083). Then it measures the test accuracy of
both under FGSM (Goodfellow et al. 2015, arXiv:1412.6572) and PGD at
several L-infinity radii (pixels are in ``[0, 1]``) and prints a Markdown
table. ``--write docs/benchmarks.md`` puts the table in that file, between
the markers ``<!-- robustness:start -->`` and ``<!-- robustness:end -->``
(appended, with the markers, when they are absent).

Usage:
    python scripts/robustness_table.py
    python scripts/robustness_table.py --write docs/benchmarks.md
"""

import argparse
import datetime
import os
import pathlib
import platform
import sys
import tempfile
import textwrap
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from keras_cv_course.data import load_dataset  # noqa: E402
from keras_cv_course.training import train  # noqa: E402
from keras_cv_course.understanding import adversarial  # noqa: E402

START, END = "<!-- robustness:start -->", "<!-- robustness:end -->"
RECIPE = dict(epochs=20, batch_size=32, learning_rate=5e-3, seed=0, hidden_units=64)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilons", default="0,0.05,0.1,0.2")
    parser.add_argument("--train-epsilon", type=float, default=0.1,
                        help="L-infinity radius of the PGD training attack")
    parser.add_argument("--train-steps", type=int, default=5, help="PGD steps in training")
    parser.add_argument("--attack-steps", type=int, default=10, help="PGD steps in evaluation")
    parser.add_argument("--write", metavar="MARKDOWN", help="put the section into this file")
    return parser.parse_args(argv)


def trained_models(folder, args):
    """``{"clean": model, "PGD-trained": model}``, both from ``training.train``."""
    folder = pathlib.Path(folder)
    clean = train("mlp", "digits", str(folder / "clean"), verbose=0, **RECIPE)
    robust = train("mlp", "digits", str(folder / "robust"), verbose=0,
                   adversarial_epsilon=args.train_epsilon, adversarial_steps=args.train_steps,
                   **RECIPE)
    return {"clean": clean.model, "PGD-trained": robust.model}


def machine():
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
            f"load average {os.getloadavg()[0]:.1f}, backend {keras.backend.backend()}, "
            f"keras {keras.__version__}")


def description(args):
    return (f"Test accuracy (360 images) of the two-layer network (`mlp`, "
            f"{RECIPE['hidden_units']} hidden units) trained cleanly by `train` "
            f"({RECIPE['epochs']} epochs), and of the same recipe with `train`'s PGD "
            f"adversarial training (`--adversarial-epsilon {args.train_epsilon:g} "
            f"--adversarial-steps {args.train_steps}`: each batch's loss is half clean, half on "
            f"PGD examples made against the current weights), under FGSM "
            f"and under PGD ({args.attack_steps} steps of 2.5 ε / steps, random start). "
            f"Pixels are in [0, 1].")


def section(table, command, seconds, args):
    """The Markdown section, between its markers."""
    today = datetime.date.today().isoformat()
    return "\n".join([
        START,
        "## Adversarial robustness (digits)",
        "",
        textwrap.fill(description(args), 79),
        "",
        "```",
        f"{command}   # {seconds:.0f} s, {today}",
        "```",
        "",
        f"Machine: {machine()}.",
        "",
        table,
        END,
    ])


def write_section(path, text):
    """Replaces the text between the markers in ``path``, or appends it."""
    path = pathlib.Path(path)
    old = path.read_text() if path.exists() else ""
    if START in old and END in old:
        head, rest = old.split(START, 1)
        new = head + text + rest.split(END, 1)[1]
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + text + "\n"
    path.write_text(new)


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    bundle = load_dataset("digits")
    with tempfile.TemporaryDirectory() as folder:
        models = trained_models(folder, args)
    epsilons = [float(e) for e in args.epsilons.split(",")]
    rows = adversarial.robustness_table(models, *bundle.arrays["test"], epsilons,
                                        steps=args.attack_steps)
    table = adversarial.table_markdown(rows)
    command = "python scripts/robustness_table.py " + " ".join(sys.argv[1:] if argv is None
                                                                else argv)
    text = section(table, command.strip(), time.time() - started, args)
    print(text)
    if args.write:
        write_section(args.write, text)


if __name__ == "__main__":
    main()
