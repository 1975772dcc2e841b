"""Attribution maps, guided backpropagation, inspection and sanity checks on one
shapes classifier.

One module-scoped fixture trains the tiny ResNet-18 on the ``shapes``
dataset with ``training.train`` (well above the 1/3 chance in four epochs);
the object boxes come from the detection view of the same split (same seed,
same images). Every test reads that model.
"""

import json

import keras
import numpy as np
import pytest

from keras_cv_course.data import load_dataset
from keras_cv_course.errors import KCCError
from keras_cv_course.training import train
from keras_cv_course.understanding import attribution, inspection, sanity
from keras_cv_course.understanding.guided import guided_model, guided_relu
from tests.jax_runner import run_on_jax

EXAMPLES = 32


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """The trained classifier, test images, labels, object boxes and training images."""
    run = train("resnet18", "shapes", str(tmp_path_factory.mktemp("runs") / "resnet18"),
                config="tiny", epochs=4, batch_size=32, seed=0, verbose=0)
    bundle = load_dataset("shapes")
    images, labels = bundle.arrays["test"]
    detection_images, targets = load_dataset("shapes", task="detection").arrays["test"]
    np.testing.assert_array_equal(images, detection_images)
    boxes = targets[:EXAMPLES, 0, :4]
    return run.model, images[:EXAMPLES], labels[:EXAMPLES], boxes, bundle.arrays["train"][0]


@pytest.fixture(scope="module")
def report(shapes, tmp_path_factory):
    model, images, labels, boxes, _ = shapes
    numbers = sanity.sanity_report(model, images, boxes, class_index=labels)
    path = tmp_path_factory.mktemp("sanity") / "sanity_report.json"
    path.write_text(json.dumps(numbers, indent=2))
    print(f"\nsanity report ({path}):\n{json.dumps(numbers, indent=2)}")
    return numbers


def test_classifier_is_well_above_chance(shapes):
    model, images, labels, _, _ = shapes
    accuracy = np.mean(np.argmax(model.predict(images, verbose=0), -1) == labels)
    print(f"test accuracy on {EXAMPLES} images: {accuracy:.3f}")
    assert accuracy > 0.6


def test_every_map_has_one_value_per_pixel(shapes):
    model, images, labels, _, _ = shapes
    few = images[:4]
    for name in ("saliency", "grad_cam", "guided_backprop", "guided_grad_cam", "occlusion"):
        maps = getattr(attribution, name)(model, few)
        assert maps.shape == few.shape[:3], name
        assert np.all(np.isfinite(maps)), name
    maps = attribution.smoothgrad(model, few, class_index=labels[:4], samples=4)
    assert maps.shape == few.shape[:3]


def test_maps_concentrate_inside_the_object_box(report):
    ratios = report["inside_outside_ratio"]
    for name in ("saliency", "grad_cam"):
        assert ratios[name] > 1.0, ratios


def test_guided_grad_cam_concentrates_inside_the_object_box(shapes):
    model, images, labels, boxes, _ = shapes
    maps = attribution.guided_grad_cam(model, images, class_index=labels)
    ratio = sanity.mass_inside_box_ratio(maps, boxes)
    print(f"guided Grad-CAM inside/outside ratio {ratio:.3f}")
    assert ratio > 1.0


def test_cascading_randomisation_decorrelates_saliency_and_grad_cam(report):
    every = report["rank_correlation_all_layers"]
    for name in ("saliency", "grad_cam"):
        assert every[name] < 0.6, every
    assert report["layers_randomised"] > 10


def test_guided_backprop_rank_correlation_is_recorded(report):
    for key in ("rank_correlation_top_layer", "rank_correlation_all_layers"):
        assert np.isfinite(report[key]["guided_backprop"])


def test_cascading_randomisation_leaves_the_model_alone(shapes):
    model, images, _, _, _ = shapes
    before = [w.copy() for w in model.get_weights()]
    steps = sanity.cascading_randomization(model, seed=1)
    name, randomised = next(steps)
    assert name == model.layers[-1].name
    assert randomised is not model
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_guided_clone_does_not_alter_the_original(shapes):
    model, images, labels, _, _ = shapes
    before = [w.copy() for w in model.get_weights()]
    activations = [getattr(layer, "activation", None) for layer in model.layers]
    saliency = attribution.saliency(model, images[:4], class_index=labels[:4])
    clone = guided_model(model)
    assert clone is not model
    np.testing.assert_allclose(clone.predict(images[:4], verbose=0),
                               model.predict(images[:4], verbose=0), rtol=1e-4, atol=1e-5)
    attribution.guided_backprop(model, images[:4], class_index=labels[:4])
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert activations == [getattr(layer, "activation", None) for layer in model.layers]
    np.testing.assert_allclose(
        attribution.saliency(model, images[:4], class_index=labels[:4]), saliency, rtol=1e-5)


