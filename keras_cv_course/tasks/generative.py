"""Generative models: learn the images themselves, with no targets.

The data are images alone. A model computes its own loss (a VAE's negative
evidence lower bound), so the task compiles only the optimizer. TensorBoard
shows the inputs, the model's reconstructions and, for models with a
``sample(n)`` method, samples from the prior.
"""

import keras

from keras_cv_course.specs import TensorSpec
from keras_cv_course.tasks.base import Task, image_panel
from keras_cv_course.tasks.registry import register_task


class GenerativeTask(Task):
    name = "generative"
    description = "images without targets; the model's own loss"
    output_specs = (TensorSpec("reconstruction", ("height", "width", "channels"), "float32",
                               "reconstructed images"),)
    headline_metrics = ("loss",)

    def summaries(self, model, inputs, targets=None):
        outputs = model(inputs, training=False)
        panels = {"inputs": image_panel(inputs)}
        if isinstance(outputs, dict) and "reconstruction" in outputs:
            panels["reconstructions"] = keras.ops.convert_to_numpy(outputs["reconstruction"])
        if hasattr(model, "sample"):
            panels["samples"] = model.sample(len(panels["inputs"]), seed=0)
        return panels


register_task(GenerativeTask())
