"""Semantic segmentation: one class id per pixel.

Targets are int32 masks with the images' height and width; a model returns
per-pixel class probabilities named ``segmentation``. The headline metric is
the mean intersection over union over classes; pixel accuracy comes second.
A flip moves the mask with its image.
"""

import keras
import numpy as np

from keras_cv_course.specs import TensorSpec
from keras_cv_course.tasks.base import (
    Augmentation,
    QuantizedRule,
    Quickstart,
    Task,
    class_name,
    first_output,
    image_panel,
    to_rgb,
)
from keras_cv_course.tasks.registry import register_task


class SegmentationTask(Task):
    name = "segmentation"
    description = "one class per pixel; mean IoU"
    target_specs = (TensorSpec("masks", ("height", "width"), "int32", "class id per pixel"),)
    output_specs = (TensorSpec("segmentation", ("height", "width", "classes"), "float32",
                               "per-pixel class probabilities"),)
    annotations = ("semantic_masks",)
    class_annotation = "semantic_masks"
    headline_metrics = ("mean_iou", "accuracy")
    augmentation_policies = ("none", "flip")
    # FCN-8s, tiny config with wider backbone stages, on the embedded shapes: mean IoU
    # about 0.78 after 20 epochs (under a minute of training on 2 CPU cores).
    quickstart = Quickstart(
        model="fcn8s", data="shapes", image_size=(32, 32), metric="mean_iou", target=0.6,
        description="fcn8s (tiny, wider backbone and fc6/fc7)", config="tiny", epochs=20,
        batch_size=32, learning_rate=5e-3, augment="flip",
        overrides=dict(backbone_widths=(16, 32, 32, 64, 64), fc_width=64))

    def build_arguments(self, bundle):
        return {**super().build_arguments(bundle), "classes": bundle.num_classes}

    def loss(self, augmentation=None, model=None):
        return keras.losses.SparseCategoricalCrossentropy()

    def metrics(self, model, augmentation=None):
        classes = int(model.outputs[0].shape[-1])  # the model's classes are the data's
        return ["accuracy", keras.metrics.MeanIoU(classes, sparse_y_pred=False, name="mean_iou")]

    def score(self, outputs, targets):
        scores = np.asarray(outputs["segmentation"])
        return segmentation_scores(scores.argmax(-1), np.asarray(targets), scores.shape[-1])

    def make_augmentation(self, policy, bundle, seed):
        from keras_cv_course.data import augment

        generator = keras.random.SeedGenerator(seed)

        def flip(images, masks, seed=generator):
            return augment.flip_with_masks(images, masks, seed=seed)

        return Augmentation(policy, flip, seeded=True)

    def summaries(self, model, inputs, targets=None):
        """The inputs, the predicted class maps as gray levels, and both overlaid."""
        scores = keras.ops.convert_to_numpy(model(inputs, training=False))
        classes = np.argmax(scores, axis=-1)
        images = image_panel(inputs)
        gray = (classes[..., None] / max(1, scores.shape[-1] - 1)).astype("float32")
        return {"inputs": images, "predicted_masks": gray, "overlays": overlay(images, classes)}

    def quantized_rule(self):
        """Mean IoU may drop by two points at most; 95% of pixels keep Keras' class."""
        return QuantizedRule("mean_iou", max_drop=0.02, min_agreement=0.95)

    def prediction_picture(self, image, outputs, class_names=()):
        """The image overlaid with its class map, and the share of pixels of each class."""
        classes = first_output(outputs, "segmentation").argmax(-1)
        counts = np.bincount(classes.ravel(), minlength=len(class_names))
        lines = [f"{class_name(class_names, int(index))}: {counts[index] / classes.size:.1%} "
                 f"of pixels" for index in np.argsort(counts)[::-1] if counts[index]][:5]
        return overlay(to_rgb(image)[None], classes[None])[0], lines


def segmentation_scores(predicted, true, classes):
    """Mean IoU and pixel accuracy of class maps, as Keras' ``MeanIoU`` counts them.

    IoU of a class is TP / (TP + FP + FN) over every pixel of the split; the
    mean skips classes that appear in neither the truth nor the prediction.
    """
    confusion = np.bincount(true.ravel() * classes + predicted.ravel(),
                            minlength=classes * classes).reshape(classes, classes)
    hits = np.diag(confusion).astype("float64")
    union = confusion.sum(0) + confusion.sum(1) - hits
    present = union > 0
    return {"mean_iou": float(np.mean(hits[present] / union[present])),
            "accuracy": float(hits.sum() / confusion.sum())}


# Colours of classes 0, 1, 2, ... in overlays (repeating after ten).
PALETTE = np.array([[0.12, 0.47, 0.71], [1.0, 0.5, 0.05], [0.17, 0.63, 0.17], [0.84, 0.15, 0.16],
                    [0.58, 0.4, 0.74], [0.55, 0.34, 0.29], [0.89, 0.47, 0.76], [0.5, 0.5, 0.5],
                    [0.74, 0.74, 0.13], [0.09, 0.75, 0.81]], dtype="float32")


def overlay(images, classes, alpha=0.45):
    """Tints each pixel of ``images`` (N, H, W, C) with the colour of its class (N, H, W)."""
    rgb = images if images.shape[-1] == 3 else np.repeat(images[..., :1], 3, axis=-1)
    colours = PALETTE[classes % len(PALETTE)]
    return ((1.0 - alpha) * rgb + alpha * colours).astype("float32")


register_task(SegmentationTask())
