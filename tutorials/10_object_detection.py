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
# # Object detection: YOLO, boxes, IoU, NMS and mean average precision
# Lecture: Object detection
#
# Tasks: detection
#
# **The question.** A classifier says *what* is in an image. A detector must say what and
# *where*, for every object: a variable number of boxes, each with a class and a score. How
# does a network with a fixed-size output produce a variable number of boxes, how do we
# remove the duplicates it produces, and how do we score a list of boxes against the truth?
#
# We follow Redmon, Divvala, Girshick and Farhadi, "You Only Look Once: Unified, Real-Time
# Object Detection" (CVPR 2016, arXiv:1506.02640), the first single-stage detector, and
# score it as the COCO benchmark does (Lin et al., ECCV 2014, arXiv:1405.0312). The package
# also has RetinaNet, FCOS and an anchor-free YOLO in the v8 style, which train the same way.

# %%
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from keras_cv_course import applications, detection  # noqa: E402
from keras_cv_course.data import load_dataset  # noqa: E402
from keras_cv_course.detection.head import detection_head  # noqa: E402
from keras_cv_course.export import export  # noqa: E402
from keras_cv_course.export.api import serving_function  # noqa: E402
from keras_cv_course.export.runners import load_runner  # noqa: E402
from keras_cv_course.tasks import get_task  # noqa: E402
from keras_cv_course.tasks.detection import draw_boxes  # noqa: E402
from keras_cv_course.training import train  # noqa: E402

