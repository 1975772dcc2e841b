"""The task contract: the one class whose methods the rest of the package calls.

A task says what its data and models look like and how to train, evaluate,
watch and export them. ``Task`` holds the defaults; each task module
subclasses it and overrides only what differs. The methods, in the order a
model meets them:

=====================  ==========================================================
data                   ``input_specs``, ``target_specs``, ``annotations``,
                       ``classes_from`` (the classes: names, or a caption vocabulary),
                       ``examples_from`` (inputs and targets of a split),
                       ``targets_from``, ``check_arrays``, ``validate``,
                       ``check_data_task``
registry               ``owns`` (which registered models are this task's)
building               ``build_arguments`` (what the data decides: input shape,
                       class count), ``output_specs`` (the served network's outputs),
                       ``training_inputs`` (what ``fit`` feeds the model)
the test harness       ``synthetic_batch`` (inputs of the served network),
                       ``training_batch`` (a batch ``fit`` takes)
training               ``compile`` (``loss``, ``metrics``; ``make_optimizer`` can
                       be called once per optimizer), ``augmentation``
watching               ``summaries`` (images for TensorBoard)
evaluation             ``evaluate``, ``headline_metrics``, ``score`` (the headline
                       metrics of any outputs: an exported artifact's, too)
the main job           ``quickstart`` (the recipe ``kcc quickstart --task`` runs)
export                 ``serving_model`` (the network that is exported),
                       ``serving_parts`` (several networks: an image encoder and
                       a one-step decoder), ``export_record`` (what the manifest
                       must say to use them), ``pipeline`` (how the parts run
                       together on images: a decode loop),
                       ``serving_outputs`` (postprocessing inside the serving
                       graph), ``compare`` (the parity rule of each output)
=====================  ==========================================================

``CONTRIBUTING.md`` shows a whole task written against this contract. Model
and task code use Keras and NumPy only; TensorFlow is imported lazily, where a
method needs ``tf.data``.
"""

import dataclasses
from typing import Callable

import keras
import numpy as np

from keras_cv_course import specs
from keras_cv_course.errors import KCCError

DEFAULT_PART = "model"
"""The name of the served network of a task with one (``Task.serving_parts``)."""
IMAGES = specs.TensorSpec("images", ("height", "width", "channels"), "float32",
                          "images, float pixels in [0, 1]")


@dataclasses.dataclass
class Augmentation:
    """A task's batch augmentation, as the data pipeline applies it.

    Attributes:
        name: the policy's name, recorded in the run's config.
        function: ``(inputs, targets) -> (inputs, targets)`` on a training
            batch (``inputs`` alone for tasks without targets).
        target_map: applied to the targets of *every* batch, training and
            evaluation, before ``function``; e.g. one-hot labels for policies
            that mix labels. ``None`` leaves targets as they are.
        seeded: ``function`` takes a ``seed=`` keyword for its random draws.
            The training stream passes ``data.augment.BatchSeed(seed, step)``,
            so the draws of each batch depend on the run's seed and the
            batch's step alone, and a resumed run draws what an uninterrupted
            one drew. Without it, the function draws from its own generator.
    """

    name: str
    function: Callable
    target_map: Callable | None = None
    seeded: bool = False

    def __call__(self, *batch, seed=None):
        if self.seeded and seed is not None:
            return self.function(*batch, seed=seed)
        return self.function(*batch)


@dataclasses.dataclass(frozen=True)
class Quickstart:
    """A task's main job on embedded data: what ``kcc quickstart --task`` runs.

    It trains ``model`` on ``data``, exports it to every format, scores the
    Keras model and each artifact on the test split with ``metric``, and
    passes when every score reaches ``target`` and all agree within
    ``max_spread``.
    """

    model: str
    data: str
    image_size: tuple
    metric: str
    target: float
    description: str
    config: str = "full"
    overrides: dict = dataclasses.field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    augment: str | None = None
    max_spread: float = 0.005


