"""Training throughput of our classifiers beside keras.applications' own.

Each of our models trains in the same process as its twin, with the same
batch size, input size, precision, optimizer (SGD with momentum), loss and
synthetic data (random images and labels, converted to backend tensors once,
so no input pipeline is measured). The twin of a CNN is its
keras.applications model; the twin of ``vit_base_16`` (keras.applications
has no ViT) is the plain Keras ViT-B/16 written below with
``keras.layers.MultiHeadAttention``. Timed rounds alternate between the two
models, so that load from other processes affects both alike, and the best
round of each is reported: interference only ever slows a round down, so the
fastest is the least disturbed estimate (as in ``timeit``). The median is
printed too. On a shared machine wall-clock rounds still vary several-fold,
so the script also reports images per CPU-second of this process
(``time.process_time``, all threads), which other processes disturb much
less: it measures the work each model costs.

Printed per pair: images/s of each, the ratio ours / keras (above 1.0 means
ours is faster), what explains a difference (MACs, parameters, layer count,
biased convolutions) and the model-FLOPs utilisation (MFU): training FLOPs
per image, taken as 3 x 2 x forward MACs (forward, plus a backward pass of
about twice its cost; 2 FLOPs per MAC), times images/s, divided by the
accelerator's peak (``--peak-tflops``, else the table ``PEAK_TFLOPS`` for a
recognised GPU; "n/a" on CPU).

Works under any Keras backend (``KERAS_BACKEND=jax`` on the GPU machine,
where TensorFlow is absent: set ``KCC_BLOCK_TENSORFLOW=1`` to check that
here).

Usage:
    python scripts/benchmark_training.py --batch-size 8 --image-size 128 --steps 5
    python scripts/benchmark_training.py --precision mixed_bfloat16 --batch-size 256 \\
        --image-size 224 --steps 20 --models resnet50,mobilenet_v2,efficientnet_b0 --vit
"""

