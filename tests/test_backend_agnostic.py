"""Model code needs neither TensorFlow nor the TensorFlow backend."""

import os

from keras_cv_course import applications
from tests.jax_runner import run_on_jax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_model_builds_under_jax_with_tensorflow_blocked():
    stdout = run_on_jax(os.path.join(ROOT, "tests", "drivers", "jax_without_tensorflow.py"),
                        timeout=900, fast_compile=True)
    assert f"OK {len(applications.list_models())}" in stdout


OWN_TRAIN_STEP_SCRIPT = """
import numpy as np
from keras_cv_course import applications
from keras_cv_course.tasks import get_task
def computes_own_loss(name):
    return getattr(applications.get_info(name).builder, "computes_own_loss", False)
for task_name in ("generative", "conditional_generative", "detection", "instance_segmentation"):
    task = get_task(task_name)
    for name in applications.list_models(task=task_name):
        if "generative" not in task_name and not computes_own_loss(name):
            continue
        model = applications.build_tiny(name)
        task.compile(model)
        inputs, targets = task.training_batch(model, batch_size=4)
        history = model.fit(inputs, targets, epochs=1, verbose=0).history
        assert all(np.isfinite(values[-1]) for values in history.values()), (name, history)
        print("trained", name, sorted(history))
"""


def test_models_with_their_own_loss_train_a_step_under_jax():
    """Generative models and two-stage detectors write their own loss or train step (a GAN's:
    two optimizers); JAX's step has another signature (``train_step(state, data)``), so each
    takes one ``fit`` step there, on its task's training batch."""
    stdout = run_on_jax(OWN_TRAIN_STEP_SCRIPT, timeout=600)
    names = (applications.list_models(task="generative")
             + applications.list_models(task="conditional_generative")
             + ["fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn"])
    assert all(f"trained {name} " in stdout for name in names), stdout
