"""Every registered model through the shared harness, in its tiny config."""

import pytest

from keras_cv_course import applications
from tests.harness import run_model_checks


@pytest.mark.parametrize("name", applications.list_models())
def test_registered_model(name, tmp_path, claim_architecture):
    run_model_checks(name, str(tmp_path), claim_architecture)
