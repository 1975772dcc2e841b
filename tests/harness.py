"""The shared model test, run over every registered model (DESIGN.md section 4).

For one registry name, ``run_model_checks`` builds the tiny config and checks:

1. the forward pass has the declared output shapes and finite values;
2. one training step under ``MirroredStrategy`` over two logical CPUs
   (``memorize`` for non-parametric models) changes the weights;
3. ``get_config``/``from_config`` rebuilds a model with equal outputs;
4. a ``.keras`` save and ``safe_mode`` load round trip gives equal outputs;
5. export to every supported format passes the parity gate, and each
   unsupported format raises a clear error.
"""

import os

import keras
import numpy as np

from keras_cv_course import applications
from keras_cv_course.errors import KCCError
from keras_cv_course.export import export
from keras_cv_course.training import compile_for_task, get_strategy, load_keras_file


def synthetic_batch(model, info, batch_size=4, seed=0):
    """Random images in [0, 1] and random targets of the model's task."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 1, (batch_size, *model.input_shape[1:])).astype("float32")
    if info.task == "generative":
        return images, None
    classes = model.output_shape[-1]
    if info.task == "classification":
        target_shape = (batch_size,)
    else:
        target_shape = (batch_size, *images.shape[1:3])
    return images, rng.integers(0, classes, target_shape).astype("int32")


def outputs_as_dict(model, images):
    outputs = model(images, training=False)
    if not isinstance(outputs, dict):
        outputs = {"output": outputs}
    return {key: keras.ops.convert_to_numpy(value) for key, value in outputs.items()}


def check_forward(model, images):
    outputs = outputs_as_dict(model, images)
    if isinstance(model.output, dict):
        declared = {key: tensor.shape for key, tensor in model.output.items()}
    else:
        declared = {"output": model.output_shape}
    for key, value in outputs.items():
        expected = (len(images), *tuple(declared[key])[1:])
        assert value.shape == expected, f"{key}: shape {value.shape}, expected {expected}"
        assert np.all(np.isfinite(value)), f"{key}: non-finite outputs"
    return outputs


def check_fit_step_mirrored(info, images, targets):
    strategy = get_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        model = applications.build_tiny(info.name)
        if info.training == "memorize":
            model.memorize(images, targets)
            return
        classes = model.output_shape[-1] if targets is not None else 0
        compile_for_task(model, info, num_classes=classes,
                         optimizer="sgd", learning_rate=0.01, jit_compile=False)
    before = [np.array(w) for w in model.trainable_weights]
    data = images if targets is None else (images, targets)
    history = model.fit(*((data,) if targets is None else data), batch_size=len(images), epochs=1,
                        verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = [np.array(w) for w in model.trainable_weights]
    assert any(not np.array_equal(b, a) for b, a in zip(before, after)), "no weight changed"


def check_config_round_trip(model, images, reference):
    clone = model.__class__.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    for key, value in outputs_as_dict(clone, images).items():
        np.testing.assert_allclose(value, reference[key], atol=1e-6)


def check_save_load(model, images, reference, folder):
    path = os.path.join(folder, "model.keras")
    model.save(path)
    loaded = load_keras_file(path)
    for key, value in outputs_as_dict(loaded, images).items():
        np.testing.assert_allclose(value, reference[key], atol=1e-6)


def check_exports(info, model, images, folder):
    supported = [fmt for fmt in applications.EXPORT_FORMATS if info.supports_export(fmt)]
    manifest = export(model, os.path.join(folder, "export"), formats=supported,
                      golden_batch=images, model_name=info.name)
    for fmt in supported:
        parity = manifest["artifacts"][fmt]["parity"]
        assert max(parity["errors"].values()) <= info.parity_tolerance
    for fmt, reason in info.unsupported_exports.items():
        try:
            export(model, os.path.join(folder, f"never-{fmt}"), formats=[fmt], model_name=info.name)
        except KCCError as error:
            assert reason in str(error)
        else:
            raise AssertionError(f"{info.name}: export to unsupported {fmt} did not raise")
        assert not os.path.exists(os.path.join(folder, f"never-{fmt}"))


def run_model_checks(name, folder):
    """Runs every shared check on registry model ``name``; ``folder`` is scratch space."""
    info = applications.get_info(name)
    keras.utils.set_random_seed(0)
    model = applications.build_tiny(name)
    images, targets = synthetic_batch(model, info)
    if info.training == "memorize":
        model.memorize(images, targets)
    reference = check_forward(model, images)
    check_fit_step_mirrored(info, images, targets)
    check_config_round_trip(model, images, reference)
    check_save_load(model, images, reference, folder)
    check_exports(info, model, images, folder)
