"""Object detectors (task ``detection``), built on the parts in ``keras_cv_course.detection``."""
