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
# # Two stages: region proposals, RoIAlign, Faster R-CNN and Mask R-CNN
# Lecture: Detection and segmentation
#
# Tasks: detection, instance_segmentation
#
# **The question.** A single-stage detector (tutorial 10) scores every anchor of every cell
# at once. A two-stage detector first asks *where might an object be?* (a few hundred
# proposals), then looks closely at each: it cuts a fixed-size grid of features out of each
# proposal and classifies it, refines its box and, in Mask R-CNN, draws its mask. How do we
# cut features out of a box without rounding it to whole cells, and how do we train a
# network whose second stage depends on the first stage's output?
#
# We follow Ren, He, Girshick and Sun, "Faster R-CNN" (NeurIPS 2015, arXiv:1506.01497) and
# He, Gkioxari, Dollár and Girshick, "Mask R-CNN" (ICCV 2017, arXiv:1703.06870), with
# torchvision's settings and parameter counts.

# %%
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from keras_cv_course import applications  # noqa: E402
from keras_cv_course.applications.detection.mask_rcnn import MaskRCNN  # noqa: E402
from keras_cv_course.data import load_dataset  # noqa: E402
from keras_cv_course.export import export  # noqa: E402
from keras_cv_course.export.api import serving_function  # noqa: E402
from keras_cv_course.layers.roi_align import roi_align  # noqa: E402
from keras_cv_course.tasks import get_task  # noqa: E402
from keras_cv_course.training import train  # noqa: E402

