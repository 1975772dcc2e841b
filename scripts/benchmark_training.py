"""Training throughput of our classifiers beside keras.applications' own.

Each of our models trains in the same process as its keras.applications twin,
with the same batch size, input size, precision, optimizer (SGD with
momentum), loss and synthetic data (random images and labels, converted to
backend tensors once, so no input pipeline is measured). Timed rounds
alternate between the two models, so that load from other processes affects
both alike, and the best round of each is reported: interference only ever
slows a round down, so the fastest is the least disturbed estimate (as in
``timeit``). The median is printed too. On a shared machine wall-clock
rounds still vary several-fold, so the script also reports images per
CPU-second of this process (``time.process_time``, all threads), which
other processes disturb much less: it measures the work each model costs.
Printed per pair: images/s of each, the ratio ours / keras (above 1.0 means
ours is faster), and what explains a difference: MACs, parameters, layer
count and biased convolutions.

Works under any Keras backend (``KERAS_BACKEND=jax`` on the GPU machine).

Usage:
    python scripts/benchmark_training.py --batch-size 8 --image-size 128 --steps 5
    python scripts/benchmark_training.py --precision mixed_bfloat16 --batch-size 256 \\
        --image-size 224 --steps 20 --models resnet50,mobilenet_v2,efficientnet_b0
"""

import argparse
import json
import os
import pathlib
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from keras_cv_course import applications  # noqa: E402

# Our registry name -> the keras.applications model with the same architecture.
# resnet50 is ResNet v1.5 (torchvision: stride in the 3x3), keras' ResNet50 is
# v1 (stride in the first 1x1, 6% fewer MACs); resnet50_v1 is the exact twin.
KERAS_TWINS = {
    "resnet50": "ResNet50",
    "resnet50_v1": "ResNet50",
    "mobilenet_v2": "MobileNetV2",
    "efficientnet_b0": "EfficientNetB0",
}
DEFAULT_MODELS = "resnet50,resnet50_v1,mobilenet_v2,efficientnet_b0"


def build_pair(name, image_size, classes):
    """Our model and its keras.applications twin, both random-initialised."""
    shape = (image_size, image_size, 3)
    ours = applications.build(name, input_shape=shape, classes=classes, weights=None)
    theirs = getattr(keras.applications, KERAS_TWINS[name])(
        weights=None, input_shape=shape, classes=classes
    )
    return ours, theirs


def describe(model):
    """Numbers that explain speed differences between two versions of a model."""
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)
             or type(layer).__name__ == "DepthwiseConv2D"]
    return dict(
        gmacs=applications.flops(model).gmacs,
        params=applications.parameter_count(model),
        layers=len(model.layers),
        convs=len(convs),
        biased_convs=sum(1 for layer in convs if layer.use_bias),
    )


def compile_for_training(model):
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
        loss="sparse_categorical_crossentropy",
    )


def time_steps(model, images, labels, steps):
    """Wall and process-CPU seconds of ``steps`` training steps."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        loss = model.train_on_batch(images, labels)
    float(np.asarray(loss))  # wait for the device
    return time.perf_counter() - wall, time.process_time() - cpu


def benchmark_pair(name, args, images, labels):
    ours, theirs = build_pair(name, args.image_size, args.classes)
    models = {"ours": ours, "keras": theirs}
    stats = {key: describe(model) for key, model in models.items()}
    for model in models.values():
        compile_for_training(model)
        time_steps(model, images, labels, args.warmup)  # tracing / compilation
    rounds = {key: [] for key in models}
    cpu_seconds = {key: 0.0 for key in models}
    for _ in range(args.rounds):
        for key, model in models.items():
            wall, cpu = time_steps(model, images, labels, args.steps)
            rounds[key].append(args.batch_size * args.steps / wall)
            cpu_seconds[key] += cpu
    for key in models:
        stats[key]["images_per_s"] = max(rounds[key])
        stats[key]["median_images_per_s"] = statistics.median(rounds[key])
        stats[key]["images_per_cpu_s"] = (
            args.batch_size * args.steps * args.rounds / cpu_seconds[key]
        )
        stats[key]["rounds"] = rounds[key]
    for suffix in ("images_per_s", "median_images_per_s", "images_per_cpu_s"):
        stats[f"ratio_{suffix}"] = stats["ours"][suffix] / stats["keras"][suffix]
    stats["ratio"] = stats["ratio_images_per_s"]
    stats["keras_model"] = KERAS_TWINS[name]
    del ours, theirs, models
    keras.backend.clear_session()
    return stats


def machine():
    devices = "cpu"
    try:
        import jax  # noqa: PLC0415

        if keras.backend.backend() == "jax":
            devices = ", ".join(str(d) for d in jax.devices())
    except ImportError:
        pass
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
            f"backend {keras.backend.backend()}, devices: {devices}, keras {keras.__version__}")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating timed rounds")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--precision", default="float32",
                        choices=("float32", "mixed_bfloat16", "mixed_float16"))
    parser.add_argument("--models", default=DEFAULT_MODELS,
                        help=f"comma-separated; known twins: {', '.join(KERAS_TWINS)}")
    parser.add_argument("--json", default=None, help="also write the results here")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    keras.mixed_precision.set_global_policy(args.precision)
    rng = np.random.default_rng(0)
    shape = (args.batch_size, args.image_size, args.image_size, 3)
    images = keras.ops.convert_to_tensor(rng.uniform(0, 255, shape).astype("float32"))
    labels = keras.ops.convert_to_tensor(rng.integers(0, args.classes, args.batch_size))
    print(f"machine: {machine()}")
    print(f"batch {args.batch_size}, image {args.image_size}, precision {args.precision}, "
          f"{args.rounds} rounds x {args.steps} steps after {args.warmup} warm-up steps")
    results = {}
    registered = set(applications.list_models())
    for name in [n.strip() for n in args.models.split(",") if n.strip()]:
        if name not in KERAS_TWINS:
            print(f"skip {name}: no keras.applications twin is known")
            continue
        if name not in registered:
            print(f"skip {name}: not registered yet")
            continue
        results[name] = stats = benchmark_pair(name, args, images, labels)
        print(f"{name:16s} ours {stats['ours']['images_per_s']:8.1f} img/s | "
              f"keras {stats['keras_model']} {stats['keras']['images_per_s']:8.1f} img/s | "
              f"ratio {stats['ratio']:.3f} (best rounds; medians "
              f"{stats['ratio_median_images_per_s']:.3f}; per CPU-second "
              f"{stats['ratio_images_per_cpu_s']:.3f})")
        for key in ("ours", "keras"):
            s = stats[key]
            print(f"    {key:5s} {s['images_per_cpu_s']:.2f} img/CPU-s, "
                  f"{s['gmacs']:.3f} GMACs, {s['params']:,} params, "
                  f"{s['layers']} layers, {s['convs']} convs ({s['biased_convs']} with bias), "
                  f"rounds {[round(r, 1) for r in s['rounds']]}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(
            dict(machine=machine(), args=vars(args), results=results), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
