"""One mixed-precision, XLA-compiled training step for registered classifiers.

    python tests/drivers/precision_sweep.py [--all | --models a,b] [--precision P]

Runs on the backend ``KERAS_BACKEND`` names. By default it takes one model of
each family (the variants of a family share every layer and differ only in
widths and depths); ``--all`` takes every classifier, ``--models`` the ones
named. Per model it builds the tiny config under the precision policy, compiles
with ``jit_compile=True`` (JAX always compiles), trains one batch, and prints
``OK name loss output-dtype`` or ``FAIL name reason``. A model passes when
its loss is finite, its weights changed and its predictions are float32
(``common.PREDICTION_DTYPE``).
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_cv_course import applications  # noqa: E402


def classifiers(everyone):
    """Gradient-trained classifiers: all of them, or the first of each family."""
    names, families = [], set()
    for name in applications.list_models(task="classification"):
        info = applications.get_info(name)
        if info.training != "gradient" or (not everyone and info.family in families):
            continue
        families.add(info.family)
        names.append(name)
    return names


def one_step(name, precision):
    """Loss of one compiled training step, and the dtype of the model's outputs."""
    keras.mixed_precision.set_dtype_policy(precision)
    try:
        model = applications.build_tiny(name)
        shape = tuple(model.input_shape[1:])
        classes = model.output_shape[-1]
        model.compile(optimizer="adam", jit_compile=True,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        images = np.random.default_rng(0).random((4, *shape), dtype=np.float32)
        labels = np.arange(4) % classes
        before = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
        loss = float(model.train_on_batch(images, labels))
        changed = any(not np.array_equal(b, keras.ops.convert_to_numpy(w))
                      for b, w in zip(before, model.trainable_weights))
        return loss, changed, str(model.outputs[0].dtype)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
        keras.backend.clear_session()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--all", action="store_true")
    parser.add_argument("--models", help="comma-separated registry names")
    parser.add_argument("--precision", default="mixed_bfloat16")
    args = parser.parse_args()
    failures = 0
    for name in args.models.split(",") if args.models else classifiers(args.all):
        started = time.perf_counter()
        try:
            loss, changed, dtype = one_step(name, args.precision)
        except Exception as error:  # noqa: BLE001 - report every model, then fail
            print(f"FAIL {name} {type(error).__name__}: {' '.join(str(error).split())[:300]}")
            failures += 1
            continue
        ok = np.isfinite(loss) and changed and dtype == "float32"
        failures += not ok
        print(f"{'OK' if ok else 'FAIL'} {name} loss={loss:.4f} updated={changed} "
              f"outputs={dtype} {time.perf_counter() - started:.1f}s", flush=True)
    print(f"DONE {keras.backend.backend()} {args.precision} failures={failures}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
