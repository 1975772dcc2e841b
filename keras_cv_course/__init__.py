"""keras_cv_course: every model of a deep-learning-for-vision course in Keras 3.

Submodules are imported on demand: ``keras_cv_course.applications`` needs
only Keras, while ``data``, ``training`` and ``export`` use TensorFlow.
"""

import os

# TensorFlow's oneDNN CPU kernels are off unless asked for
# (TF_ENABLE_ONEDNN_OPTS=1). In TensorFlow 2.21 on CPUs with AMX and AVX512-FP16
# they corrupt memory in the input gradient of a 1x1, stride-2 convolution at
# batch size 1 (a ResNet's projection shortcut under saliency or DeepDream), and
# the plain kernels trained the quickstart FCN faster here (docs/benchmarks.md).
# TensorFlow reads the variable once, so it must be set before it is imported.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__version__ = "0.1.0"
