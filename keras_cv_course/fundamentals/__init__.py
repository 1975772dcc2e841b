"""Course fundamentals written in plain NumPy, to be read next to the Keras versions.

``backprop``: modular forward and backward passes (Linear, ReLU, Conv2D,
MaxPool, BatchNorm, Dropout, softmax cross-entropy) and a numeric gradient
checker.
"""
