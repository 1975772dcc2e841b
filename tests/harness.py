"""The shared model test, run over every registered model (CONTRIBUTING.md: adding a model).

For one registry name, ``run_model_checks`` builds the tiny config and asks
the model's task for the network it serves (``Task.serving_model``: the
model itself, or a GAN's generator, a diffusion model's denoiser) and a
synthetic batch of that network's inputs, then checks:

1. the served network's forward pass has the declared output shapes and
   finite values, and its inputs and outputs match the registry's named specs;
2. one training step (``train_on_batch``: the compiled train function of
   ``fit``, without its dataset plumbing) on the task's training batch
   (``Task.training_batch``) under ``MirroredStrategy`` over two logical CPUs
   (``memorize`` for non-parametric models) changes the weights, and every
   logged value is finite;
3. ``get_config``/``from_config`` rebuilds a model whose served network has
   equal outputs;
4. a ``.keras`` save and ``safe_mode`` load round trip gives equal outputs;
5. export to every supported format passes the parity gate (for each
   network the task serves, ``Task.serving_parts``), and each unsupported
   format raises a clear error.

Steps 2 and 5 cost most of the time (tracing a mirrored train step, three
conversions). Where two registered variants' tiny configs build the very
same network (equal ``get_config()`` but for the model's name: the ViT
sizes, the ResNet depths, the RegNet designs all shrink to one tiny
network), the first variant to claim that architecture runs them, and the
others run steps 1, 3 and 4, which prove that they build that network.

Nothing here depends on the task's name: the task object supplies the batch,
the compile step and the export rules.
"""

import hashlib
import json
import os

import keras
import numpy as np

from keras_cv_course import applications, specs
from keras_cv_course.errors import KCCError
from keras_cv_course.export import export
from keras_cv_course.runs import load_keras_file
from keras_cv_course.tasks import get_task
from keras_cv_course.training import get_strategy


def outputs_as_dict(model, inputs):
    outputs = model(inputs, training=False)
    if not isinstance(outputs, dict):
        outputs = {"output": outputs}
    return {key: keras.ops.convert_to_numpy(value) for key, value in outputs.items()}


def check_specs(info, model):
    """The built model's named inputs and outputs agree with the registry's specs."""
    inputs = specs.specs_of_model_inputs(model)
    shapes = {spec.name: spec.shape for spec in inputs}
    dtypes = {spec.name: spec.dtype for spec in inputs}
    bindings = specs.bind(info.inputs, shapes, dtypes, where=f"{info.name} inputs")
    assert sorted(shapes) == sorted(spec.name for spec in info.inputs), shapes
    outputs = model.output if isinstance(model.output, dict) else {
        name: tensor for name, tensor in zip(_output_names(model), model.outputs)}
    shapes = {name: tuple(tensor.shape[1:]) for name, tensor in outputs.items()}
    dtypes = {name: tensor.dtype for name, tensor in outputs.items()}
    specs.bind(info.outputs, shapes, dtypes, where=f"{info.name} outputs", bindings=bindings)
    assert sorted(shapes) == sorted(spec.name for spec in info.outputs), shapes


def _output_names(model):
    return [tensor._keras_history.operation.name for tensor in model.outputs]


def check_forward(model, inputs):
    outputs = outputs_as_dict(model, inputs)
    if isinstance(model.output, dict):
        declared = {key: tensor.shape for key, tensor in model.output.items()}
    else:
        declared = {"output": model.output_shape}
    batch = len(next(iter(inputs.values()))) if isinstance(inputs, dict) else len(inputs)
    for key, value in outputs.items():
        expected = (batch, *tuple(declared[key])[1:])
        assert value.shape == expected, f"{key}: shape {value.shape}, expected {expected}"
        assert np.all(np.isfinite(value)), f"{key}: non-finite outputs"
    return outputs


