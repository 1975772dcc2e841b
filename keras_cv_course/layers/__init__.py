"""Reusable layers and initializers; each is serializable."""

from keras_cv_course.layers.initializers import BilinearUpsampling
from keras_cv_course.layers.sampling import GaussianSampling

__all__ = ["BilinearUpsampling", "GaussianSampling"]
