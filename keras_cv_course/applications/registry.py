"""The model registry: one place that knows every model of the course.

Each model file ends with ``register(...)`` calls, one per variant. A
registered entry (``ModelInfo``) carries what the tests, the CLI, the export
layer and the README need to treat every model the same way:

* the builder and the task it solves;
* the paper it follows;
* the reference parameter count and where it comes from;
* a tiny config for tests and a full config for parameter counting;
* which export formats it supports, and why not where it does not.

Parameter-count convention (used everywhere in this package): a model's
parameter count is the number of scalars in its weights **excluding the
BatchNorm moving mean and moving variance**. Those are running statistics,
not learned parameters; torchvision and timm keep them as buffers and do not
count them, while ``keras.Model.count_params()`` does. See
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
TASKS = ("classification", "segmentation", "generative")

_REGISTRY = {}


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Everything the package knows about one registered model.

    Attributes:
        name: registry name, e.g. ``"resnet18"``.
        builder: callable that returns a ``keras.Model``; keyword arguments
            override its defaults.
        task: one of ``TASKS``; decides loss, metrics, data and targets.
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
        description: one line for tables.
        loss: zero-argument callable returning the training loss, when the
            task's default loss is not the model's (e.g. a multiclass SVM).
        training: ``"gradient"`` (``model.fit``) or ``"memorize"`` for
            non-parametric models such as kNN, which store the training set
            through ``model.memorize(images, labels)``.
        imagenet_top1: top-1 accuracy (%) on ImageNet reported for the
            reference model, or ``None``.
        top1_source: where ``imagenet_top1`` comes from.
        pretrained: which pretrained weights ``weights=`` accepts, e.g.
            ``("imagenet",)``.
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
    description: str = ""
    loss: Callable | None = None
    training: str = "gradient"
    imagenet_top1: float | None = None
    top1_source: str = ""
    pretrained: tuple = ()

    def supports_export(self, fmt):
        """Returns True when ``fmt`` is one of the formats this model exports to."""
        return fmt in EXPORT_FORMATS and fmt not in self.unsupported_exports


def register(name, builder, **metadata):
    """Adds a model to the registry.

    Args:
        name: unique registry name.
        builder: callable returning a ``keras.Model``.
        **metadata: the remaining ``ModelInfo`` fields.

    Returns:
        The new ``ModelInfo``.
    """
    if name in _REGISTRY:
        raise KCCError(f"model {name!r} is registered twice")
    info = ModelInfo(name=name, builder=builder, **metadata)
    if info.task not in TASKS:
        raise KCCError(f"model {name!r}: task must be one of {TASKS}, got {info.task!r}")
    if info.training not in ("gradient", "memorize"):
        raise KCCError(f"model {name!r}: training must be 'gradient' or 'memorize'")
    for fmt in info.unsupported_exports:
        if fmt not in EXPORT_FORMATS:
            raise KCCError(f"model {name!r}: unknown export format {fmt!r}")
    _REGISTRY[name] = info
    return info


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
    if task is not None and task not in TASKS:
        raise unknown_name_error("task", task, TASKS)
    names = sorted(_REGISTRY)
    if task is not None:
        names = [n for n in names if _REGISTRY[n].task == task]
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


def build_tiny(name, **overrides):
    """Builds the tiny test config of a registered model."""
    return build(name, **{**get_info(name).tiny_config, **overrides})


def build_full(name, **overrides):
    """Builds the reference-size config of a registered model."""
    return build(name, **{**get_info(name).full_config, **overrides})


def is_running_statistic(weight):
    """True for BatchNorm moving mean/variance, which are not parameters."""
    leaf = weight.path.split("/")[-1]
    return leaf in ("moving_mean", "moving_variance")


def parameter_count(model):
    """Counts parameters, excluding BatchNorm running statistics.

    This is the convention of torchvision and timm, and it equals Keras'
    ``count_params()`` minus the moving means and variances.
    """
    return int(
        sum(
            _size(w.shape)
            for w in model.weights
            if not is_running_statistic(w)
        )
    )


def _size(shape):
    total = 1
    for dim in shape:
        total *= int(dim)
    return total
