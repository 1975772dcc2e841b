"""Reusable layers, activations and initializers; every layer is serializable."""

from keras_cv_course.layers.frozen_batch_norm import FrozenBatchNormalization
from keras_cv_course.layers.initializers import BilinearUpsampling, KaimingInit, XavierInit
from keras_cv_course.layers.normalization import BatchNorm, GroupNorm, InstanceNorm, LayerNorm
from keras_cv_course.layers.regularization import (
    Cutout,
    DropConnect,
    DropPath,
    FractionalMaxPooling2D,
    StochasticDepth,
)
from keras_cv_course.layers.sampling import GaussianSampling
from keras_cv_course.layers.vit_layers import GELU, ClassToken, PositionEmbedding

__all__ = [
    "BatchNorm",
    "BilinearUpsampling",
    "ClassToken",
    "Cutout",
    "DropConnect",
    "DropPath",
    "FractionalMaxPooling2D",
    "FrozenBatchNormalization",
    "GELU",
    "GaussianSampling",
    "GroupNorm",
    "InstanceNorm",
    "KaimingInit",
    "LayerNorm",
    "PositionEmbedding",
    "StochasticDepth",
    "XavierInit",
]
