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


def _builder(**kwargs):
    return applications.get_info("mlp").builder(**kwargs)


def test_register_family_registers_a_table_of_records():
    infos = applications.register_family(
        "test_family", [dict(name="test_a", builder=_builder, imagenet_top1=50.0),
                        dict(name="test_b", builder=_builder, tiny_config={"hidden_units": 2})],
        task="classification", paper="-", reference_params=None, params_source="-",
        tiny_config={"hidden_units": 4})
    try:
        assert [info.name for info in infos] == ["test_a", "test_b"]
        assert infos[0].family == "test_family" and infos[0].tiny_config == {"hidden_units": 4}
        assert infos[1].tiny_config == {"hidden_units": 2}  # a record's own field wins
        assert infos[0].fact("imagenet_top1") == 50.0 and infos[1].fact("imagenet_top1") is None
        assert [spec.name for spec in infos[0].outputs] == ["predictions"]  # the task's default
    finally:
        for name in ("test_a", "test_b"):
            applications.unregister(name)


def test_task_facts_belong_to_their_task():
    with pytest.raises(KCCError, match=r"unknown fields \['imagenet_top1'\] for task "
                                       r"'segmentation'"):
        applications.register("test_seg", _builder, task="segmentation", family="x", paper="-",
                               reference_params=None, params_source="-", imagenet_top1=1.0)
    with pytest.raises(KCCError, match="unknown task 'detektion'"):
        applications.register("test_det", _builder, task="detektion", family="x", paper="-",
                               reference_params=None, params_source="-")
    assert "test_seg" not in applications.list_models()


def test_every_model_declares_named_inputs_and_outputs():
    for name in applications.list_models():
        info = applications.get_info(name)
        assert info.inputs and info.outputs, name
    vae = applications.get_info("conv_vae")  # what is served: the decoder
    assert [spec.name for spec in vae.inputs] == ["latent"]
    assert [spec.name for spec in vae.outputs] == ["images"]
    diffusion = applications.get_info("ddpm_unet")  # the denoiser
    assert [spec.name for spec in diffusion.inputs] == ["noisy_images", "timesteps"]


def test_tiny_and_full_configs():
    info = applications.get_info("fcn8s")
    assert info.config("tiny")["fc_width"] == 16 and info.config("full")["classes"] == 21
    with pytest.raises(KCCError, match="unknown config 'small'"):
        info.config("small")


def test_one_way_to_register():
    """Model files register through one register_family call over a VARIANTS table."""
    import pathlib

    root = pathlib.Path(applications.__file__).parent
    for path in root.glob("*/*.py"):
        text = path.read_text(encoding="utf-8")
        if "applications.registry import" not in text or path.name == "__init__.py":
            continue  # registers no model (serialisable classes only, or a package file)
        assert text.count("register_family(") == 1 and "register(" not in text.replace(
            "register_family(", ""), path.name


def test_inputs_of_any_rank():
    from keras_cv_course.applications.classification.common import image_input

    video = image_input(input_shape=(8, 32, 32, 3), rank=4, name="frames")
    assert tuple(video.shape) == (None, 8, 32, 32, 3) and video.name == "frames"
    cloud = image_input(input_shape=(None, 3), rank=2, name="points")
    assert tuple(cloud.shape) == (None, None, 3)
    with pytest.raises(KCCError, match=r"input_shape must be \(time, height, width, channels\)"):
        image_input(input_shape=(32, 32, 3), rank=4)
    with pytest.raises(KCCError, match="input_shape time, height and width must be at least 4"):
        image_input(input_shape=(2, 32, 32, 3), rank=4, min_size=4)