FAST = os.environ.get("KCC_FAST") == "1"  # shrinks the budget only; same code path
OUT = os.environ.get("KCC_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="kcc-tutorial-")
os.makedirs(OUT, exist_ok=True)
RUNS = tempfile.mkdtemp(prefix="14-two-stage-", dir=OUT)  # fresh run folders every time
EPOCHS = 6 if FAST else 15
TASK = get_task("instance_segmentation")
print(f"FAST={FAST}, epochs={EPOCHS}, writing into {RUNS}")

# %% [markdown]
# ## RoIAlign: features from a box, without rounding
#
# A proposal is a box in image pixels; the feature map has one cell per 4, 8, 16 or 32
# pixels. RoIPool rounded the box to whole cells, which shifts the grid by up to half a cell:
# harmless for a class, harmful for a 28 x 28 mask. RoIAlign splits the box into equal bins
# and reads each bin's sampling points by bilinear interpolation. On a map whose value is its
# x coordinate, every point reads exactly its own x: the mean of a bin is its centre.

# %%
ramp = np.tile(np.arange(8, dtype="float32"), (1, 8, 1))[..., None]  # value = x, (1, 8, 8, 1)
pooled = keras.ops.convert_to_numpy(
    roi_align(ramp, np.array([[1.0, 1.0, 5.0, 5.0]]), np.array([0]), 2, sampling_ratio=2,
              aligned=True))[0, ..., 0]
print("2 x 2 RoIAlign of the box x in [1, 5] on the ramp:\n", pooled)
# aligned=True shifts by half a pixel: the bins cover x in [0.5, 2.5] and [2.5, 4.5].
assert np.allclose(pooled, [[1.5, 3.5], [1.5, 3.5]])

# %% [markdown]
# ## The networks, at torchvision's size
#
# Faster R-CNN: a ResNet-50-FPN, a region proposal network (a 3x3 convolution and two 1x1
# heads shared by P2-P6: an objectness logit and four box offsets per anchor), RoIAlign to
# 7 x 7 and a two-layer head of 1024 that scores 91 classes (background included) and
# regresses one box per class. Mask R-CNN adds four 3x3 convolutions, a deconvolution and one
# 28 x 28 mask per class on a 14 x 14 RoIAlign grid.

# %%
if not FAST:  # building the full models takes a few seconds each; nothing runs
    for name in ("fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn"):
        full = applications.build_full(name)
        print(f"{name}: {applications.parameter_count(full):,} parameters "
              f"(torchvision: {applications.get_info(name).reference_params:,})")
        del full
tiny = applications.build_tiny("maskrcnn_resnet50_fpn")
print({key: tuple(value.shape) for key, value in tiny.output.items()})

# %% [markdown]
# ## Training a network whose second stage reads the first stage's output
#
# The box head trains on 512 RoIs per image, a quarter of them foreground at most: the
# proposals plus the true boxes, labelled by IoU with the objects. That sampling needs the
# ground truth, which `call` never sees, so the model computes its own loss
# (`compute_loss`): the RPN's objectness and box losses on 256 sampled anchors, the head's
# classification and box losses, and the mask loss on the foreground RoIs (only the map of
# the true class counts). `call` stays deterministic and exportable. The five losses are
# logged one by one.

# %%
bundle = load_dataset("shapes", task="instance_segmentation")
names = bundle.class_names
run = train("maskrcnn_resnet50_fpn", bundle, os.path.join(RUNS, "mask_rcnn"), config="tiny",
            epochs=EPOCHS, batch_size=32, learning_rate=1e-3, verbose=0)
print(f"{EPOCHS} epochs in {run.seconds:.0f} s")
plt.figure(figsize=(6, 3))
for name in MaskRCNN.loss_names:
    plt.plot(run.history[name], label=name)
plt.xlabel("epoch")
plt.yscale("log")
plt.legend(fontsize=7)
plt.show()
assert run.history["mask_loss"][-1] < run.history["mask_loss"][0]

# %% [markdown]
# ## Box AP and mask AP
#
# Mask AP is box AP with the overlap of two boxes replaced by the overlap of two masks;
# pycocotools computes both (`iouType="bbox"` and `"segm"`, masks RLE-encoded).

# %%
metrics = run.metrics
print("test: " + ", ".join(f"{key}={metrics[key]:.3f}"
                           for key in ("ap", "ap50", "mask_ap", "mask_ap50")))
assert metrics["ap50"] > (0.2 if FAST else 0.5) and metrics["mask_ap50"] > (0.2 if FAST else 0.5)

# %%
test_images, test_targets = bundle.arrays["test"]
outputs = serving_function(run.model, TASK)({"images": test_images[:8]})
outputs = {key: keras.ops.convert_to_numpy(value) for key, value in outputs.items()}
fig, axes = plt.subplots(1, 8, figsize=(12, 2))
for index, axis in enumerate(axes):
    picture, lines = TASK.prediction_picture(
        test_images[index], {key: value[index] for key, value in outputs.items()}, names)
    axis.imshow(np.clip(picture, 0, 1))
    axis.set_title(lines[0].split(",")[0], fontsize=7)
    axis.axis("off")
plt.suptitle("detections with their masks pasted into the image", fontsize=9)
plt.show()

# %% [markdown]
# ## Export: proposals, RoIAlign, both heads, NMS and masks in one graph
#
# RoIAlign is gathers and weighted sums, so the whole model converts to TFLite built-in ops;
# the gate checks that the artifact's detections match Keras' and that their masks overlap
# Keras' by IoU >= 0.99.

# %%
manifest = export(run.path, formats=("tflite",))
entry = manifest["artifacts"]["tflite"]
print(f"tflite: {entry['bytes']:,} bytes, {entry['op_count']} ops; errors against Keras "
      f"{entry['parity']['errors']}")
assert entry["parity"]["passed"] and "FlexCropAndResize" not in entry["ops"]

# %% [markdown]
# ## Exercise
#
# Run the RoIAlign cell again with `aligned=False`, the rule of the original Mask R-CNN code
# and of torchvision's detectors. Before running, predict the four numbers.
#
# **Answer:** `[[2, 4], [2, 4]]`. Without the half-pixel shift the bins cover x in [1, 3]
# and [3, 5]; their sampling points sit at 1.5 and 2.5, and at 3.5 and 4.5, and read their
# own x on the ramp. Every box is read half a pixel to the right of where `aligned=True`
# reads it: invisible in a class score, visible at the edge of a 28 x 28 mask.