def test_guided_clone_swaps_every_kind_of_relu():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.ReLU(name="relu_layer")(x)
    x = keras.layers.Activation("relu", name="relu_activation")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(5, activation="relu", name="dense")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="logits")(x))
    clone = guided_model(model)
    for name in ("conv", "relu_activation", "dense"):
        assert clone.get_layer(name).activation is guided_relu, name
        assert model.get_layer(name).activation is not guided_relu, name
    assert clone.get_layer("relu_layer").activation is guided_relu
    assert isinstance(model.get_layer("relu_layer"), keras.layers.ReLU)
    x = np.random.default_rng(0).uniform(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(clone.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    plain = attribution.saliency(model, x, class_index=0)
    guided = attribution.guided_backprop(model, x, class_index=0)
    assert not np.allclose(plain, guided)


def test_occlusion_of_the_object_lowers_the_probability(shapes):
    model, images, labels, boxes, _ = shapes
    maps = attribution.occlusion(model, images, class_index=labels)
    inside = sanity.box_masks(boxes, images.shape[1:3])
    assert np.mean(maps[inside]) > 0
    assert np.mean(maps[inside]) > np.mean(maps[~inside])


def test_first_layer_filters_and_max_activating_patches(shapes):
    model, images, _, _, _ = shapes
    filters = inspection.first_layer_filters(model)
    _, kernel = inspection.first_conv_layer(model)
    assert filters.shape == (kernel.shape[3], kernel.shape[0], kernel.shape[1], kernel.shape[2])
    assert filters.min() == 0.0 and filters.max() == 1.0
    layer = attribution.last_spatial_layer(model)
    patches, values = inspection.max_activating_patches(model, layer, 0, images, k=5)
    side = inspection.receptive_field(model, layer, images.shape[1:])
    assert patches.shape == (5, side, side, 3)
    assert np.all(np.diff(values) <= 0)


def test_nearest_neighbour_of_a_training_image_is_itself(shapes):
    model, _, _, _, train_images = shapes
    pool = train_images[:64]
    found = inspection.feature_and_pixel_neighbours(model, pool, pool[[3, 10]], k=4)
    assert found["feature"].shape == found["pixel"].shape == (2, 4)
    np.testing.assert_array_equal(found["feature"][:, 0], [3, 10])
    np.testing.assert_array_equal(found["pixel"][:, 0], [3, 10])


def test_pca_embedding_shape():
    features = np.random.default_rng(0).normal(size=(20, 7))
    assert inspection.embed_2d(features, "pca").shape == (20, 2)
    with pytest.raises(KCCError, match="pca"):
        inspection.embed_2d(features, "umap")


def test_rank_correlation_and_box_ratio_on_known_maps():
    maps = np.random.default_rng(0).uniform(size=(2, 8, 8))
    assert sanity.rank_correlation(maps, maps) == pytest.approx(1.0)
    assert sanity.rank_correlation(maps, -maps) == pytest.approx(1.0)  # absolute values
    box = np.zeros((1, 8, 8))
    box[0, 2:6, 2:6] = 1.0
    assert sanity.mass_inside_box_ratio(box, [[0.25, 0.25, 0.75, 0.75]]) > 100


def test_bad_inputs_raise_one_line_errors(shapes):
    model, images, _, _, _ = shapes
    for call in (lambda: attribution.saliency(model, images[0]),
                 lambda: attribution.grad_cam(model, images[:2], class_index=3),
                 lambda: attribution.guided_backprop(model, images[:2], class_index=-1),
                 lambda: attribution.occlusion(model, images[:2], class_index=[0, 1, 2])):
        with pytest.raises(KCCError) as error:
            call()
        assert "\n" not in str(error.value)
        assert "expected" in str(error.value) or "must" in str(error.value)


JAX_SNIPPET = """
import keras
import numpy as np
from keras_cv_course import applications
from keras_cv_course.understanding import attribution
keras.utils.set_random_seed(0)
model = applications.build_tiny("resnet18")
images = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype("float32")
methods = dict(saliency={}, guided_backprop={}, grad_cam={}, guided_grad_cam={},
               smoothgrad=dict(samples=3), occlusion=dict(patch=16, stride=16))
for name, options in methods.items():
    maps = getattr(attribution, name)(model, images, **options)
    assert maps.shape[:1] == (2,) and np.all(np.isfinite(maps)), name
    if "cam" not in name:  # a random network's Grad-CAM may be all zero after its ReLU
        assert np.any(maps != 0), name
    print(name, float(maps.sum()))
"""


def test_every_attribution_method_under_jax():
    stdout = run_on_jax(JAX_SNIPPET, fast_compile=True)
    print(stdout)
    assert all(name in stdout for name in ("saliency", "guided_backprop", "grad_cam",
                                                  "guided_grad_cam", "smoothgrad",
                                                  "occlusion"))