def check_fit_step_mirrored(info, batch_size=4):
    strategy = get_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    task = get_task(info.task)
    with strategy.scope():
        model = applications.build_tiny(info.name)
        inputs, targets = task.training_batch(model, batch_size)
        if info.training == "memorize":
            model.memorize(inputs, targets)
            return
        task.compile(model, info, make_optimizer=lambda: keras.optimizers.SGD(0.01),
                     jit_compile=False)
    before = [np.array(w) for w in model.trainable_weights]
    # One step of the compiled train function; each replica takes half the batch.
    logs = model.train_on_batch(inputs, targets, return_dict=True)
    assert logs and all(np.isfinite(value) for value in logs.values()), logs
    after = [np.array(w) for w in model.trainable_weights]
    assert any(not np.array_equal(b, a) for b, a in zip(before, after)), "no weight changed"


def check_config_round_trip(task, model, inputs, reference):
    clone = model.__class__.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    for key, value in outputs_as_dict(task.serving_model(clone), inputs).items():
        np.testing.assert_allclose(value, reference[key], atol=1e-6)


def check_save_load(task, model, inputs, reference, folder):
    path = os.path.join(folder, "model.keras")
    model.save(path)
    loaded = load_keras_file(path)
    for key, value in outputs_as_dict(task.serving_model(loaded), inputs).items():
        np.testing.assert_allclose(value, reference[key], atol=1e-6)


def check_exports(info, model, inputs, folder):
    """Every served network (``Task.serving_parts``) exports and passes the parity gate.

    A one-network model is compared on the harness's batch; a model served as
    several networks (a captioner's encoder and decoder) on each network's
    synthetic inputs, part by part."""
    supported = [fmt for fmt in applications.EXPORT_FORMATS if info.supports_export(fmt)]
    single = len(get_task(info.task).serving_parts(model)) == 1
    manifest = export(model, os.path.join(folder, "export"), formats=supported,
                      golden_batch=inputs if single else None, model_name=info.name)
    for entry in [manifest] if single else list(manifest["parts"].values()):
        for fmt in supported:
            parity = entry["artifacts"][fmt]["parity"]
            assert parity["passed"] and max(parity["errors"].values()) <= info.parity_tolerance
    for fmt, reason in info.unsupported_exports.items():
        try:
            export(model, os.path.join(folder, f"never-{fmt}"), formats=[fmt], model_name=info.name)
        except KCCError as error:
            assert reason in str(error)
        else:
            raise AssertionError(f"{info.name}: export to unsupported {fmt} did not raise")
        assert not os.path.exists(os.path.join(folder, f"never-{fmt}"))


def architecture_fingerprint(model):
    """A hash of the model's config without its name: equal for the same network."""
    config = {key: value for key, value in model.get_config().items() if key != "name"}
    text = json.dumps([type(model).__name__, config], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def run_model_checks(name, folder, claim_architecture=None):
    """Runs every shared check on registry model ``name``; ``folder`` is scratch space.

    Args:
        name: the registry name.
        folder: scratch space for saved files and exports.
        claim_architecture: ``claim(fingerprint, name) -> owner``; when another
            variant owns this very network, training and export are not repeated.
    """
    info = applications.get_info(name)
    task = get_task(info.task)
    keras.utils.set_random_seed(0)
    model = applications.build_tiny(name)
    served = task.serving_model(model)
    check_specs(info, served)
    inputs, targets = task.synthetic_batch(served)
    if info.training == "memorize":
        model.memorize(inputs, targets)
    reference = check_forward(served, inputs)
    check_config_round_trip(task, model, inputs, reference)
    check_save_load(task, model, inputs, reference, folder)
    owner = claim_architecture(architecture_fingerprint(model), name) if claim_architecture \
        else name
    if owner != name:
        print(f"{name}: the tiny network of {owner}; its training and export checks ran there")
        return
    check_fit_step_mirrored(info)
    check_exports(info, model, inputs, folder)
