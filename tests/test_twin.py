"""The tf_keras twin (export.twin) and the three trained methods (export.trained).

1. Every registered classifier and segmenter, in its tiny config, either
   gets a twin whose outputs equal the original's within 1e-5 or raises the
   one-line error of ``REFUSED``; architectures shared by several variants
   are checked once (``tests.harness.architecture_fingerprint``).
2. A graph with two inputs, a layer called twice and a nested functional
   model translates exactly.
3. A small MLP trained on embedded digits goes through QAT, pruning and
   clustering; each .tflite loads in LiteRT, has built-in ops only, keeps the
   model's names and stays within a few points of the float accuracy.
"""

import keras
import numpy as np
import pytest

from keras_cv_course import applications, data
from keras_cv_course.errors import KCCError
from keras_cv_course.export import trained
from keras_cv_course.export.runners import SIGNATURE
from keras_cv_course.export.twin import check_twin, to_tf_keras
from tests.harness import architecture_fingerprint

# Registered models the twin refuses, with the class its error must name.
REFUSED = {"knn": "NearestNeighborVote"}

TASKS = ("classification", "segmentation")
NAMES = sorted({name for task in TASKS for name in applications.list_models(task=task)})


def _batch(model, size=4):
    shape = (size, *tuple(model.input.shape[1:]))
    return np.random.default_rng(0).normal(size=shape).astype("float32")


@pytest.mark.parametrize("name", NAMES)
def test_twin_equals_registered_model(name, claim_architecture):
    keras.utils.set_random_seed(0)
    model = applications.build(name, **applications.get_info(name).config("tiny"))
    if name in REFUSED:
        with pytest.raises(KCCError) as raised:
            to_tf_keras(model)
        message = str(raised.value)
        assert "\n" not in message and REFUSED[name] in message, message
        return
    owner = claim_architecture(architecture_fingerprint(model), name)
    if owner != name:
        pytest.skip(f"the tiny network of {owner}, checked there")
    twin = to_tf_keras(model)
    assert twin.input_names == [tensor.name for tensor in model.inputs]
    assert twin.output_names == [t._keras_history.operation.name for t in model.outputs]
    assert check_twin(model, twin, _batch(model)) <= 1e-5


def test_twin_of_shared_nested_multi_input_graph():
    keras.utils.set_random_seed(1)
    inner_in = keras.Input((6,), name="inner_in")
    inner = keras.Model(inner_in, keras.layers.Dense(5, activation="hard_silu",
                                                     name="inner_dense")(inner_in), name="inner")
    left, right = keras.Input((6,), name="left"), keras.Input((6,), name="right")
    shared = keras.layers.Dense(6, activation="relu", name="shared")
    merged = keras.layers.Concatenate(name="concat")([shared(left), shared(right)])
    total = keras.layers.Add(name="add")([inner(shared(left)), keras.layers.Dense(5)(merged)])
    model = keras.Model([left, right], keras.layers.Softmax(name="probs")(total))
    twin = to_tf_keras(model)
    assert twin.input_names == ["left", "right"] and twin.output_names == ["probs"]
    batch = [np.random.default_rng(2).normal(size=(3, 6)).astype("float32") for _ in range(2)]
    assert check_twin(model, twin, batch) <= 1e-6


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")
def test_untranslatable_config_names_the_layer():
    inputs = keras.Input((4, 8))
    outputs = keras.layers.LayerNormalization(rms_scaling=True, name="rms_norm")(inputs)
    with pytest.raises(KCCError, match=r"^cannot translate layer 'rms_norm' "
                                       r"\(LayerNormalization\) to tf_keras: .*rms_scaling"):
        to_tf_keras(keras.Model(inputs, outputs))


@pytest.fixture(scope="module")
def digits_mlp():
    """An MLP trained for a few epochs on 16x16 digits, with its float test accuracy."""
    keras.utils.set_random_seed(0)
    bundle = data.load_dataset("digits", image_size=(16, 16))
    config = dict(applications.get_info("mlp").config("tiny"), input_shape=(16, 16, 1),
                  hidden_units=64)
    model = applications.build("mlp", **config)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    train = data.pipeline(bundle.train, 64, training=True)
    model.fit(train, epochs=5, verbose=0)
    images, labels = bundle.arrays["test"]
    accuracy = np.mean(np.argmax(model.predict(images, verbose=0), -1) == labels)
    assert accuracy > 0.85
    return model, train, bundle, accuracy