import argparse
import gc
import importlib.abc
import json
import os
import pathlib
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class BlockTensorFlow(importlib.abc.MetaPathFinder):
    """Makes ``import tensorflow`` fail, as on the GPU machine."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError(f"{name} is blocked (KCC_BLOCK_TENSORFLOW=1)")
        return None


if os.environ.get("KCC_BLOCK_TENSORFLOW") == "1":
    sys.meta_path.insert(0, BlockTensorFlow())

import keras  # noqa: E402
import numpy as np  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from keras_cv_course import applications  # noqa: E402

PLAIN_VIT = "plain Keras ViT-B/16"
# Our registry name -> the model with the same architecture.
# resnet50 is ResNet v1.5 (torchvision: stride in the 3x3), keras' ResNet50 is
# v1 (stride in the first 1x1, 6% fewer MACs); resnet50_v1 is the exact twin.
KERAS_TWINS = {
    "resnet50": "ResNet50",
    "resnet50_v1": "ResNet50",
    "mobilenet_v2": "MobileNetV2",
    "efficientnet_b0": "EfficientNetB0",
    "vit_base_16": PLAIN_VIT,
}
DEFAULT_MODELS = "resnet50,resnet50_v1,mobilenet_v2,efficientnet_b0"
VIT_B16_PARAMS = 86_567_656  # torchvision vit_b_16 at 224x224, 1000 classes

# Dense (no sparsity) peak TFLOP/s by device name and compute type. Source:
# NVIDIA H100 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/h100/):
# H100 SXM FP32 67, BF16/FP16 Tensor Core 1,979 "with sparsity", so 989 dense;
# H100 NVL FP32 60, BF16 1,671 sparse (835 dense); H100 PCIe FP32 51, BF16
# 1,513 sparse (756 dense). NVIDIA H200 datasheet (nvidia.com/en-us/data-center/
# h200/): H200 SXM has the H100 SXM figures. Names are matched in this order
# against the device name (JAX reports an H100 SXM as "NVIDIA H100 80GB HBM3").
# "float32" is the non-tensor FP32 peak; XLA may run float32 matmuls on the
# TF32 tensor cores (H100 SXM: 989 sparse, about 495 dense), so a float32 MFU against 67 can
# pass 100%: give --peak-tflops 495 to compare with the TF32 peak instead.
PEAK_TFLOPS = (
    ("H100 PCIe", {"float32": 51.0, "16-bit": 756.0}),
    ("H100 NVL", {"float32": 60.0, "16-bit": 835.0}),
    ("H100", {"float32": 67.0, "16-bit": 989.0}),
    ("H200", {"float32": 67.0, "16-bit": 989.0}),
)


# -- the plain Keras ViT-B/16 ---------------------------------------------------------------

class ClassTokenAndPositions(keras.layers.Layer):
    """Prepends a learned class token and adds a learned position embedding."""

    def build(self, input_shape):
        tokens, width = input_shape[1] + 1, input_shape[2]
        self.token = self.add_weight(shape=(1, 1, width), initializer="zeros")
        self.positions = self.add_weight(
            shape=(1, tokens, width),
            initializer=keras.initializers.RandomNormal(stddev=0.02))

    def call(self, patches):
        batch, width = keras.ops.shape(patches)[0], patches.shape[2]
        token = keras.ops.broadcast_to(self.token, (batch, 1, width))
        return keras.ops.concatenate([token, patches], axis=1) + self.positions


def plain_vit_block(x, heads=12, mlp_width=3072):
    """Pre-norm Transformer block: x + attention(LN(x)), then x + MLP(LN(x))."""
    y = keras.layers.LayerNormalization(epsilon=1e-6)(x)
    y = keras.layers.MultiHeadAttention(heads, key_dim=x.shape[-1] // heads)(y, y)
    x = x + y
    y = keras.layers.LayerNormalization(epsilon=1e-6)(x)
    # GELU's tanh form (keras.ops.gelu's default), as in our vit_base_16.
    y = keras.layers.Dense(mlp_width, activation=keras.ops.gelu)(y)
    return x + keras.layers.Dense(x.shape[-1])(y)


def plain_vit_b16(input_shape, classes):
    """ViT-B/16 in plain Keras layers: 16x16 patches, width 768, 12 blocks."""
    images = keras.Input(input_shape)
    x = keras.layers.Conv2D(768, 16, strides=16)(images)  # one token per patch
    x = keras.layers.Reshape((-1, 768))(x)
    x = ClassTokenAndPositions()(x)
    for _ in range(12):
        x = plain_vit_block(x)
    x = keras.layers.LayerNormalization(epsilon=1e-6)(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x[:, 0])  # class token
    return keras.Model(images, outputs, name="plain_vit_b16")


# -- models and their figures ---------------------------------------------------------------

def build_twin(name, image_size, classes):
    """The twin of our model ``name``, random-initialised."""
    shape = (image_size, image_size, 3)
    if KERAS_TWINS[name] == PLAIN_VIT:
        return plain_vit_b16(shape, classes)
    return getattr(keras.applications, KERAS_TWINS[name])(
        weights=None, input_shape=shape, classes=classes)


def build_pair(name, image_size, classes):
    """Our model and its twin, both random-initialised."""
    shape = (image_size, image_size, 3)
    ours = applications.build(name, input_shape=shape, classes=classes, weights=None)
    return ours, build_twin(name, image_size, classes)


def forward_gmacs(model):
    """Forward MACs per image (billions), or ``None`` where ``flops`` fails."""
    try:
        return applications.flops(model).gmacs
    except Exception as error:  # noqa: BLE001 - report and fall back, never stop
        print(f"    flops failed on {model.name}: {error}")
        return None


def describe(model):
    """Numbers that explain speed differences between two versions of a model."""
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)
             or type(layer).__name__ == "DepthwiseConv2D"]
    return dict(
        gmacs=forward_gmacs(model),
        params=applications.parameter_count(model),
        layers=len(model.layers),
        convs=len(convs),
        biased_convs=sum(1 for layer in convs if layer.use_bias),
    )


def training_flops_per_image(gmacs):
    """Forward, plus a backward pass of twice its cost, at 2 FLOPs per MAC."""
    return 3 * 2 * gmacs * 1e9


def mfu(gmacs, images_per_s, peak_tflops):
    """Model-FLOPs utilisation, a fraction of the peak; ``None`` without a peak."""
    if not peak_tflops or gmacs is None:
        return None
    return training_flops_per_image(gmacs) * images_per_s / (peak_tflops * 1e12)


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


def time_models(models, args, images, labels):
    """Alternating timed rounds: ``{key: (images/s of each round, CPU seconds)}``."""
    batch = int(images.shape[0])
    for model in models.values():
        compile_for_training(model)
        time_steps(model, images, labels, args.warmup)  # tracing / compilation
    rounds = {key: [] for key in models}
    cpu_seconds = {key: 0.0 for key in models}
    for _ in range(args.rounds):
        for key, model in models.items():
            wall, cpu = time_steps(model, images, labels, args.steps)
            rounds[key].append(batch * args.steps / wall)
            cpu_seconds[key] += cpu
    return {key: (rounds[key], cpu_seconds[key]) for key in models}


def benchmark_pair(name, args, images, labels, peak_tflops):
    """Both models' figures and the ratios ours / twin, at ``images``' batch size."""
    ours, theirs = build_pair(name, args.image_size, args.classes)
    models = {"ours": ours, "keras": theirs}
    stats = {key: describe(model) for key, model in models.items()}
    if stats["keras"]["gmacs"] is None:  # same architecture: ours stands in
        stats["keras"]["gmacs"] = stats["ours"]["gmacs"]
        stats["keras"]["gmacs_from"] = "ours"
    batch = int(images.shape[0])
    for key, (rounds, cpu) in time_models(models, args, images, labels).items():
        stats[key]["images_per_s"] = max(rounds)
        stats[key]["median_images_per_s"] = statistics.median(rounds)
        stats[key]["images_per_cpu_s"] = batch * args.steps * args.rounds / cpu
        stats[key]["rounds"] = rounds
        stats[key]["mfu"] = mfu(stats[key]["gmacs"], max(rounds), peak_tflops)
    for suffix in ("images_per_s", "median_images_per_s", "images_per_cpu_s"):
        stats[f"ratio_{suffix}"] = stats["ours"][suffix] / stats["keras"][suffix]
    stats["ratio"] = stats["ratio_images_per_s"]
    stats["keras_model"] = KERAS_TWINS[name]
    stats["batch_size"] = batch
    return stats


def is_out_of_memory(error):
    text = str(error).lower()
    return "resource_exhausted" in text or "out of memory" in text or "oom" in text.split()


def free_memory():
    keras.backend.clear_session()
    gc.collect()


def benchmark_pair_fitting_memory(name, args, images, labels, peak_tflops):
    """``benchmark_pair``, retried at half the batch while the device runs out of memory."""
    while True:
        try:
            return benchmark_pair(name, args, images, labels, peak_tflops)
        except Exception as error:
            if not is_out_of_memory(error) or int(images.shape[0]) < 2:
                raise
            half = int(images.shape[0]) // 2
            print(f"{name}: out of memory at batch {int(images.shape[0])}; retrying at {half}")
            images, labels = images[:half], labels[:half]
        finally:
            free_memory()


def vit_parameter_check(args, stats):
    """Parameters of our vit_base_16 and the plain ViT-B/16, at 224x224, 1000 classes.

    ``stats`` are the benchmarked pair's figures, reused when it ran at that size.
    """
    if (args.image_size, args.classes) == (224, 1000):
        counts = dict(ours=stats["ours"]["params"], keras=stats["keras"]["params"])
    else:
        ours = applications.build("vit_base_16", input_shape=(224, 224, 3), classes=1000)
        counts = dict(ours=applications.parameter_count(ours),
                      keras=applications.parameter_count(plain_vit_b16((224, 224, 3), 1000)))
        free_memory()
    counts["reference"] = VIT_B16_PARAMS
    counts["equal"] = counts["ours"] == counts["keras"] == counts["reference"]
    return counts


# -- the machine ----------------------------------------------------------------------------

def accelerator_name():
    """The first GPU's name under the current backend, or ``None`` (CPU only)."""
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax  # noqa: PLC0415

            device = jax.devices()[0]
            return None if device.platform == "cpu" else device.device_kind
        if backend == "tensorflow":
            import tensorflow as tf  # noqa: PLC0415

            gpus = tf.config.list_physical_devices("GPU")
            return tf.config.experimental.get_device_details(gpus[0]).get(
                "device_name", "GPU") if gpus else None
        if backend == "torch":
            import torch  # noqa: PLC0415

            return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except (ImportError, RuntimeError):
        return None
    return None


