"""Visualising and understanding CNNs: maps, inversions, adversarial examples and art.

Every method takes a Keras model (any registered classifier, or a run's
model) and images, and returns NumPy arrays. They are built on one helper,
``gradients.value_and_gradient``, which differentiates with respect to the
*input* on the TensorFlow and JAX backends.
"""

EXPLAIN_METHODS = {
    "saliency": "saliency",
    "smoothgrad": "smoothgrad",
    "guided": "guided_backprop",
    "gradcam": "grad_cam",
    "guided_gradcam": "guided_grad_cam",
    "occlusion": "occlusion",
}
"""``kcc explain --method`` names and the ``understanding.attribution`` functions behind them
(imported when used, so that ``kcc --help`` does not load Keras)."""
