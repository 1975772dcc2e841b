# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Export and deployment
# Lecture: Export and deployment
#
# Tasks: classification
#
# **The question.** A trained Keras model is Python objects on a machine with TensorFlow.
# A phone, a browser or a C++ service has none of that. How do we turn the model into
# self-contained artifacts (a TensorFlow SavedModel, a TFLite/LiteRT flatbuffer, an ONNX
# graph), and how do we *know* that each one still computes what we trained?
#
# We train a small ResNet-18 (He et al., "Deep Residual Learning for Image Recognition",
# CVPR 2016, arXiv:1512.03385) on the embedded digits, export it through the package's one
# verified path, read the manifest it writes, and then run the TFLite and ONNX files with
# their own runtimes and nothing but NumPy around them, as a deployer would.

# %%
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_cv_course import applications  # noqa: E402
from keras_cv_course.data import load_dataset  # noqa: E402
from keras_cv_course.export import export  # noqa: E402
from keras_cv_course.training import train  # noqa: E402

tf.get_logger().setLevel("ERROR")  # the ONNX converter logs TF1 deprecation warnings
FAST = os.environ.get("KCC_FAST") == "1"  # shrinks the budget only; same code path
OUT = os.environ.get("KCC_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="kcc-tutorial-")
os.makedirs(OUT, exist_ok=True)
RUNS = tempfile.mkdtemp(prefix="09-export-", dir=OUT)  # fresh run folders every time
EPOCHS = 3 if FAST else 10
print(f"FAST={FAST}, epochs={EPOCHS}, writing into {RUNS}")

# %% [markdown]
# ## A model worth exporting
#
# The same narrow ResNet-18 as `kcc quickstart`: one block per stage, widths 16-64 and a
# 3x3 stem for 16x16 images. `train` writes a run folder holding the final `model.keras`,
# its config and its test metrics.

# %%
run_dir = os.path.join(RUNS, "resnet18-digits")
run = train("resnet18", "digits", run_dir, epochs=EPOCHS, batch_size=64, learning_rate=3e-3,
            image_size=(16, 16), stage_widths=(16, 32, 64, 64), blocks_per_stage=(1, 1, 1, 1),
            stem_type="small", verbose=0)
print(f"test accuracy of the Keras model: {run.metrics['accuracy']:.4f} "
      f"({run.seconds:.0f} s of training)")
assert run.metrics["accuracy"] > 0.85

# %% [markdown]
# ## One export path, with a gate
#
# `export` takes a model, a `.keras` file or, as here, a run folder. It writes one
# SavedModel with a `serve` signature (named inputs, a dictionary of named outputs, the
# task's post-processing inside the graph), converts that SavedModel to TFLite (built-in
# ops only) and to ONNX (opset 17), and then runs every artifact on a *golden batch* of test
# images. Only if each output matches Keras (within 1e-4 for floats) does the folder appear;
# a failed export leaves nothing behind.

# %%
export_dir = os.path.join(RUNS, "export")
started = time.time()
manifest = export(run_dir, export_dir, formats=("savedmodel", "tflite", "onnx"))
print(f"exported and verified in {time.time() - started:.0f} s: {sorted(os.listdir(export_dir))}")

# %% [markdown]
# ## Reading the manifest
#
# `manifest.json` is the deployer's contract: the input and output names, shapes and dtypes,
# a hash of the golden batch, and for each artifact its size, its operators and the parity
# error measured by the gate.

# %%
with open(os.path.join(export_dir, "manifest.json"), encoding="utf-8") as handle:
    manifest = json.load(handle)
print("inputs :", manifest["inputs"])
print("outputs:", manifest["outputs"])
print(f"golden batch {manifest['golden_batch']['shapes']}, "
      f"sha256 {manifest['golden_batch']['sha256'][:12]}...")
print(f"\n{'artifact':<12}{'bytes':>12}{'ops':>7}{'max error vs Keras':>21}")
for fmt, entry in manifest["artifacts"].items():
    error = max(entry["parity"]["errors"].values())
    print(f"{fmt:<12}{entry['bytes']:>12,}{entry['op_count']:>7}{error:>21.2e}")
    assert entry["parity"]["passed"] and error <= entry["parity"]["tolerance"]
keras_bytes = os.path.getsize(os.path.join(run_dir, "model.keras"))
print(f"{'keras':<12}{keras_bytes:>12,}")
weight_bytes = 4 * applications.parameter_count(run.model)
print(f"float32 weights alone: {weight_bytes:,} bytes")
assert manifest["artifacts"]["tflite"]["bytes"] < 1.2 * weight_bytes < keras_bytes

# %% [markdown]
# The TFLite and ONNX files are little more than the float32 weights (the SavedModel,
# TensorFlow's own format, sits in between). The `.keras` file is about three times larger
# because it also stores the optimizer's state (Adam keeps two running averages per
# weight), so that training can resume from it; a deployed model never trains.

# %% [markdown]
# The operator lists tell what a runtime must implement. The converters fold each
# BatchNorm into the convolution before it; TFLite also fuses the ReLU (and the one after
# each residual `ADD`) into the operator, while ONNX keeps `Relu` as separate nodes. The
# SavedModel's count includes TensorFlow's bookkeeping (variable reads, identities, the
# function-call machinery), which is why it is so much larger.

# %%
for fmt in ("tflite", "onnx"):
    ops = manifest["artifacts"][fmt]["ops"]
    top = sorted(ops.items(), key=lambda item: -item[1])[:6]
    print(f"{fmt:7s}", ", ".join(f"{name} x{count}" for name, count in top))

fig, axes = plt.subplots(1, 2, figsize=(9, 3))
formats = list(manifest["artifacts"])
axes[0].bar(["keras", *formats],
            [keras_bytes / 1024] + [manifest["artifacts"][f]["bytes"] / 1024 for f in formats])
axes[0].set_ylabel("size (KB)")
axes[1].bar(formats, [manifest["artifacts"][f]["op_count"] for f in formats], color="tab:orange")
axes[1].set_ylabel("operators in the graph")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Running the artifacts as a deployer would
#
# From here on the model is reached only through its files: the test images as a NumPy
# array, the LiteRT interpreter (`ai_edge_litert`, the runtime TFLite was renamed to) and
# onnxruntime, with no TensorFlow in between. The reference is the Keras model itself.

# %%
bundle = load_dataset("digits", image_size=(16, 16))
test_images, test_labels = bundle.arrays["test"]
keras_probabilities = run.model.predict(test_images, batch_size=64, verbose=0)
print(f"{len(test_images)} test images {test_images.shape[1:]}, {test_images.dtype}")

# %% [markdown]
# **TFLite.** The interpreter exposes the SavedModel's `serve` signature by name; calling it
# with keyword arguments named like the inputs returns a dictionary named like the
# outputs. The signature runner resizes its input to each batch we give it.

# %%
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

interpreter = Interpreter(model_path=os.path.join(export_dir, "model.tflite"))
print("signatures:", interpreter.get_signature_list())
serve = interpreter.get_signature_runner("serve")
started = time.time()
tflite_probabilities = np.concatenate([
    serve(images=test_images[i:i + 64])["predictions"] for i in range(0, len(test_images), 64)])
tflite_seconds = time.time() - started

# %% [markdown]
# **ONNX.** An `InferenceSession` reports its input names; `run` returns the outputs in
# the order of `get_outputs()`.

# %%
import onnxruntime  # noqa: E402

session = onnxruntime.InferenceSession(os.path.join(export_dir, "model.onnx"),
                                       providers=["CPUExecutionProvider"])
print("onnx inputs :", [(i.name, i.shape, i.type) for i in session.get_inputs()])
print("onnx outputs:", [(o.name, o.shape, o.type) for o in session.get_outputs()])
started = time.time()
(onnx_probabilities,) = session.run(["predictions"], {"images": test_images})
onnx_seconds = time.time() - started

# %% [markdown]
# ## Do they agree?
#
# Two questions, in order of strictness: do the runtimes produce the same *numbers* (up to
# float rounding, since each runtime orders its sums differently), and do they make the same
# *decisions*?

# %%
results = {"keras": keras_probabilities, "tflite": tflite_probabilities,
           "onnx": onnx_probabilities}
print(f"{'runtime':<8}{'accuracy':>10}{'max |p - p_keras|':>20}{'same argmax':>13}")
for name, probabilities in results.items():
    accuracy = float(np.mean(probabilities.argmax(-1) == test_labels))
    error = float(np.max(np.abs(probabilities - keras_probabilities)))
    same = float(np.mean(probabilities.argmax(-1) == keras_probabilities.argmax(-1)))
    print(f"{name:<8}{accuracy:>10.4f}{error:>20.2e}{same:>13.2%}")
    assert error < 1e-4 and same == 1.0
print(f"\nwhole test split: TFLite {tflite_seconds * 1000:.0f} ms, "
      f"ONNX {onnx_seconds * 1000:.0f} ms (CPU, noisy)")

# %% [markdown]
# The runtimes agree with Keras to about 1e-6 on all 360 test images, not only on the
# eight golden images the gate checked, and they classify every image identically.

# %%
fig, axes = plt.subplots(1, 8, figsize=(10, 1.8))
for ax, image, label, tfl, onx in zip(axes, test_images, test_labels,
                                      tflite_probabilities.argmax(-1),
                                      onnx_probabilities.argmax(-1)):
    ax.imshow(image[..., 0], cmap="gray")
    ax.set_title(f"true {label}\ntflite {tfl} onnx {onx}", fontsize=8)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Exercise
#
# Export the same run again with `export(run_dir, os.path.join(RUNS, "strict"),
# tolerance=1e-12)`. Before running, predict what happens, and what is left in
# `RUNS/strict` afterwards.
#
# **Answer:** the export fails with a one-line `KCCError` naming the first artifact whose
# output differs from Keras (float rounding puts every artifact around 1e-9 to 1e-7 away,
# above 1e-12), and `RUNS/strict` does not exist: the gate runs on a staging folder that is
# removed on failure.
