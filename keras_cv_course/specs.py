"""Named tensor specs: what a model takes and returns, and what a dataset holds.

A ``TensorSpec`` names one tensor, its shape without the batch axis, and its
dtype. A dimension is a number (fixed), ``None`` (any size), or a *symbol*,
a string such as ``"height"``. A symbol takes one value across every spec
checked together, so a segmentation task can say that its masks have the
images' height and width:

    images = TensorSpec("images", ("height", "width", "channels"), "float32")
    masks = TensorSpec("masks", ("height", "width"), "int32")
    check_arrays({"images": x, "masks": y}, [images, masks], where="shapes train")

Tasks declare their input and target specs with symbols; the registry
records each model's input and output specs; the export layer, the data
layer and the test harness all check tensors against them with one
function, ``bind``. Nothing here imports TensorFlow.
"""

import dataclasses

import numpy as np

from keras_cv_course.errors import KCCError

INTEGER_KINDS = "iub"  # NumPy kinds: signed, unsigned, bool
MIN_IMAGE_SIDE = 8
"""The smallest image side, in pixels, that training, a folder or ``predict`` accepts:
smaller images hold too little to learn from, and are usually icons or mistakes."""
MAX_IMAGE_SIDE = 4096
"""The largest ``--image-size`` side; a batch of larger images would not fit in memory."""


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One named tensor.

    Attributes:
        name: the tensor's name (an input name, an output key, a target key).
        shape: dimensions after the batch axis: ints, ``None`` or symbols.
        dtype: a NumPy dtype name, e.g. ``"float32"`` or ``"int32"``.
        description: what the tensor means, for tables and errors.
    """

    name: str
    shape: tuple
    dtype: str = "float32"
    description: str = ""

    @property
    def rank(self):
        """Rank without the batch axis."""
        return len(self.shape)

    @property
    def is_integer(self):
        return np.dtype(self.dtype).kind in INTEGER_KINDS

    def describe(self):
        """``name: (height, width, 3) float32``."""
        dims = ", ".join("?" if dim is None else str(dim) for dim in self.shape)
        trailing = "," if len(self.shape) == 1 else ""
        return f"{self.name}: ({dims}{trailing}) {self.dtype}"

    def to_json(self):
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


def spec_of(name, shape, dtype):
    """The spec of a concrete tensor: ``shape`` includes the batch axis."""
    return TensorSpec(name, tuple(None if d is None else int(d) for d in shape[1:]),
                      np.dtype(str(dtype)).name)


def specs_of_model_inputs(model):
    """The specs of a Keras model's inputs, named by their input layers."""
    return tuple(spec_of(_tensor_name(tensor), tensor.shape, tensor.dtype)
                 for tensor in model.inputs)


def _tensor_name(tensor):
    return tensor._keras_history.operation.name


def bind(specs, shapes, dtypes=None, where="tensors", bindings=None):
    """Checks concrete shapes (and dtypes) against specs; returns the symbol values.

    Args:
        specs: the ``TensorSpec`` objects to check against.
        shapes: ``{name: shape}``, shapes *without* the batch axis.
        dtypes: optional ``{name: dtype}``.
        where: what is being checked, for the error message.
        bindings: symbol values already fixed by an earlier check.

    Returns:
        ``{symbol: value}``.

    Raises:
        KCCError: a name is missing, or a rank, size, symbol or dtype
            disagrees; the one-line message names the tensor and both shapes.
    """
    bindings = dict(bindings or {})
    for spec in specs:
        if spec.name not in shapes:
            raise KCCError(f"{where}: missing {spec.name!r}; expected {spec.describe()}, "
                           f"got {sorted(shapes)}")
        shape = tuple(shapes[spec.name])
        if len(shape) != spec.rank:
            raise KCCError(f"{where}: {spec.name!r} must have shape {_show(spec, bindings)} "
                           f"(rank {spec.rank} after the batch axis), got {shape}")
        for expected, actual in zip(spec.shape, shape):
            if isinstance(expected, str):
                if actual is not None and bindings.setdefault(expected, actual) != actual:
                    raise KCCError(f"{where}: {spec.name!r} must have shape "
                                   f"{_show(spec, bindings)}, got {shape}")
            elif expected is not None and actual is not None and expected != actual:
                raise KCCError(f"{where}: {spec.name!r} must have shape {_show(spec, bindings)}, "
                               f"got {shape}")
        if dtypes is not None and not _dtype_fits(spec, dtypes[spec.name]):
            raise KCCError(f"{where}: {spec.name!r} must be {spec.dtype}, "
                           f"got {np.dtype(str(dtypes[spec.name])).name}")
    return bindings


def _dtype_fits(spec, dtype):
    """Same kind of number: any integer for integer specs, any float for floats."""
    kind = np.dtype(str(dtype)).kind
    return (kind in INTEGER_KINDS) == spec.is_integer


def _show(spec, bindings):
    dims = [bindings.get(d, d) if isinstance(d, str) else ("?" if d is None else d)
            for d in spec.shape]
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def check_arrays(arrays, specs, where="arrays", bindings=None):
    """Checks and converts NumPy arrays against specs.

    Args:
        arrays: ``{name: array}``, each with a leading batch axis of equal length.
        specs: the specs; arrays are cast to each spec's dtype.
        where: what is being checked, for the error message.
        bindings: symbol values fixed by an earlier check.

    Returns:
        ``(converted arrays, bindings)``.

    Raises:
        KCCError: shapes or dtypes disagree, batch sizes differ, a float
            array for an integer spec holds fractions, or a float array
            holds NaN or infinite values.
    """
    converted = {}
    for spec in specs:
        value = np.asarray(arrays.get(spec.name))
        if value.ndim == 0:
            raise KCCError(f"{where}: {spec.name!r} must be an array with a batch axis, "
                           f"got {arrays.get(spec.name)!r}")
        converted[spec.name] = _convert(value, spec, where)
    sizes = {name: len(value) for name, value in converted.items()}
    if len(set(sizes.values())) > 1:
        raise KCCError(f"{where}: every tensor needs the same number of examples, got {sizes}")
    shapes = {name: value.shape[1:] for name, value in converted.items()}
    return converted, bind(specs, shapes, where=where, bindings=bindings)


def _convert(value, spec, where):
    if spec.is_integer:
        if value.dtype.kind == "f" and not np.all(np.equal(np.mod(value, 1), 0)):
            raise KCCError(f"{where}: {spec.name!r} must hold integers ({spec.dtype}), "
                           "got fractional values")
        if value.dtype.kind not in INTEGER_KINDS + "f":
            raise KCCError(f"{where}: {spec.name!r} must be {spec.dtype}, got {value.dtype}")
        return value.astype(spec.dtype)
    if value.dtype.kind not in "fiub":
        raise KCCError(f"{where}: {spec.name!r} must be {spec.dtype}, got {value.dtype}")
    value = value.astype(spec.dtype)
    if not np.all(np.isfinite(value)):
        raise KCCError(f"{where}: {spec.name!r} contains NaN or infinite values")
    return value
