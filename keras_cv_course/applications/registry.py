"""The model registry: one place that knows every model of the course.

Each model file ends with one ``register_family(...)`` call over a table of
variant records (``CONTRIBUTING.md``: adding a model). A registered entry
(``ModelInfo``) carries what the tests, the CLI, the export layer and the
README need to treat every model the same way:

* the builder and the task it solves, with its named inputs and outputs;
* the paper it follows;
* the reference parameter count and where it comes from;
* a tiny config for tests and a full config for parameter counting;
* which export formats it supports, and why not where it does not.

Parameter-count convention (used everywhere in this package): a model's
parameter count is the number of scalars in its weights **excluding the
BatchNorm moving mean and moving variance**. Those are running statistics,
not learned parameters; torchvision and timm keep them as buffers and do not
count them, while ``keras.Model.count_params()`` does. A layer whose weights
are all fixed statistics says so with ``weights_are_statistics = True``
(frozen BatchNorm, torchvision's ``FrozenBatchNorm2d`` under its detectors,
whose scale and shift are buffers too); none of its weights is counted. See
``parameter_count``.

Example:
    >>> from keras_cv_course import applications
    >>> applications.list_models(task="segmentation")
    ['fcn16s', 'fcn32s', 'fcn8s']
    >>> model = applications.build("resnet18", classes=10)
"""

import dataclasses
import fnmatch
from typing import Callable

from keras_cv_course.errors import KCCError, unknown_name_error

EXPORT_FORMATS = ("savedmodel", "tflite", "onnx")
"""The formats of the one export path, in the order they are written."""