def table_peak_tflops(device, precision):
    """The ``PEAK_TFLOPS`` entry for a device name and a precision, or ``None``."""
    compute = "float32" if precision == "float32" else "16-bit"
    for key, peaks in PEAK_TFLOPS:
        if device and key.lower() in device.lower():
            return peaks[compute]
    return None


def machine(device):
    devices = "cpu"
    if keras.backend.backend() == "jax":
        import jax  # noqa: PLC0415

        devices = ", ".join(str(d) for d in jax.devices())
    tensorflow = "loaded" if "tensorflow" in sys.modules else "not loaded"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
            f"accelerator {device or 'none'}, backend {keras.backend.backend()}, "
            f"devices: {devices}, keras {keras.__version__}, tensorflow {tensorflow}")


# -- printing and the command line ----------------------------------------------------------

def percent(fraction):
    return "n/a" if fraction is None else f"{100 * fraction:.1f}%"


def print_pair(name, stats):
    print(f"{name:16s} ours {stats['ours']['images_per_s']:8.1f} img/s | "
          f"{stats['keras_model']} {stats['keras']['images_per_s']:8.1f} img/s | "
          f"ratio {stats['ratio']:.3f} (best rounds, batch {stats['batch_size']}; medians "
          f"{stats['ratio_median_images_per_s']:.3f}; per CPU-second "
          f"{stats['ratio_images_per_cpu_s']:.3f}) | "
          f"MFU ours {percent(stats['ours']['mfu'])}, keras {percent(stats['keras']['mfu'])}")
    for key in ("ours", "keras"):
        s = stats[key]
        gmacs = "n/a" if s["gmacs"] is None else f"{s['gmacs']:.3f}"
        borrowed = " (MACs of ours: flops failed on this model)" if "gmacs_from" in s else ""
        print(f"    {key:5s} {s['images_per_cpu_s']:.2f} img/CPU-s, "
              f"{gmacs} GMACs{borrowed}, {s['params']:,} params, "
              f"{s['layers']} layers, {s['convs']} convs ({s['biased_convs']} with bias), "
              f"rounds {[round(r, 1) for r in s['rounds']]}")