class Task:
    """The defaults of every task; subclasses override what differs.

    Class attributes:
        name: registry name of the task.
        description: one line for tables.
        input_specs: the inputs a model of this task takes (``TensorSpec``
            objects; shapes use symbols such as ``"height"``).
        target_specs: the targets of one example; empty when the model
            learns from its inputs alone.
        output_specs: the outputs of a typical model of this task; a
            registered model may declare others.
        annotations: the dataset annotations that targets are made from,
            e.g. ``("labels",)``; a dataset serves this task when it has them.
        class_annotation: the annotation whose class names are the task's
            classes, or ``None``.
        headline_metrics: the metrics that summarise a model, best first.
        augmentation_policies: names ``augmentation`` accepts.
        fact_fields: registry fields only this task's models carry (e.g. the
            ImageNet top-1 accuracy of a classifier).
        quickstart: the task's ``Quickstart`` recipe, or ``None``.
        serving_batch_size: the exported signature's batch size; ``None``
            leaves it free. A detector's serving graph runs NMS one image at
            a time, so it exports at batch 1, and the runners feed it one
            example per call.
        serving_options: keyword arguments ``serving_outputs`` takes (the
            settings of the serving graph, e.g. a detector's ``max_detections``).
    """

    name = "generic"
    description = "any Keras model; identity serving and default parity rules"
    input_specs = (IMAGES,)
    target_specs = ()
    output_specs = ()
    annotations = ()
    class_annotation = None
    headline_metrics = ("loss",)
    augmentation_policies = ("none",)
    fact_fields = ()
    quickstart = None
    serving_batch_size = None
    serving_options = ()

    # -- data ---------------------------------------------------------------------------

    def classes_from(self, known_names, read_training_annotations):
        """The task's class names, decided once per dataset.

        Args:
            known_names: ``{annotation name: class names}`` that the dataset
                declares (``shapes``: the shape names of ``labels``).
            read_training_annotations: a zero-argument callable returning the
                training split's annotations (``{name: array}``); called only
                by tasks whose classes are learned from the data (a
                captioner's vocabulary).

        Returns:
            A tuple of names; by default those of ``class_annotation``.
        """
        return tuple(known_names.get(self.class_annotation, ()))

    def examples_from(self, images, annotations, class_names):
        """The ``(inputs, targets)`` of a split from its images and annotations.

        By default the images are the inputs and ``targets_from`` makes the
        targets; a task with more inputs (a captioner's input tokens) or
        targets that need the classes (a caption's token ids) overrides it.
        """
        return images, self.targets_from(annotations)

    def targets_from(self, annotations):
        """Makes the targets of a batch of examples from a dataset's annotations.

        Args:
            annotations: ``{annotation name: array}`` holding at least
                ``self.annotations``.

        Returns:
            One array for one target spec, a dict keyed by target names for
            several, or ``None`` for tasks without targets.
        """
        values = [annotations[key] for key in self.annotations]
        return self.pack_targets(values)

    def pack_targets(self, values):
        """Arrays in ``target_specs`` order -> the element structure of the targets."""
        if not self.target_specs:
            return None
        if len(self.target_specs) == 1:
            return values[0]
        return {spec.name: value for spec, value in zip(self.target_specs, values)}

    def check_arrays(self, inputs, targets, where="arrays"):
        """Checks in-memory data against the task's specs and converts dtypes.

        Args:
            inputs: an array (one input) or ``{input name: array}``.
            targets: an array, a dict, or ``None``.
            where: what is checked, e.g. ``"digits train"``, for errors.

        Returns:
            ``(inputs, targets)`` in the same structure, cast to the specs' dtypes.

        Raises:
            KCCError: one line naming the tensor, the expected and the actual shape.
        """
        named = {**_named(inputs, self.input_specs, where, "inputs"),
                 **_named(targets, self.target_specs, where, "targets")}
        for name, value in named.items():
            if np.asarray(value).size == 0:
                raise KCCError(f"{where}: {name!r} is empty")
        converted, _ = specs.check_arrays(named, self.input_specs + self.target_specs, where)
        inputs = _structure([converted[s.name] for s in self.input_specs], self.input_specs)
        return inputs, self.pack_targets([converted[s.name] for s in self.target_specs])

    def check_data_task(self, bundle, model_name):
        """Fails with one line when ``bundle`` was loaded for another task."""
        if bundle.task != self.name:
            raise KCCError(f"model {model_name!r} needs {self.name} data, "
                           f"got {bundle.task} data")

    def owns(self, info):
        """True when the registered model ``info`` (a ``ModelInfo``) is one of this task's."""
        return info.task == self.name

    def validate(self, bundle):
        """Checks a ``DataBundle``'s element specs against the task's; one-line error."""
        found = {spec.name: spec for spec in bundle.input_specs + bundle.target_specs}
        specs.bind(self.input_specs + self.target_specs,
                   {name: spec.shape for name, spec in found.items()},
                   {name: spec.dtype for name, spec in found.items()},
                   where=f"dataset {bundle.name!r} for task {self.name!r}")

    # -- building -----------------------------------------------------------------------

    def build_arguments(self, bundle):
        """Builder arguments that the data decides: here, the input shape."""
        return {"input_shape": tuple(bundle.input_specs[0].shape)}

    def training_inputs(self, model):
        """The specs of the inputs ``fit`` feeds ``model``: by default its own inputs.

        A model that trains on other tensors than it serves (a GAN serves a
        latent and trains on images) is described here by its task."""
        return specs.specs_of_model_inputs(model)

    # -- the test harness ---------------------------------------------------------------

    def synthetic_batch(self, model, batch_size=4, seed=0):
        """Random inputs for ``model`` and random targets of this task.

        Float inputs and targets are uniform in [0, 1]; integer inputs are
        0 or 1; integer targets are class ids below the size of the model's
        first output's last axis. Target shapes take their symbols (e.g.
        ``"height"``) from the inputs.

        Returns:
            ``(inputs, targets)``; ``targets`` is ``None`` without target specs.
        """
        rng = np.random.default_rng(seed)
        model_specs = specs.specs_of_model_inputs(model)
        inputs = {spec.name: _random(rng, batch_size, spec.shape, spec, 2)
                  for spec in model_specs}
        known = [spec for spec in self.input_specs if spec.name in inputs]
        bindings = specs.bind(known, {name: value.shape[1:] for name, value in inputs.items()})
        classes = int(model.outputs[0].shape[-1] or 2)
        targets = [_random(rng, batch_size, [bindings.get(d, d) for d in spec.shape], spec,
                           classes) for spec in self.target_specs]
        return _structure(list(inputs.values()), model_specs), self.pack_targets(targets)

    def training_batch(self, model, batch_size=4, seed=0):
        """A random ``(inputs, targets)`` batch that ``model.fit`` takes.

        By default the synthetic batch of the model's own inputs; tasks whose
        models train on other tensors than they serve override it."""
        return self.synthetic_batch(model, batch_size, seed)

    # -- training -----------------------------------------------------------------------

    def compile(self, model, info=None, bundle=None, make_optimizer=None, jit_compile="auto",
                augmentation=None, steps_per_execution=1):
        """Compiles ``model`` for this task.

        Args:
            model: the model, built in the strategy scope it will train in.
            info: its ``ModelInfo``; ``info.loss`` replaces the task's loss.
            bundle: the data (some metrics need its class count).
            make_optimizer: zero-argument callable returning a new optimizer;
                a task whose models need two (a GAN) calls it twice.
            jit_compile: passed to ``model.compile``.
            augmentation: the ``Augmentation`` in use, or ``None``.
            steps_per_execution: training steps per compiled call.
        """
        make_optimizer = make_optimizer or (lambda: keras.optimizers.Adam())
        if getattr(model, "computes_own_loss", False):
            loss = None  # its compute_loss is the loss (a two-stage detector samples there)
        elif info is not None and info.loss:
            loss = info.loss()
        else:
            loss = self.loss(augmentation, model=model)
        # An empty metric list would be compiled as a metric that is never built.
        model.compile(optimizer=make_optimizer(), loss=loss,
                      metrics=self.metrics(model, augmentation) or None, jit_compile=jit_compile,
                      steps_per_execution=steps_per_execution)
        return model

    def loss(self, augmentation=None, model=None):
        """The training loss; ``None`` for models that compute their own (a model with
        ``computes_own_loss = True`` is compiled without one, whatever its task says).

        ``model`` is the model being compiled, for losses that read its
        configuration (a detector's head)."""
        return None

    def metrics(self, model, augmentation=None):
        """Metrics compiled into ``model``."""
        return []

    def augmentation(self, policy, bundle, seed=0):
        """Resolves a policy name (or a callable) to an ``Augmentation``.

        Raises:
            KCCError: the policy is not one of ``augmentation_policies``.
        """
        if policy is None or policy == "none":
            return None
        if callable(policy):
            return Augmentation("custom", policy)
        if policy not in self.augmentation_policies:
            raise KCCError(f"augmentation {policy!r} is not valid for task {self.name!r}; "
                           f"valid: {', '.join(self.augmentation_policies)}")
        return self.make_augmentation(policy, bundle, seed)

    def make_augmentation(self, policy, bundle, seed):
        """Builds a valid, named policy (subclasses with policies override this)."""
        raise KCCError(f"task {self.name!r} has no augmentation {policy!r}")

    # -- watching and evaluating --------------------------------------------------------

    def summaries(self, model, inputs, targets=None):
        """Images for TensorBoard: ``{name: (n, height, width, channels) in [0, 1]}``.

        ``inputs`` and ``targets`` are a few validation examples (``targets``
        is ``None`` for tasks without them)."""
        return {}

    def evaluate(self, model, dataset):
        """The model's metrics on a batched dataset: ``{name: float}``."""
        results = model.evaluate(dataset, verbose=0, return_dict=True)
        return {name: float(value) for name, value in results.items()}

    def score(self, outputs, targets):
        """The headline metrics of outputs computed anywhere (Keras or an artifact).

        Args:
            outputs: ``{output name: array}`` of the serving signature on the
                whole test split.
            targets: the test split's targets.

        Returns:
            ``{metric name: float}``, with the same definitions as ``evaluate``.
        """
        raise KCCError(f"task {self.name!r} cannot score exported outputs")

    def can_score(self):
        """True when the task defines ``score`` (model cards and metric gates need it)."""
        return type(self).score is not Task.score

    def headline(self, metrics):
        """The headline metrics present in ``metrics``, in order."""
        return {name: metrics[name] for name in self.headline_metrics if name in metrics}

    # -- export -------------------------------------------------------------------------

    def serving_model(self, model):
        """The network that export writes and serving runs: ``model`` itself by default.

        A task whose models train as more than they serve (a GAN trains a
        discriminator beside its generator; a diffusion model trains on noised
        images and serves its denoiser) returns the served network, which
        shares the trained model's weights."""
        return model

    def serving_parts(self, model):
        """The networks export writes, by name: ``{"model": serving_model}`` by default.

        A task whose inference runs several networks (a captioner's image
        encoder, then a one-step decoder in a loop) returns each; export
        writes each part to its own folder, verified on its own, and
        ``pipeline`` says how they run together."""
        return {DEFAULT_PART: self.serving_model(model)}

    def pipeline(self, parts, record):
        """Inference on a batch of images from the served parts.

        Args:
            parts: ``{part name: callable}``, each taking ``{input name:
                array}`` and returning ``{output name: array}`` (the Keras
                serving function or an artifact's runner).
            record: ``export_record`` of the model (the manifest's fields).

        Returns:
            A callable ``images -> {output name: array}``: by default the one
            part itself.
        """
        (part,) = parts.values()
        return part

    def export_record(self, model):
        """Fields ``export`` adds to ``manifest.json``: what using an artifact needs
        besides the artifact itself (``{}`` by default; a generative model's
        sampling recipe)."""
        return {}

    def serving_outputs(self, model, outputs, **options):
        """Postprocessing inside the serving graph.

        Args:
            model: the Keras model.
            outputs: ``{output name: tensor}`` of the model on a batch.
            **options: the task's ``serving_options``.

        Returns:
            The serving signature's outputs, ``{name: tensor}``. Written with
            ``keras.ops`` so that it runs in Keras, in the SavedModel and in
            the converted artifacts alike.
        """
        return outputs

    def compare(self, name, actual, expected, tolerance):
        """The parity rule of one output: an artifact's against Keras'.

        Integer outputs (ids) must be equal; float outputs must agree within
        ``tolerance`` by ``parity_error``.

        Returns:
            ``{"error": float, "passed": bool, "rule": str}``.
        """
        actual, expected = np.asarray(actual), np.asarray(expected)
        if np.dtype(expected.dtype).kind in specs.INTEGER_KINDS:
            if actual.shape != expected.shape:
                return {"error": 1.0, "passed": False, "rule": "exact"}
            error = float(np.mean(actual != expected)) if expected.size else 0.0
            return {"error": error, "passed": error == 0.0, "rule": "exact"}
        error = parity_error(actual, expected)
        return {"error": error, "passed": error <= tolerance, "rule": "max error"}

    def compare_outputs(self, actual, expected, tolerance):
        """The parity of all of an artifact's outputs against Keras': ``{name: check}``.

        By default each output on its own (``compare``); a task whose outputs
        only make sense together (a detector's boxes, scores and classes)
        overrides this.
        """
        return {key: self.compare(key, actual[key], expected[key], tolerance)
                for key in expected}

    def quantized_rule(self):
        """The gate of quantized artifacts, judged on held-out data.

        Returns:
            A ``QuantizedRule``: the metric (one of ``score``'s), its largest
            allowed drop against Keras, and the least agreement with Keras
            (``agreement``). Tasks that cannot ``score`` artifacts raise.
        """
        raise KCCError(f"task {self.name!r} declares no rule for quantized artifacts")

    def agreement(self, actual, expected):
        """How often an artifact decides as Keras does, on the first output.

        Float outputs with a class axis are compared by argmax over the last
        axis (a decision per example, per pixel, ...); integer outputs (ids)
        by equality; float outputs without a class axis by ``isclose`` (1%
        relative). Returns the fraction that agree, in [0, 1].
        """
        key = sorted(expected)[0]
        have, want = np.asarray(actual[key]), np.asarray(expected[key])
        if have.shape != want.shape:
            return 0.0
        if want.dtype.kind in "iub":
            same = have == want
        elif want.ndim >= 2:
            same = have.argmax(-1) == want.argmax(-1)
        else:
            same = np.isclose(have, want, rtol=1e-2, atol=1e-6)
        return float(np.mean(same))

    # -- pictures -----------------------------------------------------------------------

    def extra_pictures(self, image, outputs, class_names=()):
        """More pictures ``kcc predict`` writes for one image: ``{suffix: picture}``.

        Written as ``<image name>-<suffix>.png`` beside the main picture;
        none by default (a captioner with attention draws one per word)."""
        return {}

    def prediction_picture(self, image, outputs, class_names=()):
        """What ``kcc predict`` draws for one image: the picture and text under it.

        Args:
            image: ``(H, W, C)`` float32 in [0, 1], as the model saw it.
            outputs: ``{output name: array}`` of the serving signature for
                this image, without the batch axis.
            class_names: the run's class names (empty when unknown).

        Returns:
            ``(picture, lines)``: an ``(H, W, 3)`` float image in [0, 1] and
            a list of short text lines. The default shows the image and
            each output's shape and mean.
        """
        lines = [f"{name}: shape {tuple(np.shape(value))}, mean {float(np.mean(value)):.4g}"
                 for name, value in sorted(outputs.items())]
        return to_rgb(image), lines


