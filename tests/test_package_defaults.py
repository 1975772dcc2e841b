"""What importing keras_cv_course sets up before TensorFlow starts."""

import os
import subprocess
import sys

import pytest

SCRIPT = "import os, keras_cv_course; print(os.environ['TF_ENABLE_ONEDNN_OPTS'])"


@pytest.mark.parametrize("given, expected", [(None, "0"), ("1", "1"), ("0", "0")])
def test_onednn_is_off_unless_the_user_asks_for_it(given, expected):
    env = {key: value for key, value in os.environ.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    if given is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = given
    printed = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                             text=True, check=True).stdout.strip()
    assert printed == expected