FAST = os.environ.get("KCC_FAST") == "1"  # shrinks the budget only; same code path
OUT = os.environ.get("KCC_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="kcc-tutorial-")
os.makedirs(OUT, exist_ok=True)
RUNS = tempfile.mkdtemp(prefix="10-detection-", dir=OUT)  # fresh run folders every time
EPOCHS = 10 if FAST else 30
TASK = get_task("detection")
print(f"FAST={FAST}, epochs={EPOCHS}, writing into {RUNS}")

# %% [markdown]
# ## The data: objects as rows
#
# `shapes` draws one circle, square or triangle per 32x32 image. For detection each image's
# target is a table of objects, one row `[ymin, xmin, ymax, xmax, class]` per object with the
# box as fractions of the image (TensorFlow Datasets' convention, so `voc/2007` and
# `coco/2017` load the same way), padded with rows of -1 to the batch's largest count.

# %%
bundle = load_dataset("shapes", task="detection")
names = bundle.class_names
test_images, test_objects = bundle.arrays["test"]
print(f"classes {names}; test images {test_images.shape}, objects {test_objects.shape}")
print("first object row:", np.round(test_objects[0, 0], 3))

fig, axes = plt.subplots(1, 6, figsize=(11, 2.2))
for axis, image, rows in zip(axes, test_images, test_objects):
    axis.imshow(draw_boxes(image, rows[:, :4], classes=rows[:, 4].astype(int)))
    axis.set_title(names[int(rows[0, 4])], fontsize=9)
    axis.axis("off")
plt.show()

# %% [markdown]
# ## Intersection over union
#
# Two boxes are "the same object" when they overlap enough, measured by the area of their
# intersection over the area of their union (IoU): 1 for identical boxes, 0 for disjoint
# ones. A box shifted by a quarter of its width keeps 0.75 of its area in common with the
# original, so its IoU is 0.75 / 1.25 = 0.6. GIoU (Rezatofighi et al., CVPR 2019) subtracts
# the empty part of the smallest enclosing box, so that it still says "how far" for disjoint
# boxes, which makes it a useful loss (FCOS trains its boxes with it).

# %%
box = np.array([[0.0, 0.0, 40.0, 40.0]], "float32")  # xyxy, pixels
shifted = box + np.float32([10.0, 0.0, 10.0, 0.0])
far = box + np.float32([80.0, 0.0, 80.0, 0.0])
for label, other in (("shifted by 1/4", shifted), ("far away", far)):
    iou = float(keras.ops.convert_to_numpy(detection.aligned_iou(box, other))[0])
    giou = float(keras.ops.convert_to_numpy(detection.aligned_giou(box, other))[0])
    print(f"{label:>15}: IoU {iou:.3f}, GIoU {giou:.3f}")
assert abs(float(keras.ops.convert_to_numpy(detection.aligned_iou(box, shifted))[0]) - 0.6) < 1e-6

# %% [markdown]
# ## YOLO v1: a grid of box predictors
#
# YOLO divides the image into an S x S grid. Each cell predicts B boxes, each as the centre
# offset within the cell, the square roots of width and height (so that an error on a
# small box costs more than the same error on a large one), and a confidence; and one set of
# class probabilities. The cell holding an object's centre is responsible for it, and among
# its B predictors the one whose box overlaps the object most. The loss is a sum of squared
# errors, with the box terms weighted by 5 and the confidence of empty predictors by 0.5,
# because most cells hold no object. The full network (448x448, S=7, B=2, 20 classes) has
# 271.7M parameters, almost all in the first fully connected layer; the tiny config uses
# S=4 on 32x32 images, so each cell is 8x8 pixels.

# %%
full = applications.get_info("yolo_v1")
print(f"full YOLO v1: {full.reference_params:,} parameters ({full.params_source})")
model = applications.build_tiny("yolo_v1")
head = detection_head(model)
print(f"tiny: {applications.parameter_count(model):,} parameters; output "
      f"{tuple(model.output.shape)} = (batch, S*S cells, B*5 + C)")
print(f"grid {head.grid_size}x{head.grid_size}, {head.boxes_per_cell} boxes per cell")

# %% [markdown]
# ## Training
#
# `train` builds the registered model for the data, and the detection task compiles it
# with the loss of the model's own head (`DetectionHead.loss`): the task never asks which
# detector it trains. `augment="flip"` mirrors image and boxes together.

# %%
run = train("yolo_v1", bundle, os.path.join(RUNS, "yolo_v1"), config="tiny", epochs=EPOCHS,
            batch_size=32, learning_rate=1e-3, augment="flip", verbose=0)
print(f"{EPOCHS} epochs in {run.seconds:.0f} s")
plt.figure(figsize=(6, 3))
plt.plot(run.history["loss"], label="train")
plt.plot(run.history["val_loss"], label="validation")
plt.xlabel("epoch")
plt.ylabel("YOLO loss")
plt.legend()
plt.show()

# %% [markdown]
# ## From many boxes to a few: non-maximum suppression
#
# The network always predicts S*S*B = 32 boxes per image. Decoding gives each a score per
# class (class probability times confidence). Neighbouring cells often predict the same
# object, so we keep the best box and drop every box of the same class that overlaps it by
# more than an IoU threshold, then repeat with the next best: greedy non-maximum
# suppression. The task's serving function does exactly this inside the graph.

# %%
raw = run.model.predict(test_images[:1], verbose=0)
boxes, scores = (keras.ops.convert_to_numpy(t) for t in head.decode(raw))
# NMS works per class: each (box, class) pair above the score threshold is a candidate.
candidates = int(np.sum(scores > TASK.nms_defaults["score_threshold"]))
served = serving_function(run.model, TASK)({"images": test_images[:1]})
served = {key: keras.ops.convert_to_numpy(value) for key, value in served.items()}
count = int(served["num_detections"][0])
print(f"{boxes.shape[1]} decoded boxes, {candidates} (box, class) pairs above the score "
      f"threshold, {count} after NMS")
assert count <= candidates

# %% [markdown]
# ## Scoring a detector: average precision
#
# Sort all detections of a class by score. Walking down the list, a detection is a true
# positive if it overlaps a not-yet-found object of its class by IoU >= t, else a false
# positive; precision and recall trace a curve, and the area under it is the average
# precision (AP). PASCAL VOC reports AP at t = 0.5, averaged over classes (mAP@0.5); COCO
# averages AP over t = 0.50, 0.55, ..., 0.95, which rewards precise boxes. The package hands
# the boxes to pycocotools' `COCOeval`, the implementation papers report.

# %%
metrics = run.metrics
print("test: " + ", ".join(f"{key}={metrics[key]:.3f}"
                           for key in ("ap", "ap50", "ap75", "voc_map50")))
assert metrics["voc_map50"] > (0.2 if FAST else 0.5)

# %%
outputs = serving_function(run.model, TASK)({"images": test_images[:8]})
outputs = {key: keras.ops.convert_to_numpy(value) for key, value in outputs.items()}
fig, axes = plt.subplots(1, 8, figsize=(12, 2))
for index, axis in enumerate(axes):
    found = int(outputs["num_detections"][index])
    truth = test_objects[index][test_objects[index, :, 4] >= 0]
    picture = draw_boxes(test_images[index], truth[:, :4], colours=[(1.0, 1.0, 1.0)])
    picture = draw_boxes(picture, outputs["boxes"][index, :1],
                         classes=outputs["classes"][index, :1])
    title = (f"{names[outputs['classes'][index, 0]]} {outputs['scores'][index, 0]:.2f}"
             if found else "none")
    axis.imshow(np.clip(picture, 0, 1))
    axis.set_title(title, fontsize=8)
    axis.axis("off")
plt.suptitle("best detection (class colour) and the truth (white)", fontsize=9)
plt.show()

# %% [markdown]
# ## Export: the whole detector, NMS included
#
# The export writes one serving signature at batch 1: decoding and NMS run inside the graph,
# and NMS becomes TFLite's built-in `NON_MAX_SUPPRESSION_V5` and ONNX's `NonMaxSuppression`.
# The gate checks that every artifact finds the same detections as Keras (same class, IoU >=
# 0.99, score within 1e-3). `max_detections` is a serving option.

# %%
manifest = export(run.path, formats=("tflite",), serving_options={"max_detections": 5})
entry = manifest["artifacts"]["tflite"]
nms_ops = {op: n for op, n in entry["ops"].items() if "NON_MAX" in op}
print(f"tflite: {entry['bytes']:,} bytes, NMS ops {nms_ops}, parity passed "
      f"{entry['parity']['passed']}")
lite = load_runner("tflite", os.path.join(run.path, "export", "model.tflite"))
print("tflite detections of the first test image:",
      {key: np.round(value[0], 3).tolist() for key, value in lite(test_images[:1]).items()
       if key != "raw_detections"})
assert nms_ops == {"NON_MAX_SUPPRESSION_V5": 1}

# %% [markdown]
# ## Exercise
#
# Serve the same model with NMS switched almost off, `serving_options={"iou_threshold":
# 0.99}` (pass it to `serving_function(run.model, TASK, {...})`), and score the test split
# with `TASK.score(outputs, test_objects)`. Before running, predict what happens to AP50.
#
# **Answer:** every neighbouring duplicate of a found object now survives (on the full run,
# about 1,300 detections on the 240 test images instead of about 900). The first copy of an
# object is still a true positive, but each duplicate is a false positive, and where it
# outscores the true detection of another image it lowers the precision at that recall:
# AP50 fell from 0.92 to 0.89 when measured. The drop is small here because most duplicates
# score lower than the true detections of other images. The model did not change, only its
# post-processing, which is why detectors are always evaluated with their NMS.