@dataclasses.dataclass(frozen=True)
class QuantizedRule:
    """A task's gate for quantized artifacts: ``metric`` may drop by at most ``max_drop``
    against Keras, and the artifact must agree with Keras at least ``min_agreement``."""

    metric: str
    max_drop: float
    min_agreement: float

    def judge(self, keras_scores, artifact_scores, agreement):
        """``{"passed", "metric", "keras", "artifact", "drop", "agreement", "rule"}``."""
        keras_value, value = keras_scores[self.metric], artifact_scores[self.metric]
        drop = keras_value - value
        return {"passed": bool(drop <= self.max_drop and agreement >= self.min_agreement),
                "metric": self.metric, "keras": keras_value, "artifact": value,
                "drop": drop, "agreement": agreement,
                "rule": f"{self.metric} drop <= {self.max_drop:g}, agreement >= "
                        f"{self.min_agreement:g}"}


def to_rgb(image):
    """An ``(H, W, 1 or 3)`` image as ``(H, W, 3)`` float32."""
    image = np.asarray(image, dtype="float32")
    return image if image.shape[-1] == 3 else np.repeat(image[..., :1], 3, axis=-1)


def class_name(class_names, index):
    """The name of class ``index``, or the index itself when names are unknown."""
    return str(class_names[index]) if 0 <= index < len(class_names) else str(index)


