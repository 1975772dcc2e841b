"""``python -m keras_cv_course`` runs the ``kcc`` command."""

import sys

from keras_cv_course.cli import main

sys.exit(main())
