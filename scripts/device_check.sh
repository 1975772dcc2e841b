#!/usr/bin/env bash
# The GPU check (DESIGN.md section 8): training throughput of our models beside
# keras.applications' and a plain Keras ViT-B/16, in one run, under JAX.
#
#   bash scripts/device_check.sh           # on the GPU machine
#   bash scripts/device_check.sh --smoke   # here, on a 2-core CPU, in about two minutes
#
# The GPU machine has Python 3.12 with JAX (CUDA) but no TensorFlow, no Keras
# and no network. Keras travels as wheels, fetched on a machine with a network
# into wheels/ at the repository root (or the folder in $KCC_WHEELS):
#
#   pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --platform manylinux_2_17_x86_64 --dest wheels \
#       keras==3.15.1 namex optree typing-extensions
#
# (2.8 MB: keras 3.15.1, namex 0.1.0, optree 0.16.0, typing_extensions 4.16.0
# from this project's package mirror on 2026-11-28. optree imports
# typing_extensions, which PyTorch's install there probably has too.)
#
# The check installs them into a temporary folder (pip install --no-deps
# --target; unzipping them if pip is missing), puts that folder and the
# repository on PYTHONPATH, and runs scripts/benchmark_training.py with
# KERAS_BACKEND=jax under `timeout`. Figures are printed, and written as JSON
# to $OUT (the device runner's output folder) or the temporary folder.
#
# --smoke runs the same script on this machine's CPU in the current Python
# environment (no wheels), with TensorFlow blocked as on the GPU machine, in
# mixed_bfloat16 at batch 2 and 32x32 images (ViT-B/16 then sees 2x2
# patches), with one timed step of two pairs: resnet50_v1 and vit_base_16
# ($KCC_SMOKE_MODELS overrides them). Most of its time is XLA compilation.
#
# Environment: PYTHON (default python3), KCC_WHEELS, KCC_TIMEOUT (seconds,
# default 540 on the GPU, 300 for --smoke), KCC_SMOKE_MODELS.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d)"
export KERAS_BACKEND=jax
trap 'rm -rf "$WORK"' EXIT

install_wheels() {
  # Installs the Keras wheels into $WORK/site and puts it on PYTHONPATH.
  local wheels="${KCC_WHEELS:-$ROOT/wheels}"
  if ! ls "$wheels"/*.whl >/dev/null 2>&1; then
    echo "no wheels in $wheels: fetch them with the pip download command at the top of $0" >&2
    exit 2
  fi
  if "$PYTHON" -m pip --version >/dev/null 2>&1; then
    "$PYTHON" -m pip install --quiet --no-deps --no-index --target "$WORK/site" "$wheels"/*.whl
  else  # a wheel is a zip file laid out for site-packages
    for wheel in "$wheels"/*.whl; do "$PYTHON" -m zipfile -e "$wheel" "$WORK/site"; done
  fi
  export PYTHONPATH="$WORK/site:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
}

if [[ "${1:-}" == "--smoke" ]]; then
  limit="${KCC_TIMEOUT:-300}"
  export JAX_PLATFORMS=cpu KCC_BLOCK_TENSORFLOW=1 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
  # Compile speed matters here, not the speed of the compiled code. At that low
  # optimisation level the older threefry layout draws ViT-B's 86M random initial
  # weights about twice as fast on a CPU (the values differ; nothing depends on them).
  export XLA_FLAGS="--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
  export JAX_THREEFRY_PARTITIONABLE=0
  args=(--precision mixed_bfloat16 --batch-size 2 --image-size 32 --classes 10
        --warmup 1 --rounds 1 --steps 1
        --models "${KCC_SMOKE_MODELS:-resnet50_v1,vit_base_16}")
elif [[ $# -eq 0 ]]; then
  limit="${KCC_TIMEOUT:-540}"
  install_wheels
  args=(--precision mixed_bfloat16 --batch-size 256 --image-size 224 --classes 1000
        --warmup 2 --rounds 3 --steps 10
        --models resnet50,resnet50_v1,mobilenet_v2,efficientnet_b0,vit_base_16)
else
  echo "usage: $0 [--smoke]" >&2
  exit 2
fi

json="${OUT:-$WORK}/benchmark_training.json"
cd "$ROOT"
"$PYTHON" -c 'import sys, jax, keras
print("python", sys.version.split()[0], "jax", jax.__version__, "keras from", keras.__path__[0])'
status=0
timeout "$limit" "$PYTHON" -u scripts/benchmark_training.py \
  "${args[@]}" --json "$json" || status=$?
if [[ $status -eq 124 ]]; then
  echo "time limit of $limit s reached: the figures above are all there are" >&2
fi
if [[ -f "$json" ]]; then echo "figures written to $json"; fi
exit "$status"