_REGISTRY = {}


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Everything the package knows about one registered model.

    Attributes:
        name: registry name, e.g. ``"resnet18"``.
        builder: callable that returns a ``keras.Model``; keyword arguments
            override its defaults.
        task: a registered task name (``keras_cv_course.tasks.list_tasks()``);
            the task decides data, targets, loss, metrics and export rules.
        family: model family, e.g. ``"resnet"``.
        paper: citation (title, venue, year, arXiv id).
        reference_params: parameter count of the reference implementation,
            or ``None`` for models with no published reference.
        params_source: where ``reference_params`` comes from.
        params_precision: the precision of ``reference_params``; 1 for an
            exact count, ``10**6`` for a paper that says "134M".
        full_config: builder keyword arguments of the reference model.
        tiny_config: builder keyword arguments of the tiny test model.
        unsupported_exports: format name -> reason, for formats that this
            model cannot be exported to.
        parity_tolerance: allowed max abs difference (relative to the output
            scale) between Keras and an fp32 artifact.
        unsupported_quantize: quantization mode -> reason, for modes of
            ``export(..., quantize=MODE)`` that this model cannot take.
        description: one line for tables.
        loss: zero-argument callable returning the training loss, when the
            task's default loss is not the model's (e.g. a multiclass SVM).
        training: ``"gradient"`` (``model.fit``) or ``"memorize"`` for
            non-parametric models such as kNN, which store the training set
            through ``model.memorize(inputs, targets)``.
        inputs: the model's named inputs (``specs.TensorSpec``); by default
            the task's.
        outputs: the model's named outputs; by default the task's.
        facts: fields that only the task's models carry, e.g. a classifier's
            ``imagenet_top1``; the task lists them in ``fact_fields``.
    """

    name: str
    builder: Callable
    task: str
    family: str
    paper: str
    reference_params: int | None
    params_source: str
    params_precision: int = 1
    full_config: dict = dataclasses.field(default_factory=dict)
    tiny_config: dict = dataclasses.field(default_factory=dict)
    unsupported_exports: dict = dataclasses.field(default_factory=dict)
    parity_tolerance: float = 1e-4
    unsupported_quantize: dict = dataclasses.field(default_factory=dict)
    description: str = ""
    loss: Callable | None = None
    training: str = "gradient"
    inputs: tuple = ()
    outputs: tuple = ()
    facts: dict = dataclasses.field(default_factory=dict)

    def supports_export(self, fmt):
        """Returns True when ``fmt`` is one of the formats this model exports to."""
        return fmt in EXPORT_FORMATS and fmt not in self.unsupported_exports

    def fact(self, key, default=None):
        """A task-specific fact, e.g. ``info.fact("imagenet_top1")``."""
        return self.facts.get(key, default)

    def config(self, which):
        """The builder arguments of the ``"tiny"`` or ``"full"`` config."""
        if which not in CONFIGS:
            raise unknown_name_error("config", which, CONFIGS)
        return dict(self.tiny_config if which == "tiny" else self.full_config)


CONFIGS = ("tiny", "full")
"""The configs every registered model has: test-sized and reference-sized."""
_FIELDS = {field.name for field in dataclasses.fields(ModelInfo)}


def register(name, builder, task, **metadata):
    """Adds one model to the registry.

    Args:
        name: unique registry name.
        builder: callable returning a ``keras.Model``.
        task: a registered task name.
        **metadata: the remaining ``ModelInfo`` fields; any other keyword
            must be one of the task's ``fact_fields`` and goes to ``facts``.

    Returns:
        The new ``ModelInfo``.

    Raises:
        KCCError: a duplicate name, an unknown task, field or export format.
    """
    from keras_cv_course.tasks import get_task

    if name in _REGISTRY:
        raise KCCError(f"model {name!r} is registered twice")
    task_object = get_task(task)
    facts = {key: metadata.pop(key) for key in list(metadata) if key not in _FIELDS}
    unknown = sorted(set(facts) - set(task_object.fact_fields))
    if unknown:
        raise KCCError(f"model {name!r}: unknown fields {unknown} for task {task!r} "
                       f"(its facts: {list(task_object.fact_fields)})")
    metadata.setdefault("inputs", task_object.input_specs)
    metadata.setdefault("outputs", task_object.output_specs)
    info = ModelInfo(name=name, builder=builder, task=task,
                     facts={**metadata.pop("facts", {}), **facts}, **metadata)
    if info.training not in ("gradient", "memorize"):
        raise KCCError(f"model {name!r}: training must be 'gradient' or 'memorize'")
    for fmt in info.unsupported_exports:
        if fmt not in EXPORT_FORMATS:
            raise KCCError(f"model {name!r}: unknown export format {fmt!r}")
    _REGISTRY[name] = info
    return info


def register_family(family, variants, **shared):
    """Registers a family's table of variants: the one way models are registered.

    Args:
        family: the family's name, e.g. ``"resnet"``.
        variants: one record (a dict) per variant, each with ``name``,
            ``builder`` and any ``ModelInfo`` field or task fact.
        **shared: fields every variant shares (``task``, ``paper``,
            ``tiny_config``, ...); a record's own fields win.

    Returns:
        The new ``ModelInfo`` objects.

    Example:
        >>> register_family("vgg", [
        ...     dict(name="vgg11", builder=VGG11, reference_params=132_863_336,
        ...          params_source="torchvision vgg11"),
        ... ], task="classification", paper=PAPER, tiny_config=TINY)
    """
    return [register(**{**shared, "family": family, **record}) for record in variants]


def unregister(name):
    """Removes a model, e.g. one that a test or a notebook cell registered."""
    _REGISTRY.pop(name, None)


def get_info(name):
    """Returns the ``ModelInfo`` of a registered model.

    Raises:
        KCCError: the name is unknown; the message lists the closest names.
    """
    if name not in _REGISTRY:
        raise unknown_name_error("model", name, _REGISTRY)
    return _REGISTRY[name]


def list_models(task=None, pattern=None):
    """Lists registered model names, sorted.

    Args:
        task: keep only models of this task.
        pattern: keep only names matching this shell-style pattern, e.g.
            ``"resnet*"``.
    """
    names = sorted(_REGISTRY)
    if task is not None:
        from keras_cv_course.tasks import get_task

        task_object = get_task(task)  # an unknown task is an error listing the known ones
        names = [name for name in names if task_object.owns(_REGISTRY[name])]
    if pattern is not None:
        names = fnmatch.filter(names, pattern)
    return names


def build(name, **overrides):
    """Builds a registered model.

    Args:
        name: registry name.
        **overrides: keyword arguments passed to the builder, e.g.
            ``classes=10`` or ``input_shape=(32, 32, 3)``.

    Returns:
        A ``keras.Model`` named ``name`` unless ``name=`` is overridden.
    """
    info = get_info(name)
    overrides.setdefault("name", name)
    return info.builder(**overrides)


def build_config(name, which, **overrides):
    """Builds the ``"tiny"`` or ``"full"`` config of a registered model."""
    return build(name, **{**get_info(name).config(which), **overrides})


def build_tiny(name, **overrides):
    """Builds the tiny test config of a registered model."""
    return build_config(name, "tiny", **overrides)


def build_full(name, **overrides):
    """Builds the reference-size config of a registered model."""
    return build_config(name, "full", **overrides)


def is_running_statistic(weight, layer=None):
    """True for BatchNorm moving mean/variance, which are not parameters, and for
    every weight of a ``layer`` whose weights are all statistics
    (``layer.weights_are_statistics``, e.g. ``FrozenBatchNormalization``)."""
    if getattr(layer, "weights_are_statistics", False):
        return True
    leaf = weight.path.split("/")[-1]
    return leaf in ("moving_mean", "moving_variance")


def parameter_count(model):
    """Counts parameters, excluding BatchNorm running statistics.

    This is the convention of torchvision and timm, and it equals Keras'
    ``count_params()`` minus the moving means and variances, and minus every
    weight of frozen BatchNorm layers (``is_running_statistic``).
    """
    statistics = {id(weight) for layer in _all_layers(model)
                  for weight in layer.weights if is_running_statistic(weight, layer)}
    return int(
        sum(
            _size(w.shape)
            for w in model.weights
            if id(w) not in statistics and not is_running_statistic(w)
        )
    )


def _all_layers(model):
    """``model`` itself and every layer in it, those of nested models included.

    ``model`` may also be a single layer (a ``Dense``), which is its own only layer.
    """
    yield model
    for layer in getattr(model, "layers", ()):
        yield from _all_layers(layer)


def _size(shape):
    total = 1
    for dim in shape:
        total *= int(dim)
    return total