def first_output(outputs, preferred):
    """``outputs[preferred]``, or the only output of a model that names it otherwise."""
    return np.asarray(outputs[preferred] if preferred in outputs else next(iter(outputs.values())))


def image_panel(inputs):
    """The image input of a batch (a dict's ``images``) as a NumPy array."""
    images = inputs[IMAGES.name] if isinstance(inputs, dict) else inputs
    return keras.ops.convert_to_numpy(images).astype("float32")


def parity_error(actual, expected):
    """Max absolute difference, relative to the output's scale when above 1.

    ``max|a - b| / max(1, max|b|)``: an absolute error for probabilities
    and small outputs, a relative one for large logits.
    """
    actual = np.asarray(actual, dtype="float64")
    expected = np.asarray(expected, dtype="float64")
    if actual.shape != expected.shape:
        return float("inf")
    if not expected.size:
        return 0.0
    scale = max(1.0, float(np.max(np.abs(expected))))
    return float(np.max(np.abs(actual - expected)) / scale)


def _named(value, spec_list, where, kind):
    """An array or dict -> ``{spec name: array}`` for the given specs."""
    if not spec_list:
        if value is not None:
            raise KCCError(f"{where}: this task takes no {kind}, got {type(value).__name__}")
        return {}
    if isinstance(value, dict):
        return dict(value)
    if len(spec_list) > 1:
        names = [spec.name for spec in spec_list]
        raise KCCError(f"{where}: {kind} must be a dict with keys {names}, "
                       f"got {type(value).__name__}")
    if value is None:
        raise KCCError(f"{where}: {kind} are missing; expected {spec_list[0].describe()}")
    return {spec_list[0].name: value}


def _structure(values, spec_list):
    """One value alone, several as a dict keyed by spec name."""
    if len(values) == 1:
        return values[0]
    return {spec.name: value for spec, value in zip(spec_list, values)}


def _random(rng, batch_size, shape, spec, integer_high):
    shape = (batch_size, *(1 if dim is None or isinstance(dim, str) else dim for dim in shape))
    if spec.is_integer:
        return rng.integers(0, integer_high, shape).astype(spec.dtype)
    return rng.uniform(0, 1, shape).astype(spec.dtype)
