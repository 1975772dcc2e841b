"""Counting multiply-accumulates (MACs) over a Keras functional graph.

``flops(model)`` walks the model's graph node by node and adds up the
multiply-accumulates of every layer that multiplies by weights or by other
activations: convolutions (grouped, depthwise, separable, transposed),
``Dense``, ``EinsumDense``, ``MultiHeadAttention`` (its four projections and
both attention matrix products) and the ``keras.ops.matmul`` / ``einsum``
operations of a functional graph. Nested models are counted recursively.

MAC versus FLOP: one multiply-accumulate ``a += w * x`` is two floating-point
operations. Papers and model zoos mostly publish MACs while calling them
FLOPs: "ResNet-50 has 4.1 GFLOPs" (torchvision), "MobileNetV2 300M
multiply-adds", "EfficientNet-B0 0.39B FLOPs" and "ViT-B/16 17.6 GFLOPs" are
all multiply-accumulates. ``flops`` therefore returns a report whose
``.macs`` is comparable with those numbers, and ``.flops == 2 * .macs``.

Not counted (document, don't guess): element-wise work (activations, biases,
additions, BatchNorm/LayerNorm, softmax, scaling) and pooling. They are a
few percent at most for the models of the course, and published numbers
leave them out too. Layers with weights that no rule covers are listed in
``report.uncounted`` rather than silently dropped.

Example:
    >>> import keras
    >>> from keras_cv_course.applications import flops
    >>> report = flops(keras.applications.ResNet50(weights=None))
    >>> round(report.gmacs, 2)  # keras.applications ResNet50 is ResNet v1
    3.86
"""

import dataclasses
import math

import keras

from keras_cv_course.errors import KCCError

# Layers whose weights only scale, shift or are added: no multiply-accumulates.
_ELEMENTWISE_WITH_WEIGHTS = (
    "BatchNormalization",
    "FrozenBatchNormalization",
    "LayerNormalization",
    "GroupNormalization",
    "UnitNormalization",
    "RMSNormalization",
    "Normalization",
    "Embedding",
    "PReLU",
    "ClassToken",
    "PositionEmbedding",
)


@dataclasses.dataclass
class FlopsReport:
    """The result of ``flops``.

    Attributes:
        macs: multiply-accumulates of one forward pass of one example.
        per_layer: layer path -> MACs, for every layer that has some.
        uncounted: paths of layers with weights that no rule covers.
    """

    macs: int = 0
    per_layer: dict = dataclasses.field(default_factory=dict)
    uncounted: list = dataclasses.field(default_factory=list)

    @property
    def flops(self):
        """Floating-point operations: two per multiply-accumulate."""
        return 2 * self.macs

    @property
    def gmacs(self):
        """MACs in billions, the unit of most published tables."""
        return self.macs / 1e9

    def add(self, path, macs):
        if macs:
            self.macs += int(macs)
            self.per_layer[path] = self.per_layer.get(path, 0) + int(macs)


def _prod(values):
    return math.prod(int(v) for v in values)


def _spatial(shape):
    """Product of the dimensions between batch and channels."""
    return _prod(shape[1:-1])


def _conv_macs(layer, inputs, outputs):
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        out_spatial = _prod(outputs[0][2:])
    else:
        out_spatial = _spatial(outputs[0])
    if type(layer).__name__.startswith("SeparableConv"):
        return out_spatial * (
            _prod(layer.depthwise_kernel.shape) + _prod(layer.pointwise_kernel.shape)
        )
    kernel = layer.depthwise_kernel if hasattr(layer, "depthwise_kernel") else layer.kernel
    return out_spatial * _prod(kernel.shape)


def _conv_transpose_macs(layer, inputs, outputs):
    # Every input position is multiplied by the whole (k, k, out, in) kernel / in.
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        in_spatial = _prod(inputs[0][2:])
    else:
        in_spatial = _spatial(inputs[0])
    return in_spatial * _prod(layer.kernel.shape)


def _dense_macs(layer, inputs, outputs):
    return _spatial(inputs[0]) * _prod(layer.kernel.shape)


def _einsum_macs(equation, shapes):
    """MACs of an einsum: the product of the sizes of all its index letters.

    Every combination of index values is one multiply-accumulate. Unknown
    (``None``) dimensions are the batch and are left out.
    """
    operands = equation.replace(" ", "").split("->")[0].split(",")
    sizes, ellipsis = {}, {}
    for spec, shape in zip(operands, shapes, strict=True):
        head, _, tail = spec.partition("...")
        covered = len(shape) - len(head) - len(tail) if "..." in spec else 0
        letters = list(head) + [None] * covered + list(tail)
        for position, (letter, dim) in enumerate(zip(letters, shape, strict=True)):
            if dim is None:
                continue
            if letter is None:  # align "..." dimensions from the right
                key = covered - (position - len(head))
                ellipsis[key] = max(ellipsis.get(key, 1), int(dim))
            else:
                sizes[letter] = int(dim)
    return _prod(sizes.values()) * _prod(ellipsis.values())


