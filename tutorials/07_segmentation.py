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
# # Semantic segmentation with fully convolutional networks
# Lecture: Semantic segmentation
#
# Tasks: segmentation
#
# **The question.** A classifier answers "what is in this image?" with one label. Semantic
# segmentation asks for a label at *every pixel*. How do we turn a classification network
# into a per-pixel predictor without throwing away what it computes, and why does it need
# the *skip connections* of FCN-16s and FCN-8s to draw sharp boundaries?
#
# We follow Long, Shelhamer and Darrell, "Fully Convolutional Networks for Semantic
# Segmentation" (CVPR 2015, arXiv:1411.4038), with the package's FCN built on its VGG-16
# backbone (Simonyan and Zisserman, ICLR 2015), and train it on the embedded `shapes` data.

# %%
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from keras_cv_course import applications  # noqa: E402
from keras_cv_course.data import load_dataset  # noqa: E402
from keras_cv_course.tasks.segmentation import PALETTE, overlay  # noqa: E402
from keras_cv_course.training import train  # noqa: E402

FAST = os.environ.get("KCC_FAST") == "1"  # shrinks the budget only; same code path
OUT = os.environ.get("KCC_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="kcc-tutorial-")
os.makedirs(OUT, exist_ok=True)
RUNS = tempfile.mkdtemp(prefix="07-segmentation-", dir=OUT)  # fresh run folders every time
EPOCHS = 8 if FAST else 20
SIZE = (32, 32)
# The registry's tiny FCN (one 3x3 convolution per VGG block, fc6/fc7 16 wide) with wider
# blocks and fc6/fc7 64 wide (at 16, all of fc6's ReLUs can die in training); builder
# arguments that differ from the tiny config go through `train` and `build`.
MODEL = dict(backbone_widths=(16, 32, 32, 64, 64), fc_width=64)
TINY = applications.get_info("fcn8s").tiny_config
print(f"FAST={FAST}, epochs={EPOCHS}, writing into {RUNS}")

# %% [markdown]
# ## The data, and why pixel accuracy misleads
#
# `shapes` draws one coloured circle, square or triangle on a noisy dark background. For
# segmentation its target is a mask with 0 for background and 1 + class for the shape's
# pixels. Most pixels are background, so a model that predicts "background" everywhere
# already scores a high *pixel accuracy*. The standard metric is therefore the **mean
# intersection over union**: for each class, the pixels that are both predicted and true
# divided by those that are either, averaged over classes.

# %%
bundle = load_dataset("shapes", task="segmentation", image_size=SIZE)
names = bundle.class_names
test_images, test_masks = bundle.arrays["test"]
train_images, train_masks = bundle.arrays["train"]
print(f"classes {names}; train {train_images.shape}, test {test_images.shape}")
frequency = np.bincount(train_masks.ravel(), minlength=len(names)) / train_masks.size
print("pixel share per class:", {n: round(float(f), 3) for n, f in zip(names, frequency)})


def confusion(true, predicted, classes):
    """Pixel counts: rows are true classes, columns predicted ones."""
    return np.bincount(classes * true.ravel() + predicted.ravel(),
                       minlength=classes * classes).reshape(classes, classes)


def iou_per_class(matrix):
    intersection = np.diag(matrix)
    union = matrix.sum(axis=0) + matrix.sum(axis=1) - intersection
    return intersection / np.maximum(union, 1)


background_only = confusion(test_masks, np.zeros_like(test_masks), len(names))
baseline_accuracy = np.trace(background_only) / background_only.sum()
baseline_miou = iou_per_class(background_only).mean()
print(f"'background everywhere': pixel accuracy {baseline_accuracy:.3f}, "
      f"mean IoU {baseline_miou:.3f}")
assert baseline_accuracy > 0.7 and baseline_miou < 0.25

fig, axes = plt.subplots(2, 6, figsize=(11, 4))
for i in range(6):
    axes[0, i].imshow(test_images[i])
    axes[1, i].imshow(PALETTE[test_masks[i]])
    axes[0, i].set_title(names[test_masks[i].max()], fontsize=9)
    axes[0, i].axis("off")
    axes[1, i].axis("off")
axes[1, 0].set_title("masks: " + ", ".join(names), loc="left", fontsize=8)
plt.show()

# %% [markdown]
# ## From classifier to fully convolutional network
#
# VGG-16 is five blocks of 3x3 convolutions, each ending in a 2x2 max-pool, so block `k`'s
# output (`pool3`, `pool4`, `pool5` in the paper; levels `C3`, `C4`, `C5` in this package)
# is `2**k` times smaller than the image. `applications.backbone` returns those levels of
# any registered CNN. We use a narrow VGG (the registry's *tiny* config, widened a little)
# that trains in a minute on a CPU; the layout is the paper's.

# %%
features = applications.backbone("vgg16", levels=("C3", "C4", "C5"), input_shape=SIZE + (3,),
                                 block_widths=MODEL["backbone_widths"],
                                 convs_per_block=TINY["convs_per_stage"])
for level in features.feature_info:
    print(level)

# %% [markdown]
# FCN makes three changes to the classifier:
#
# 1. its fully connected layers become convolutions (`fc6` a 7x7, `fc7` a 1x1), so the
#    network accepts any image size and produces a *map* of features instead of one vector;
# 2. a 1x1 convolution (`score_fr`) turns each position of that stride-32 map into class
#    scores;
# 3. the coarse score map is upsampled back to the image. **FCN-32s** does it in one x32
#    step. **FCN-16s** first upsamples x2 with a learned transposed convolution, adds scores
#    computed from `pool4` (stride 16), and upsamples x16. **FCN-8s** repeats that once more
#    with `pool3` (stride 8) and upsamples x8.
#
# The finer maps know *where* edges are; the coarse map knows *what* the object is. Their
# sum has both.

# %%
heads = {}
for name in ("fcn32s", "fcn16s", "fcn8s"):
    heads[name] = applications.build_tiny(name, input_shape=SIZE + (3,), classes=len(names),
                                          **MODEL)
    extra = [layer.name for layer in heads[name].layers
             if layer.name.startswith(("upscore", "score", "fuse"))]
    print(f"{name:7s} {applications.parameter_count(heads[name]):>7,} parameters; head: "
          + " -> ".join(extra))
print(f"full size (VGG-16 widths, 21 VOC classes): "
      f"{applications.get_info('fcn8s').reference_params:,} parameters in the paper")

# %% [markdown]
# Two initialisations make the skips safe to add. The x2 transposed convolutions start as
# exact bilinear interpolation (below: the kernel that spreads one coarse score over a 4x4
# window of the finer grid), and the `score_pool4` / `score_pool3` layers start at zero,
# so at the first step FCN-8s computes what FCN-32s does and the skips only add detail as
# they learn.

# %%
kernel = heads["fcn8s"].get_layer("upscore_to_pool4").get_weights()[0]
print("bilinear x2 kernel (one class):\n", kernel[:, :, 0, 0].round(4))
assert np.allclose(kernel[:, :, 0, 1], 0.0)  # no mixing between classes
assert not np.any(heads["fcn8s"].get_layer("score_pool3").get_weights()[0])

# %% [markdown]
# ## How fine must the score map be?
#
# Start with a hard fact. On 32x32 images the stride-32 score map of FCN-32s is a *single*
# cell, and bilinear upsampling of one value is that value everywhere: whatever its weights,
# FCN-32s paints the whole image one class. We check it on the untrained head.

# %%
untrained = keras.ops.convert_to_numpy(heads["fcn32s"](test_images[:8]))
spread = float(untrained.std(axis=(1, 2)).max())
print(f"largest spatial std of FCN-32s scores over an image: {spread:.1e}")
assert spread < 1e-4

# %% [markdown]
# A softer measure for the other strides is a naive oracle: average the one-hot true masks
# over `s x s` cells (the class proportions of each cell, a "perfect" coarse prediction),
# upsample bilinearly as the heads do, and take the argmax.

# %%
one_hot = np.eye(len(names), dtype="float32")[test_masks]  # (N, H, W, classes)
oracle = {}
for stride in (32, 16, 8, 4):
    coarse = keras.layers.AveragePooling2D(stride)(one_hot)
    upsampled = keras.layers.UpSampling2D(stride, interpolation="bilinear")(coarse)
    drawn = np.argmax(keras.ops.convert_to_numpy(upsampled), axis=-1)
    oracle[stride] = iou_per_class(confusion(test_masks, drawn, len(names))).mean()
    cells = SIZE[0] // stride
    print(f"class proportions at stride {stride:2d} ({cells}x{cells} cells): "
          f"mean IoU {oracle[stride]:.3f}")
assert oracle[32] < 0.25 and oracle[32] < oracle[16] < oracle[8] < oracle[4]

# %% [markdown]
# At stride 32 the oracle is exactly "background everywhere"; every halving of the stride
# raises it sharply. That is the argument for the skips, and the paper's Table 2 shows it
# on PASCAL VOC 2011 (mean IU: FCN-32s 59.4, FCN-16s 62.4, FCN-8s 62.7), far more strongly
# here because our images are tiny. So we train FCN-8s. (The oracle is naive, not an upper
# bound: a trained network chooses its coarse scores, and we will see it beat the oracle.)

# %% [markdown]
# ## Training
#
# `train` builds the registered model for the data (the mask's classes decide the number of
# output channels), compiles it with per-pixel sparse cross-entropy, the pixel accuracy and
# `MeanIoU`, and flips image and mask together for augmentation (`augment="flip"`). Two
# settings matter on this data (they were found by trying, on 2 CPU cores): blocks wider
# than the tiny config's (4, 8, 8, 16, 16), which cannot tell the three shapes apart in a
# minute, and Adam at `5e-3` instead of `1e-3`. The training curve has a telling plateau:
# the network first separates shape from background (mean IoU near 0.5: background and
# foreground are right, the class is a guess), and only after about a dozen epochs learns
# which shape it is looking at.

# %%
run = train("fcn8s", bundle, os.path.join(RUNS, "fcn8s"), config="tiny", epochs=EPOCHS,
            learning_rate=5e-3, augment="flip", verbose=0, **MODEL)
history = run.history
print(f"{EPOCHS} epochs in {run.seconds:.0f} s; test mean IoU {run.metrics['mean_iou']:.3f}, "
      f"pixel accuracy {run.metrics['accuracy']:.3f}")
print("validation mean IoU per epoch:", np.round(history["val_mean_iou"], 2))

plt.figure(figsize=(6, 3))
plt.plot(history["mean_iou"], label="train")
plt.plot(history["val_mean_iou"], label="validation")
plt.axhline(baseline_miou, color="gray", linestyle=":", label="background everywhere")
plt.xlabel("epoch")
plt.ylabel("mean IoU")
plt.legend()
plt.show()

# %% [markdown]
# ## Evaluation and predictions
#
# Per-class IoU tells which classes are hard. We recompute it from the predicted masks of
# the whole test split (`argmax` over the class scores of each pixel); the mean agrees with
# the `mean_iou` that `train` reported.

# %%
model = run.model
scores = model.predict(test_images, batch_size=64, verbose=0)
predicted = scores.argmax(axis=-1)
matrix = confusion(test_masks, predicted, len(names))
ious = iou_per_class(matrix)
mean_iou, pixel_accuracy = float(ious.mean()), float(np.trace(matrix) / matrix.sum())
print("IoU per class:", {n: round(float(v), 3) for n, v in zip(names, ious)})
print(f"mean IoU {mean_iou:.3f} (background everywhere: {baseline_miou:.3f}), "
      f"pixel accuracy {pixel_accuracy:.3f} (background everywhere: {baseline_accuracy:.3f})")
assert abs(mean_iou - run.metrics["mean_iou"]) < 1e-3
assert mean_iou > baseline_miou + 0.15 and pixel_accuracy > baseline_accuracy

# %%
fig, axes = plt.subplots(4, 6, figsize=(11, 7.6))
for col in range(6):
    rows = {"image": test_images[col], "true mask": PALETTE[test_masks[col]],
            "predicted": PALETTE[predicted[col]],
            "overlay": overlay(test_images[col:col + 1], predicted[col:col + 1])[0]}
    for row, (title, picture) in enumerate(rows.items()):
        axes[row, col].imshow(np.clip(picture, 0, 1))
        axes[row, col].set_xticks([])
        axes[row, col].set_yticks([])
        if col == 0:
            axes[row, col].set_ylabel(title)
plt.suptitle("FCN-8s on held-out shapes (blue: background; orange, green, red: "
             + ", ".join(names[1:]) + ")", fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# With the full budget (20 epochs, about a minute) FCN-8s reaches a mean IoU near 0.78 and
# a pixel accuracy near 0.96; the FAST budget (8 epochs) stops on the plateau, below 0.5.
# The full run even beats the stride-8 oracle (about 0.6): the oracle's coarse scores are
# class *proportions*, while the learned scores also encode, through their size, *where* in
# its cell a boundary lies, and bilinear interpolation of such scores places the boundary
# between cell centres. Still, look at the predicted masks: shapes are found but corners
# are rounded, because an x8 bilinear upsampling cannot draw a sharp corner inside a cell.
# Later architectures (U-Net, DeepLab) fuse even finer features for this reason.

# %% [markdown]
# ## Exercise
#
# Train `fcn32s` instead of `fcn8s`, with exactly the same settings. Before running,
# predict its test mean IoU and pixel accuracy, and what its predicted masks look like.
#
# **Answer:** on 32x32 images FCN-32s scores one 1x1 cell per image, so each predicted mask
# is one class everywhere (as checked above). Painting a whole image "circle" costs far more
# background pixels than it gains, so it paints background: mean IoU stays at about the 0.21
# of "background everywhere" and pixel accuracy at about 0.84, however long it trains.
