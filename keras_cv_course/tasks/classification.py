"""Image classification: one class id per image.

Targets are int32 class ids; a model returns class probabilities named
``predictions``. Training uses sparse categorical cross-entropy, or
categorical cross-entropy on mixed one-hot labels when a policy mixes them
(mixup, CutMix). The headline metric is accuracy.
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
    to_rgb,
)
from keras_cv_course.tasks.registry import register_task


class ClassificationTask(Task):
    name = "classification"
    description = "one class per image; accuracy"
    target_specs = (TensorSpec("labels", (), "int32", "class ids"),)
    output_specs = (TensorSpec("predictions", ("classes",), "float32", "class probabilities"),)
    annotations = ("labels",)
    class_annotation = "labels"
    headline_metrics = ("accuracy",)
    augmentation_policies = ("none", "standard", "mixup", "cutmix")
    # imagenet_top1 (%) and its source, pretrained weight names, and the
    # feature levels (C2-C5) that ``applications.backbone`` can return.
    fact_fields = ("imagenet_top1", "top1_source", "pretrained", "feature_levels")
    # A small ResNet-18 (narrow stages, one block each, a 3x3 stem for small
    # images) on the digits upsampled to 16x16: 97% or more in about a minute.
    quickstart = Quickstart(
        model="resnet18", data="digits", image_size=(16, 16), metric="accuracy", target=0.97,
        description="resnet18 (small)", epochs=12, batch_size=64, learning_rate=3e-3,
        overrides=dict(stage_widths=(16, 32, 64, 64), blocks_per_stage=(1, 1, 1, 1),
                       stem_type="small"))

    def build_arguments(self, bundle):
        return {**super().build_arguments(bundle), "classes": bundle.num_classes}

    def loss(self, augmentation=None, model=None):
        if _mixes(augmentation):
            return keras.losses.CategoricalCrossentropy()
        return keras.losses.SparseCategoricalCrossentropy()

    def metrics(self, model, augmentation=None):
        if _mixes(augmentation):
            return [keras.metrics.CategoricalAccuracy(name="accuracy")]
        return ["accuracy"]

    def score(self, outputs, targets):
        predictions = np.asarray(outputs["predictions"])
        return {"accuracy": float(np.mean(predictions.argmax(-1) == np.asarray(targets)))}

    def make_augmentation(self, policy, bundle, seed):
        from keras_cv_course.data import augment

        function = augment.get_policy(policy, num_classes=bundle.num_classes, seed=seed)
        target_map = None
        if function.mixes_labels:
            classes = bundle.num_classes

            def target_map(labels):
                return augment.one_hot_labels(labels, classes)

        return Augmentation(policy, function, target_map, seeded=True)

    def quantized_rule(self):
        """Accuracy may drop by one point at most; top-1 agrees with Keras on 98%."""
        return QuantizedRule("accuracy", max_drop=0.01, min_agreement=0.98)

    def prediction_picture(self, image, outputs, class_names=()):
        """The image, and its five most probable classes."""
        probabilities = first_output(outputs, "predictions")
        top = np.argsort(probabilities)[::-1][:5]
        return to_rgb(image), [f"{class_name(class_names, int(index))}: "
                               f"{probabilities[index]:.1%}" for index in top]


def _mixes(augmentation):
    return augmentation is not None and augmentation.target_map is not None


register_task(ClassificationTask())
