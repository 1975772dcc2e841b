"""keras_cv_course: every model of a deep-learning-for-vision course in Keras 3.

Submodules are imported on demand: ``keras_cv_course.applications`` needs
only Keras, while ``data``, ``training`` and ``export`` use TensorFlow.
"""

__version__ = "0.1.0"
