"""Every full-size model has exactly its reference's parameter count.

Counts follow the package convention: all weights except BatchNorm moving
statistics (torchvision's and timm's convention). References given to a
paper's precision ("134M") are compared at that precision.
"""

import pytest

from keras_cv_course import applications
from keras_cv_course.applications.catalog import reference_matches

WITH_REFERENCE = [name for name in applications.list_models()
                  if applications.get_info(name).reference_params is not None]


@pytest.mark.parametrize("name", WITH_REFERENCE)
def test_full_size_parameter_count_equals_reference(name, full_size_stats):
    info = applications.get_info(name)
    ours = full_size_stats(name)["params"]
    assert reference_matches(info, ours), (
        f"{name}: {ours:,} parameters, reference {info.reference_params:,} ({info.params_source})")


def test_exact_references_are_exact():
    for name in WITH_REFERENCE:
        info = applications.get_info(name)
        assert info.params_precision == 1 or "paper" in info.params_source, name


def test_parameter_count_excludes_only_batchnorm_statistics():
    model = applications.build_tiny("resnet18")
    statistics = sum(int(w.numpy().size) for w in model.weights
                     if w.path.endswith(("moving_mean", "moving_variance")))
    assert statistics > 0
    assert applications.parameter_count(model) == model.count_params() - statistics


def test_parameter_count_of_a_single_layer():
    """Tutorial 05 counts the parameters held in Dense layers one layer at a time."""
    import keras

    from keras_cv_course.layers.frozen_batch_norm import FrozenBatchNormalization

    dense = keras.layers.Dense(3)
    dense.build((None, 4))
    norm = keras.layers.BatchNormalization()
    norm.build((None, 4))
    frozen = FrozenBatchNormalization()
    frozen.build((None, 4))
    assert applications.parameter_count(dense) == 4 * 3 + 3
    assert applications.parameter_count(norm) == 2 * 4
    assert applications.parameter_count(frozen) == 0
