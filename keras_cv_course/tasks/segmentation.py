"""Semantic segmentation: one class id per pixel.

Targets are int32 masks with the images' height and width; a model returns
per-pixel class probabilities named ``segmentation``. The headline metric is
the mean intersection over union over classes; pixel accuracy comes second.
A flip moves the mask with its image.
"""

import keras
import numpy as np

from keras_cv_course.specs import TensorSpec
from keras_cv_course.tasks.base import Augmentation, Task, image_panel
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

    def build_arguments(self, bundle):
        return {**super().build_arguments(bundle), "classes": bundle.num_classes}

    def loss(self, augmentation=None):
        return keras.losses.SparseCategoricalCrossentropy()

    def metrics(self, model, augmentation=None):
        classes = int(model.outputs[0].shape[-1])  # the model's classes are the data's
        return ["accuracy", keras.metrics.MeanIoU(classes, sparse_y_pred=False, name="mean_iou")]

    def make_augmentation(self, policy, bundle, seed):
        from keras_cv_course.data import augment

        generator = keras.random.SeedGenerator(seed)

        def flip(images, masks):
            return augment.flip_with_masks(images, masks, seed=generator)

        return Augmentation(policy, flip)

    def summaries(self, model, inputs):
        """The inputs, the predicted class maps as gray levels, and both overlaid."""
        scores = keras.ops.convert_to_numpy(model(inputs, training=False))
        classes = np.argmax(scores, axis=-1)
        images = image_panel(inputs)
        gray = (classes[..., None] / max(1, scores.shape[-1] - 1)).astype("float32")
        return {"inputs": images, "predicted_masks": gray, "overlays": overlay(images, classes)}


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
