"""The attention figure of a Show, Attend and Tell run, and every captioner's scores.

Reads run folders written by ``kcc train`` (the commands are in
``docs/benchmarks.md``, "Captioning (shapes)") and writes
``docs/figures/captioning_attention.png``: for a few held-out ``shapes``
images, the image, then one panel per generated word with the image lit
where the decoder attended when it wrote that word (Xu et al. 2015,
Figure 3). With ``--scores`` it also prints each run's held-out BLEU and
CIDEr-D (``kcc evaluate``'s numbers) as JSON.

Usage:
    python scripts/plot_captioning.py --attention RUN [--images 3]
        [--scores name=RUN ...] [--out docs/figures]
"""

import argparse
import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from keras_cv_course.evaluation import evaluate_run  # noqa: E402
from keras_cv_course.predict import open_pipeline  # noqa: E402
from keras_cv_course.runs import load_run  # noqa: E402
from keras_cv_course.sequence.captioning import attention_pictures  # noqa: E402
from keras_cv_course.tasks.base import to_rgb  # noqa: E402


def attention_figure(run_path, count, path):
    """Rows of held-out images: the image, then where each word looked."""
    run = load_run(run_path)
    images = run.bundle.arrays["test"][0]["images"][:count]
    outputs = open_pipeline(run.task, run.model)(images)
    rows = [attention_pictures(to_rgb(image), tokens, attention, run.bundle.class_names)
            for image, tokens, attention in zip(images, outputs["tokens"],
                                                outputs["attention"])]
    columns = 1 + max(len(row) for row in rows)
    figure, axes = plt.subplots(count, columns, figsize=(1.5 * columns, 1.7 * count),
                                squeeze=False)
    for axes_row, image, row in zip(axes, images, rows):
        panels = [("image", to_rgb(image)), *[(key.split("-", 1)[1], picture)
                                              for key, picture in row.items()]]
        for axis in axes_row:
            axis.axis("off")
        for axis, (word, picture) in zip(axes_row, panels):
            axis.imshow(picture.clip(0, 1), interpolation="nearest")
            axis.set_title(word, fontsize=9)
    figure.suptitle("Show, Attend and Tell on held-out shapes: where each word looked")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attention", required=True, help="a show_attend_tell run folder")
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--scores", nargs="*", default=[], metavar="NAME=RUN")
    parser.add_argument("--out", default=str(ROOT / "docs" / "figures"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    attention_figure(args.attention, args.images,
                     os.path.join(args.out, "captioning_attention.png"))
    scores = {}
    for item in args.scores:
        name, _, run = item.partition("=")
        scores[name] = evaluate_run(run)
    if scores:
        print(json.dumps(scores, indent=2))


if __name__ == "__main__":
    main()
