"""A task that the package does not know: regress the centre of a shape.

It is the worked example of CONTRIBUTING.md ("Adding a task"), and the proof
that the task contract is an extension point: this file subclasses
``tasks.Task``, registers the task and one model from outside the package,
and ``tests/test_task_contract.py`` runs it through the harness, ``train``,
``evaluate``, ``export`` and the CLI without a line of package code changed.

The targets are the ``(y, x)`` centre of the first shape's box in a
``shapes`` image, normalised to [0, 1]; the model's output ``centre`` is
that point, and its serving signature adds ``centre_pixels``, the same point
in pixels, computed inside the exported graph.
"""

import keras
import numpy as np
from keras import ops

from keras_cv_course import applications, tasks
from keras_cv_course.specs import TensorSpec

TASK_NAME = "centre_regression"
MODEL_NAME = "toy_centre_net"


class CentreTask(tasks.Task):
    name = TASK_NAME
    description = "the (y, x) centre of the first shape; mean absolute error"
    target_specs = (TensorSpec("centres", (2,), "float32", "(y, x) in [0, 1]"),)
    output_specs = (TensorSpec("centre", (2,), "float32", "predicted (y, x) in [0, 1]"),)
    annotations = ("boxes",)  # shapes provides boxes; the task makes centres from them
    headline_metrics = ("mean_absolute_error",)
    augmentation_policies = ("none", "flip")

    def targets_from(self, annotations):
        first = np.asarray(annotations["boxes"])[:, 0]  # (N, 4): ymin, xmin, ymax, xmax
        centres = (first[:, :2] + first[:, 2:]) / 2.0
        return centres.astype("float32")

    def loss(self, augmentation=None, model=None):
        return keras.losses.MeanSquaredError()

    def metrics(self, model, augmentation=None):
        return [keras.metrics.MeanAbsoluteError(name="mean_absolute_error")]

    def make_augmentation(self, policy, bundle, seed):
        generator = keras.random.SeedGenerator(seed)

        def flip(images, centres):
            flipped = keras.random.uniform((ops.shape(images)[0], 1), seed=generator) < 0.5
            images = ops.where(flipped[:, :, None, None], ops.flip(images, axis=2), images)
            mirrored = ops.stack([centres[:, 0], 1.0 - centres[:, 1]], axis=-1)
            return images, ops.where(flipped, mirrored, centres)

        return tasks.Augmentation(policy, flip)

    def summaries(self, model, inputs, targets=None):
        """Each input with its predicted centre painted white."""
        images = np.array(inputs, dtype="float32")
        centres = keras.ops.convert_to_numpy(model(inputs, training=False))
        rows = np.clip((centres[:, 0] * images.shape[1]).astype(int), 0, images.shape[1] - 1)
        cols = np.clip((centres[:, 1] * images.shape[2]).astype(int), 0, images.shape[2] - 1)
        images[np.arange(len(images)), rows, cols] = 1.0
        return {"predicted_centres": images}

    def serving_outputs(self, model, outputs, **options):
        height, width = model.input_shape[1:3]
        scale = ops.convert_to_tensor([float(height), float(width)])
        return {**outputs, "centre_pixels": outputs["centre"] * scale}


def centre_net(input_shape=(32, 32, 3), width=8, hidden=32, name=MODEL_NAME):
    """Two strided convolutions, then a small MLP to a sigmoid (y, x)."""
    image = keras.Input(shape=input_shape, name="images")
    x = keras.layers.Conv2D(width, 3, strides=2, padding="same", activation="relu",
                            name="conv1")(image)
    x = keras.layers.Conv2D(2 * width, 3, strides=2, padding="same", activation="relu",
                            name="conv2")(x)
    x = keras.layers.Flatten(name="flatten")(x)  # keeps where things are
    x = keras.layers.Dense(hidden, activation="relu", name="hidden")(x)
    centre = keras.layers.Dense(2, activation="sigmoid", name="centre")(x)
    return keras.Model(image, centre, name=name)


def register_toy():
    """Registers the task and its model; returns a function that removes both."""
    tasks.register_task(CentreTask())
    applications.register_family(
        "toy_centre", [dict(name=MODEL_NAME, builder=centre_net,
                            description="conv-MLP regressing a shape's centre")],
        task=TASK_NAME, paper="(a test model)", reference_params=None,
        params_source="no reference", tiny_config=dict(input_shape=(32, 32, 3), width=4,
                                                       hidden=8))

    def remove():
        applications.unregister(MODEL_NAME)
        tasks.unregister_task(TASK_NAME)

    return remove
