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
# # Visualising and understanding CNNs: maps, adversarial examples, dreams and style
# Lecture: Visualizing and understanding
#
# Tasks: classification
#
# **The question.** A trained classifier is a function with thousands of weights. What has it
# learned, which pixels does a decision depend on, and how can we be sure a picture of "what
# the network looks at" is about the network and not an artefact of the method? And once we
# can differentiate a class score with respect to the *image*, what else can we do with that
# gradient: fool the network, make it dream, or paint?
#
# Every method here is in `keras_cv_course.understanding` and works for any registered
# classifier on the TensorFlow and JAX backends. They are all built on one primitive,
# `understanding.gradients.value_and_gradient`: the gradient of a scalar with respect to the
# input, not the weights.

# %%
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib.pyplot as plt  # noqa: E402

from keras_cv_course.data import load_dataset  # noqa: E402
from keras_cv_course.training import train  # noqa: E402
from keras_cv_course.understanding import attribution, inspection, sanity  # noqa: E402

FAST = os.environ.get("KCC_FAST") == "1"  # shrinks the budget only; same code path
OUT = os.environ.get("KCC_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="kcc-tutorial-")
RUNS = tempfile.mkdtemp(prefix="11-understanding-", dir=OUT)
print(f"FAST={FAST}, writing into {RUNS}")

# %% [markdown]
# ## A classifier to look into
#
# A small ResNet-18 (the registry's tiny config) learns to name the shape in each 32x32
# `shapes` image: circle, square or triangle. Knowing where the object is (`shapes` also has
# its box) lets us *test* the maps below instead of only admiring them.

# %%
shapes_run = train("resnet18", "shapes", os.path.join(RUNS, "shapes"), config="tiny",
                   epochs=4 if FAST else 10, batch_size=32,
                   verbose=0)
model = shapes_run.model
print(f"shapes test accuracy={shapes_run.metrics['accuracy']:.3f}")
shapes = load_dataset("shapes")
images, labels = shapes.arrays["test"]
boxes = load_dataset("shapes", task="detection").arrays["test"][1][:, 0, :4]

# %% [markdown]
# ## What the first layer learned
#
# The first convolution's kernels act directly on pixels, so they can be drawn as tiny
# images (Krizhevsky et al. 2012 showed AlexNet's oriented edges and colour blobs). Ours
# are 3x3 and trained for minutes, so expect rough edge and colour detectors.

# %%
filters = inspection.first_layer_filters(model)
print(f"first-layer filters: {filters.shape}")
fig, axes = plt.subplots(2, 8, figsize=(8, 2.2))
for axis, kernel in zip(axes.ravel(), filters):
    axis.imshow(kernel)
    axis.axis("off")
plt.show()

# %% [markdown]
# ## Which pixels matter: saliency, guided backprop, Grad-CAM, occlusion
#
# * **Saliency** (Simonyan, Vedaldi and Zisserman 2014): the magnitude of the gradient of
#   the class score with respect to each pixel, maximised over colour channels.
# * **Guided backprop** (Springenberg et al. 2015): the same gradient, but every ReLU lets
#   only positive gradients through at positive inputs. The package clones the model with
#   such ReLUs (`keras.ops.custom_gradient`); the original model is never edited.
# * **Grad-CAM** (Selvaraju et al. 2017): the last feature map's channels weighted by their
#   average gradient, through a ReLU, upsampled to the image.
# * **Occlusion** (Zeiler and Fergus 2014): slide a grey patch and record how much the
#   class probability drops.

# %%
sample = images[:4]
maps = {name: getattr(attribution, name)(model, sample)
        for name in ("saliency", "guided_backprop", "grad_cam", "occlusion")}
fig, axes = plt.subplots(4, 5, figsize=(10, 8))
for row, image in enumerate(sample):
    axes[row, 0].imshow(image)
    for column, (name, values) in enumerate(maps.items(), start=1):
        axes[row, column].imshow(values[row], cmap="inferno")
        axes[row, 0].set_title(shapes.class_names[labels[row]], fontsize=9)
        axes[row, column].set_title(name, fontsize=9)
for axis in axes.ravel():
    axis.axis("off")
plt.show()

# %% [markdown]
# ## Do the maps mean anything? Two sanity checks
#
# Adebayo et al. ("Sanity checks for saliency maps", NeurIPS 2018) showed that some maps
# barely change when the network's weights are replaced by random ones: they show the image,
# not the model. We run two checks on the test images:
#
# 1. **Localisation.** A map should put more of its mass *per unit of area* inside the
#    object's box than outside (ratio > 1).
# 2. **Cascading randomisation.** Re-initialise the layers from the top down and measure the
#    Spearman rank correlation with the trained model's map. A map that depends on the
#    model should decorrelate.

# %%
count = 32 if FAST else 96
report = sanity.sanity_report(model, images[:count], boxes[:count])
print("inside/outside mass ratio:",
      {name: round(value, 2) for name, value in report["inside_outside_ratio"].items()})
print("rank correlation, every layer randomised:",
      {name: round(value, 2) for name, value in report["rank_correlation_all_layers"].items()})
ratio = report["inside_outside_ratio"]
assert ratio["saliency"] > 1 and ratio["grad_cam"] > 1, ratio

# %% [markdown]
# Saliency and Grad-CAM decorrelate as the weights are randomised. Guided backprop, as
# Adebayo et al. found, stays closer to its trained map: it behaves partly like an edge
# detector on the image. That is why a map is not evidence until it passes such a test.
#
# ## Adversarial examples
#
# The same input gradient, followed *against* the true class, changes the prediction with a
# perturbation too small to matter to us. FGSM (Goodfellow, Shlens and Szegedy 2015) takes
# one step of size epsilon along the gradient's sign; PGD (Madry et al. 2018) takes many
# small steps, each projected back into the epsilon-ball. We attack a two-layer network on
# the 8x8 digits, whose pixels are in [0, 1].

# %%
from keras_cv_course.understanding import adversarial  # noqa: E402

digits_run = train("mlp", "digits", os.path.join(RUNS, "digits"), epochs=20,
                   learning_rate=5e-3, hidden_units=64, verbose=0)
digits = digits_run.model
digit_images, digit_labels = load_dataset("digits").arrays["test"]
clean = adversarial.accuracy(digits, digit_images, digit_labels)
fooled = adversarial.adversarial_accuracy(digits, digit_images, digit_labels, "fgsm", 0.1)
stronger = adversarial.adversarial_accuracy(digits, digit_images, digit_labels, "pgd", 0.1)
print(f"digits accuracy: clean={clean:.3f}, FGSM(0.1)={fooled:.3f}, PGD(0.1)={stronger:.3f}")
assert clean >= 0.95 and fooled < 0.5

# %% [markdown]
# Adversarial training (Madry et al. 2018) is a `train` option: every batch's loss is half
# clean and half on PGD examples made against the current weights
# (`kcc train mlp --data digits --adversarial-epsilon 0.1`). The same recipe, trained that way,
# keeps most of its accuracy under the attack; `scripts/robustness_table.py` measures it over
# several radii ([the table](../benchmarks.md)).

# %%
robust = train("mlp", "digits", os.path.join(RUNS, "digits-pgd"), epochs=20,
               learning_rate=5e-3, hidden_units=64, verbose=0, adversarial_epsilon=0.1,
               adversarial_steps=3).model
resisted = adversarial.adversarial_accuracy(robust, digit_images, digit_labels, "fgsm", 0.1)
print(f"PGD-trained: clean={adversarial.accuracy(robust, digit_images, digit_labels):.3f}, "
      f"FGSM(0.1)={resisted:.3f}")
assert resisted > fooled + 0.15

# %% [markdown]
#
# ## Images the network likes: class visualisation and DeepDream
#
# Gradient *ascent* on a class score from noise, with L2 decay, blur and jitter to keep the
# image natural (Simonyan et al. 2014; Yosinski et al. 2015), shows what the network takes
# a "3" to be. DeepDream (Mordvintsev, Olah and Tyka 2015) ascends the activations of a layer
# instead, starting from a real image, over several scales (octaves).

# %%
from keras_cv_course.understanding import dream, synthesis  # noqa: E402

steps = 60 if FAST else 200
drawn = [synthesis.class_visualisation(digits, digit, steps=steps) for digit in (3, 7)]
dreamed = dream.deep_dream(digits, digit_images[0], ["hidden"], octaves=2,
                           steps_per_octave=10 if FAST else 30)
fig, axes = plt.subplots(1, 4, figsize=(8, 2.2))
for axis, image, title in zip(axes, [*drawn, digit_images[0], dreamed],
                              ["class 3", "class 7", "a test digit", "DeepDream"]):
    axis.imshow(image[..., 0], cmap="gray")
    axis.set_title(title, fontsize=9)
    axis.axis("off")
plt.show()
print("probability of the drawn class:",
      [round(float(digits.predict(image[None], verbose=0)[0, digit]), 3)
       for image, digit in zip(drawn, (3, 7))])

# %% [markdown]
# ## Style transfer
#
# Gatys, Ecker and Bethge (2016) describe an image's *style* by the Gram matrices of a VGG's
# feature maps (which features fire together, wherever they are) and its *content* by the
# features themselves, then optimise the pixels of an image to match one photo's content and
# another's style. Johnson, Alahi and Fei-Fei (2016) train a feed-forward network to do it
# in one pass; it has exactly 1,679,235 parameters and exports to TFLite and ONNX.
#
# ImageNet weights cannot be downloaded everywhere. `weights="auto"` uses them when the Keras
# cache has them, and otherwise a VGG-16 this project trains once on its `shapes` images
# (a few minutes; `describe` says which). This page's quick test run uses random weights:
# the losses still fall, but the pictures are not the papers'.

# %%
from keras_cv_course.understanding import style, style_features, style_network  # noqa: E402

size = 32 if FAST else 96
extractor, describe = style_features.perceptual_extractor(weights="random" if FAST else "auto")
print(describe)
photo = style_network.content_photos(size)[0]
pattern = style_network.style_image(size)
stylized, history = style.stylize_by_optimisation(photo, pattern, extractor,
                                                  steps=8 if FAST else 60)
print(f"Gatys loss: {history[0]:.2f} -> {history[-1]:.2f}")
network = style_network.transformer_net()
print(f"feed-forward style network: {network.count_params():,} parameters")
fig, axes = plt.subplots(1, 3, figsize=(7, 2.5))
for axis, image, title in zip(axes, (photo, pattern, stylized), ("content", "style", "result")):
    axis.imshow(image)
    axis.set_title(title, fontsize=9)
    axis.axis("off")
plt.show()

# %% [markdown]
# The command line does the same for your own files: `kcc explain RUN IMAGE --method gradcam
# --out maps`, `kcc dream RUN IMAGE --out dream.png`, and `kcc stylize PHOTO --style STYLE
# --out out.png` (or `--network net.keras` for a trained feed-forward network).
#
# ## Exercise
#
# Compute `attribution.smoothgrad` for the first four `shapes` test images with
# `noise_level=0.0` and then `noise_level=0.2`, and compare both with `saliency`. Before
# running, predict which of the two SmoothGrad maps equals the saliency map, and what the
# noise does to the other.
#
# **Answer:** with no noise every sample is the image itself, so SmoothGrad is the average of
# identical gradients: exactly the saliency map. With noise it averages gradients at nearby
# images. The speckle of single-pixel gradients, which changes from sample to sample, averages
# out, while what is consistent (the object's outline) remains, so the map is smoother and
# its mass sits more inside the box (Smilkov et al. 2017).
