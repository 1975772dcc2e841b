"""How much of a training step waits for input, for each embedded dataset.

For each dataset a small registered classifier (default: ``resnet18`` in its
tiny config, built for the data with ``training.build_for_data``) trains
with ``model.fit`` on two feeds of the same batches:

* **pipeline**: the input pipeline ``train`` uses, ``data.training_stream(split,
  64, epochs, augment=<the task's "standard" policy>)``, which shuffles,
  batches and augments while the model trains (tf.data runs it ahead, on
  other threads, with a parallel ``map`` and ``prefetch``);
* **memory**: one epoch of that pipeline's batches, cached in memory
  beforehand (``dataset.cache()``, iterated once), so feeding costs nothing
  but reading them back.

Timed rounds alternate between the two feeds and the best round of each is
kept (interference from other processes only ever slows a round down). The
wait fraction is ``(t_pipeline - t_memory) / t_pipeline``, clipped at 0: the
share of training time spent waiting for the pipeline. Near 0 means the
pipeline keeps up; the model, not the input, is the bottleneck.

Usage:
    python scripts/benchmark_input.py
    python scripts/benchmark_input.py --datasets digits --epochs 1 --rounds 1 --json out.json
"""

import argparse
import json
import os
import pathlib
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from keras_cv_course import applications  # noqa: E402
from keras_cv_course.data import load_dataset, training_stream  # noqa: E402
from keras_cv_course.tasks import get_task  # noqa: E402
from keras_cv_course.training.train import build_for_data  # noqa: E402

# Embedded datasets and the image size each is read at (digits as in the quickstart).
IMAGE_SIZES = {"digits": (16, 16), "shapes": (32, 32)}


def feeds(bundle, args):
    """The two feeds: the real training pipeline, and one epoch of it cached in memory."""
    task = get_task(bundle.task)
    augmentation = task.augmentation(args.augment, bundle, seed=0)
    live, steps = training_stream(bundle.train, args.batch_size, args.epochs,
                                  augment=augmentation, seed=0)
    one_epoch, _ = training_stream(bundle.train, args.batch_size, 1, augment=augmentation,
                                   seed=0)
    memory = one_epoch.cache()
    sum(1 for _ in memory)  # fills the cache
    return dict(pipeline=live, memory=memory.repeat(args.epochs)), steps, augmentation


def build_model(bundle, args, augmentation):
    info = applications.get_info(args.model)
    model = build_for_data(info, bundle, config=args.config)
    model.compile(optimizer="adam", loss=get_task(bundle.task).loss(augmentation))
    return model


def time_fit(model, dataset, epochs, steps):
    start = time.perf_counter()
    model.fit(dataset, epochs=epochs, steps_per_epoch=steps, verbose=0, shuffle=False)
    return time.perf_counter() - start


def wait_fraction(t_pipeline, t_memory):
    """Share of the pipeline-fed time spent waiting for input, clipped at 0."""
    return max(0.0, (t_pipeline - t_memory) / t_pipeline)


def measure(name, args):
    """Best-of-rounds fit times of both feeds on one dataset, and the wait fraction."""
    keras.utils.set_random_seed(0)
    bundle = load_dataset(name, "classification", image_size=IMAGE_SIZES.get(name))
    datasets, steps, augmentation = feeds(bundle, args)
    model = build_model(bundle, args, augmentation)
    for dataset in datasets.values():
        time_fit(model, dataset, 1, steps)  # tracing, and the first pass of each feed
    rounds = {key: [] for key in datasets}
    for _ in range(args.rounds):
        for key, dataset in datasets.items():
            rounds[key].append(time_fit(model, dataset, args.epochs, steps))
    best = {key: min(times) for key, times in rounds.items()}
    keras.backend.clear_session()
    return dict(image_shape=list(bundle.image_shape), steps_per_epoch=steps,
                epochs=args.epochs, pipeline_s=best["pipeline"], memory_s=best["memory"],
                rounds=rounds, wait_fraction=wait_fraction(best["pipeline"], best["memory"]))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(IMAGE_SIZES),
                        help="comma-separated embedded datasets")
    parser.add_argument("--model", default="resnet18", help="a registered classifier")
    parser.add_argument("--config", default="tiny", choices=("tiny", "full"))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--augment", default="standard",
                        help="the classification task's policy: none, standard, mixup, cutmix")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed rounds")
    parser.add_argument("--json", default=None, help="also write the results here")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
          f"backend {keras.backend.backend()}, keras {keras.__version__}")
    print(f"model {args.model} ({args.config}), batch {args.batch_size}, augment {args.augment}, "
          f"best of {args.rounds} rounds of {args.epochs} epochs")
    results = {}
    for name in [n.strip() for n in args.datasets.split(",") if n.strip()]:
        results[name] = r = measure(name, args)
        steps = r["steps_per_epoch"] * r["epochs"]
        print(f"{name:8s} {tuple(r['image_shape'])}: pipeline {r['pipeline_s']:.3f} s, "
              f"memory {r['memory_s']:.3f} s for {steps} steps "
              f"({1000 * r['pipeline_s'] / steps:.1f} / {1000 * r['memory_s'] / steps:.1f} "
              f"ms a step): wait fraction {r['wait_fraction']:.3f}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(
            dict(args=vars(args), backend=keras.backend.backend(), results=results), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