def _litert_accuracy(tflite, images, labels):
    """Loads the bytes in LiteRT, checks ops and names, and scores the test split."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite)
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not any(op.startswith("Flex") or op == "CUSTOM" for op in ops), ops
    assert interpreter.get_signature_list() == {
        SIGNATURE: {"inputs": ["images"], "outputs": ["predictions"]}}
    run = interpreter.get_signature_runner(SIGNATURE)
    outputs = np.concatenate([run(images=images[i:i + 1])["predictions"]
                              for i in range(len(images))])
    return np.mean(np.argmax(outputs, -1) == labels), interpreter


def test_quantization_aware_training(digits_mlp):
    model, train, bundle, float_accuracy = digits_mlp
    images, labels = bundle.arrays["test"]
    tflite, info = trained.quantization_aware(
        model, train, epochs=2, learning_rate=1e-3,
        representative_data=bundle.arrays["train"][0][:64])
    accuracy, interpreter = _litert_accuracy(tflite, images, labels)
    assert accuracy >= float_accuracy - 0.03, (accuracy, float_accuracy)
    dtypes = {d["dtype"] for d in interpreter.get_tensor_details()}
    assert np.int8 in dtypes, dtypes
    assert info["method"] == "qat" and info["twin_error"] <= 1e-5


def test_magnitude_pruning(digits_mlp):
    model, train, bundle, float_accuracy = digits_mlp
    images, labels = bundle.arrays["test"]
    tflite, info = trained.magnitude_pruning(model, train, target_sparsity=0.5, epochs=2,
                                             learning_rate=1e-3)
    accuracy, _ = _litert_accuracy(tflite, images, labels)
    assert accuracy >= float_accuracy - 0.05, (accuracy, float_accuracy)
    assert all(abs(value - 0.5) < 0.01 for value in info["sparsity"].values()), info
    assert info["gzip_ratio"] < 0.8, info


def test_weight_clustering(digits_mlp):
    model, train, bundle, float_accuracy = digits_mlp
    images, labels = bundle.arrays["test"]
    tflite, info = trained.weight_clustering(model, train, clusters=16, epochs=2,
                                             learning_rate=1e-3)
    accuracy, _ = _litert_accuracy(tflite, images, labels)
    assert accuracy >= float_accuracy - 0.05, (accuracy, float_accuracy)
    assert info["unique_values"] and max(info["unique_values"].values()) <= 16, info
    assert info["gzip_ratio"] < 0.5, info


def test_qat_refusal_names_the_layer():
    model = applications.build("vit_tiny_16", **applications.get_info("vit_tiny_16").config(
        "tiny"))
    images = np.zeros((2, *tuple(model.input.shape[1:])), "float32")
    import tensorflow as tf

    train = tf.data.Dataset.from_tensor_slices((images, np.zeros((2,), "int32"))).batch(2)
    with pytest.raises(KCCError, match=r"^quantization-aware training does not support layer "
                                       r"'class_token' \(ClassToken\)"):
        trained.quantization_aware(model, train)


def test_qat_activation_ranges_come_from_the_data(digits_mlp):
    """Before fine-tuning, each activation range is the data's, not tfmot's [-6, 6]."""
    import tensorflow_model_optimization as tfmot
    import tf_keras

    model, _, bundle, float_accuracy = digits_mlp
    twin = to_tf_keras(model)
    quantized = tfmot.quantization.keras.quantize_model(twin)
    samples = bundle.arrays["train"][0][:64]
    ranges = trained.activation_ranges_from_data(quantized, samples, batch_size=16)
    assert sorted(ranges) == ["quant_hidden/post_activation",
                              "quant_predictions/pre_activation"], ranges
    hidden = tf_keras.Model(twin.inputs, twin.get_layer("hidden").output).predict(
        samples, verbose=0)
    kernel, bias = twin.get_layer("predictions").get_weights()
    for key, values in [("quant_hidden/post_activation", hidden),
                        ("quant_predictions/pre_activation", hidden @ kernel + bias)]:
        expected = [min(float(values.min()), 0.0), max(float(values.max()), 0.0)]
        np.testing.assert_allclose(ranges[key], expected, rtol=0.03, atol=0.02)
    images, labels = bundle.arrays["test"]
    calibrated = np.mean(np.argmax(quantized.predict(images, verbose=0), -1) == labels)
    assert calibrated >= float_accuracy - 0.01, (calibrated, float_accuracy)
