"""The registry: lookup, listing, metadata, and bad builder input."""

import pytest

from keras_cv_course import applications
from keras_cv_course.data import load_dataset
from keras_cv_course.errors import KCCError


def test_unknown_model_lists_the_closest_names():
    with pytest.raises(KCCError, match="unknown model 'resnet19'; closest valid names: resnet"):
        applications.build("resnet19")


def test_list_models_by_task_and_pattern():
    assert applications.list_models(task="segmentation") == ["fcn16s", "fcn32s", "fcn8s"]
    assert applications.list_models(pattern="resnet1*") == [
        "resnet101", "resnet101_v1", "resnet101_v2", "resnet152", "resnet152_v1",
        "resnet152_v2", "resnet18"]
    assert "conv_vae" in applications.list_models(task="generative")


def test_every_entry_carries_its_metadata():
    for name in applications.list_models():
        info = applications.get_info(name)
        assert info.paper and info.params_source and info.description, name
        assert info.tiny_config.get("input_shape"), name
        for fmt, reason in info.unsupported_exports.items():
            assert fmt in applications.EXPORT_FORMATS and reason, name


@pytest.mark.parametrize("shape", [(32, 32), (32, 32, 0), (1,), (4, 4, 3, 1)])
def test_bad_input_shape_is_a_clear_error(shape):
    with pytest.raises(KCCError, match="input_shape must"):
        applications.build("resnet18", input_shape=shape)


def test_channels_that_do_not_exist_are_a_clear_error():
    with pytest.raises(KCCError, match="digits channels must be 1 or 3, got 2"):
        load_dataset("digits", channels=2)


def test_segmentation_input_must_be_a_multiple_of_32():
    with pytest.raises(KCCError, match="multiples of 32"):
        applications.build("fcn8s", input_shape=(40, 40, 3), classes=3)
