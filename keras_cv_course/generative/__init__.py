"""Tools for judging generative models (GANs, diffusion, PixelCNN, VAE).

``metrics`` holds the sample-quality metrics on feature arrays (FID, KID,
improved precision and recall) and the likelihood metric bits per dimension.
The models themselves live in ``keras_cv_course.applications.generative``.
"""

from keras_cv_course.generative.metrics import (
    bits_per_dimension,
    bits_per_dimension_from_log_likelihood,
    features_of,
    frechet_distance,
    frechet_distance_from_statistics,
    gaussian_statistics,
    kernel_inception_distance,
    pixel_independent_bits_per_dimension,
    polynomial_kernel,
    precision_recall,
    unbiased_mmd2,
)

__all__ = [
    "bits_per_dimension",
    "bits_per_dimension_from_log_likelihood",
    "features_of",
    "frechet_distance",
    "frechet_distance_from_statistics",
    "gaussian_statistics",
    "kernel_inception_distance",
    "pixel_independent_bits_per_dimension",
    "polynomial_kernel",
    "precision_recall",
    "unbiased_mmd2",
]
