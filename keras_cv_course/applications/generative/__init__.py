"""generative models."""
from keras_cv_course.applications.generative import pixelcnn  # noqa: F401