def _einsum_dense_macs(layer, inputs, outputs):
    return _einsum_macs(layer.equation, [inputs[0], tuple(layer.kernel.shape)])


def _attention_macs(layer, inputs, outputs):
    query_shape = inputs[0]
    value_shape = inputs[1] if len(inputs) > 1 else inputs[0]
    key_shape = inputs[2] if len(inputs) > 2 else value_shape
    t_query, t_value, t_key = _spatial(query_shape), _spatial(value_shape), _spatial(key_shape)
    heads = layer.num_heads
    projections = (
        t_query * _prod(layer._query_dense.kernel.shape)
        + t_key * _prod(layer._key_dense.kernel.shape)
        + t_value * _prod(layer._value_dense.kernel.shape)
        + t_query * _prod(layer._output_dense.kernel.shape)
    )
    scores = heads * t_query * t_key * layer.key_dim  # Q K^T
    mixing = heads * t_query * t_value * layer.value_dim  # softmax(.) V
    return projections + scores + mixing


def _matmul_op_macs(op, inputs, outputs):
    # (..., m, k) @ (..., k, n): every output element costs k.
    return _prod(outputs[0][1:]) * int(inputs[0][-1])


def _einsum_op_macs(op, inputs, outputs):
    return _einsum_macs(op.subscripts, inputs)


_RULES = {
    "Conv1D": _conv_macs,
    "Conv2D": _conv_macs,
    "Conv3D": _conv_macs,
    "DepthwiseConv1D": _conv_macs,
    "DepthwiseConv2D": _conv_macs,
    "SeparableConv1D": _conv_macs,
    "SeparableConv2D": _conv_macs,
    "Conv1DTranspose": _conv_transpose_macs,
    "Conv2DTranspose": _conv_transpose_macs,
    "Conv3DTranspose": _conv_transpose_macs,
    "Dense": _dense_macs,
    "EinsumDense": _einsum_dense_macs,
    "MultiHeadAttention": _attention_macs,
    "Matmul": _matmul_op_macs,
    "Einsum": _einsum_op_macs,
}


def _rule_for(operation):
    for cls in type(operation).__mro__:
        if cls.__name__ in _RULES:
            return _RULES[cls.__name__]
    return None


def _shapes(tensors):
    return [tuple(t.shape) for t in tensors]


def _count(model, report, prefix):
    if isinstance(model, keras.Sequential):
        model = model._functional
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            operation = node.operation
            if operation is None or node.is_input:
                continue
            path = f"{prefix}{operation.name}"
            if isinstance(operation, keras.Model):
                _count(operation, report, f"{path}/")
                continue
            rule = _rule_for(operation)
            if rule is not None:
                macs = rule(operation, _shapes(node.input_tensors), _shapes(node.outputs))
                report.add(path, macs)
            elif getattr(operation, "weights", None) and not any(
                cls.__name__ in _ELEMENTWISE_WITH_WEIGHTS for cls in type(operation).__mro__
            ):
                report.uncounted.append(path)


def flops(model):
    """Counts the multiply-accumulates of one forward pass of one example.

    Args:
        model: a built functional or Sequential ``keras.Model`` with a fully
            defined input shape (no ``None`` besides the batch dimension).

    Returns:
        A ``FlopsReport``: ``.macs`` (comparable with published "GFLOPs",
        which are multiply-accumulates), ``.flops`` (``2 * macs``), ``.gmacs``,
        ``.per_layer`` and ``.uncounted``.

    Raises:
        KCCError: the model is not a graph model or its input shape has
            undefined dimensions.

    Example:
        >>> report = flops(build_full("vit_base_16"))
        >>> round(report.gmacs, 2)  # published: 17.56 (torchvision), 17.58 (timm)
        17.56
    """
    if not hasattr(model, "_nodes_by_depth") and not isinstance(model, keras.Sequential):
        raise KCCError(
            "flops needs a functional or Sequential keras.Model, got "
            f"{type(model).__name__}"
        )
    for tensor in model.inputs:
        if any(d is None for d in tuple(tensor.shape)[1:]):
            raise KCCError(
                "flops needs a fully defined input shape, got "
                f"{tuple(tensor.shape)} for input {tensor.name!r}"
            )
    report = FlopsReport()
    _count(model, report, "")
    return report