def print_vit_check(counts):
    verdict = "equal" if counts["equal"] else "DIFFERENT"
    print(f"ViT-B/16 parameters at 224x224, 1000 classes: ours {counts['ours']:,}, "
          f"{PLAIN_VIT} {counts['keras']:,}, reference {counts['reference']:,}: {verdict}")


def model_names(args):
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    if args.vit and "vit_base_16" not in names:
        names.append("vit_base_16")
    return names


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
    parser.add_argument("--vit", action="store_true",
                        help=f"also vit_base_16 against the {PLAIN_VIT}")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="peak TFLOP/s for MFU (default: PEAK_TFLOPS for a known GPU)")
    parser.add_argument("--json", default=None, help="also write the results here")
    return parser.parse_args(argv)


def synthetic_batch(args):
    rng = np.random.default_rng(0)
    shape = (args.batch_size, args.image_size, args.image_size, 3)
    images = keras.ops.convert_to_tensor(rng.uniform(0, 255, shape).astype("float32"))
    labels = keras.ops.convert_to_tensor(rng.integers(0, args.classes, args.batch_size))
    return images, labels


def main(argv=None):
    args = parse_args(argv)
    keras.mixed_precision.set_global_policy(args.precision)
    device = accelerator_name()
    peak = args.peak_tflops or table_peak_tflops(device, args.precision)
    images, labels = synthetic_batch(args)
    print(f"machine: {machine(device)}")
    print(f"batch {args.batch_size}, image {args.image_size}, precision {args.precision}, "
          f"{args.rounds} rounds x {args.steps} steps after {args.warmup} warm-up steps, "
          f"MFU peak {f'{peak:g} TFLOP/s' if peak else 'n/a'}")
    results, vit_check = {}, None
    registered = set(applications.list_models())
    for name in model_names(args):
        if name not in KERAS_TWINS or name not in registered:
            print(f"skip {name}: " + ("no twin is known" if name not in KERAS_TWINS
                                      else "not registered"))
            continue
        results[name] = benchmark_pair_fitting_memory(name, args, images, labels, peak)
        print_pair(name, results[name])
        if name == "vit_base_16":
            vit_check = vit_parameter_check(args, results[name])
            print_vit_check(vit_check)
        sys.stdout.flush()
        if args.json:  # after every pair, so a run cut off by a time limit keeps its figures
            pathlib.Path(args.json).write_text(json.dumps(
                dict(machine=machine(device), accelerator=device, peak_tflops=peak,
                     args=vars(args), vit_parameters=vit_check, results=results),
                indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
