"""Recurrent cells from their equations: vanilla RNN, LSTM and GRU.

Papers:
    Jeffrey L. Elman. "Finding Structure in Time". Cognitive Science 14(2), 1990.
    Sepp Hochreiter, Juergen Schmidhuber. "Long Short-Term Memory". Neural
    Computation 9(8), 1997.
    Felix A. Gers, Juergen Schmidhuber, Fred Cummins. "Learning to Forget:
    Continual Prediction with LSTM". Neural Computation 12(10), 2000.
    Kyunghyun Cho et al. "Learning Phrase Representations using RNN
    Encoder-Decoder for Statistical Machine Translation". EMNLP 2014.
    arXiv:1406.1078.
    Yoshua Bengio, Patrice Simard, Paolo Frasconi. "Learning long-term
    dependencies with gradient descent is difficult". IEEE Transactions on
    Neural Networks 5(2), 1994.
    Razvan Pascanu, Tomas Mikolov, Yoshua Bengio. "On the difficulty of
    training recurrent neural networks". ICML 2013. arXiv:1211.5063.

A recurrent cell maps one time step's input ``x`` (batch, features) and the
previous state to an output and the next state. Each cell here is a
``keras.layers.Layer`` written with ``keras.ops`` from its equations (no
Keras RNN layer inside), so it runs on every backend, and it creates its
weights exactly as Keras' own cell does: ``kernel`` (features, k * units),
``recurrent_kernel`` (units, k * units) and ``bias``, in that order, with the
gates packed as column blocks in Keras' order. So
``cell.set_weights(keras.layers.LSTM(...).get_weights())`` works, and
``copy_keras_weights`` does it with checks.

The API, shared by the three cells:

* ``cell.state_size``: a list of ints (``[units]``; the LSTM's is
  ``[units, units]`` for ``[h, c]``);
* ``cell.initial_state(batch_size)``: the list of zero states;
* ``output, new_states = cell(x, states)``: one step, ``states`` a list;
* ``unroll(cell, sequence)``: the whole sequence, a Python loop over the
  static time axis (no while loop, so a model exports to TFLite builtins).

Bengio, Simard and Frasconi (1994) and Pascanu, Mikolov and Bengio (2013)
explain why the vanilla RNN forgets: the gradient that reaches step ``t``
from a loss at step ``T`` is a product of ``T - t`` Jacobians
``diag(tanh'(a)) U^T``, which shrinks exponentially when their norms are
below one. The LSTM's additive cell state (``c' = f c + i g``) lets it pass
through with factor ``f``. ``copy_task.py`` measures it.
"""

import keras
import numpy as np
from keras import ops

from keras_cv_course.errors import KCCError

_SERIALIZABLE = keras.saving.register_keras_serializable(package="keras_cv_course")

#: The column-block order of an LSTM's packed gates, by convention.
LSTM_GATE_ORDERS = {"keras": ("i", "f", "g", "o"), "course": ("i", "f", "o", "g")}


class _RecurrentCell(keras.layers.Layer):
    """Weights, state and config shared by the three cells.

    A subclass sets ``GATES`` (how many ``units``-wide column blocks its
    matrices pack), the Keras cell class it mirrors, and ``step``.
    """

    GATES = 1
    KERAS_CELL = None  # the name of the mirrored class in keras.layers
    KERAS_LAYER = None

    def __init__(self, units, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units < 1:
            raise KCCError(f"{type(self).__name__}: expected units, a positive int; got {units!r}")
        self.units = int(units)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    @property
    def state_size(self):
        return [self.units]

    def initial_state(self, batch_size):
        """The zero states of a batch: a list of ``(batch_size, size)`` tensors."""
        return [ops.zeros((batch_size, size), dtype=self.compute_dtype)
                for size in self.state_size]

    def bias_shape(self):
        return (self.GATES * self.units,)

    def build(self, input_shape):
        width = self.GATES * self.units
        self.kernel = self.add_weight(shape=(input_shape[-1], width), name="kernel",
                                      initializer=self.kernel_initializer)
        self.recurrent_kernel = self.add_weight(shape=(self.units, width),
                                                name="recurrent_kernel",
                                                initializer=self.recurrent_initializer)
        self.bias = self.add_weight(shape=self.bias_shape(), name="bias",
                                    initializer=self.make_bias_initializer())

    def make_bias_initializer(self):
        return self.bias_initializer

    def call(self, inputs, states):
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        if len(states) != len(self.state_size):
            raise KCCError(f"{type(self).__name__}: expected {len(self.state_size)} state "
                           f"tensor(s) {self.state_size}; got {len(states)}")
        return self.step(inputs, states)

    def step(self, x, states):
        raise NotImplementedError

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            recurrent_initializer=keras.initializers.serialize(self.recurrent_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
        )
        return config


@_SERIALIZABLE
class RNNCell(_RecurrentCell):
    """The vanilla (Elman) RNN cell; its weights are ``keras.layers.SimpleRNNCell``'s.

    One step, with ``x`` (batch, features) and ``h`` (batch, units)::

        h' = tanh(x W + h U + b)        output = h'

    ``W`` is ``kernel`` (features, units), ``U`` is ``recurrent_kernel``
    (units, units) and ``b`` is ``bias`` (units,). Elman's (1990) network fed
    the previous hidden layer back through "context units"; the tanh form is
    today's standard one and Keras'.

    Args:
        units: the size of ``h``.
        kernel_initializer, recurrent_initializer, bias_initializer: Keras'
            defaults (``glorot_uniform``, ``orthogonal``, ``zeros``).

    Example:
        >>> cell = RNNCell(8)
        >>> h = cell.initial_state(2)
        >>> output, h = cell(keras.ops.ones((2, 5)), h)   # output (2, 8), h [(2, 8)]
    """

    KERAS_CELL, KERAS_LAYER = "SimpleRNNCell", "SimpleRNN"

    def step(self, x, states):
        (h,) = states
        h = ops.tanh(ops.matmul(x, self.kernel) + self.bias
                     + ops.matmul(h, self.recurrent_kernel))
        return h, [h]


@_SERIALIZABLE
class LSTMCell(_RecurrentCell):
    """The LSTM cell with a forget gate; its weights are ``keras.layers.LSTMCell``'s.

    Hochreiter and Schmidhuber (1997) with the forget gate of Gers,
    Schmidhuber and Cummins (2000). One step, with ``x`` (batch, features),
    state ``[h, c]`` (each (batch, units)), ``sigma`` the logistic sigmoid
    and ``(.)`` the elementwise product::

        i = sigma(x W_i + h U_i + b_i)      input gate
        f = sigma(x W_f + h U_f + b_f)      forget gate
        g = tanh(x W_g + h U_g + b_g)       cell candidate
        o = sigma(x W_o + h U_o + b_o)      output gate
        c' = f (.) c + i (.) g
        h' = o (.) tanh(c')                 output = h'

    The four gates share one matrix product: ``kernel`` (features, 4 units),
    ``recurrent_kernel`` (units, 4 units) and ``bias`` (4 units,) pack them as
    ``units``-wide column blocks. Keras packs them as ``(i, f, c, o)`` (its
    ``c`` is the candidate ``g``); CS231n's lecture and assignment write the
    stacked gates as ``(i, f, o, g)``:

    ============== ================== ====================
    column block   Keras (i, f, c, o) course (i, f, o, g)
    ============== ================== ====================
    0 (0:u)        input gate i       input gate i
    1 (u:2u)       forget gate f      forget gate f
    2 (2u:3u)      candidate g        output gate o
    3 (3u:4u)      output gate o      candidate g
    ============== ================== ====================

    This cell uses Keras' order; ``reorder_gates(matrix, "course", "keras")``
    converts a course-ordered ``Wx``, ``Wh`` or ``b``.

    Args:
        units: the size of ``h`` and ``c``.
        kernel_initializer, recurrent_initializer, bias_initializer: Keras'
            defaults (``glorot_uniform``, ``orthogonal``, ``zeros``).
        unit_forget_bias: start the forget gate's bias at one (Keras' default,
            as Jozefowicz, Zaremba and Sutskever 2015 advise), so that the cell
            remembers at first.

    Example:
        >>> cell = LSTMCell(8)
        >>> output, (h, c) = cell(keras.ops.ones((2, 5)), cell.initial_state(2))
    """

    GATES = 4
    KERAS_CELL, KERAS_LAYER = "LSTMCell", "LSTM"

    def __init__(self, units, unit_forget_bias=True, **kwargs):
        super().__init__(units, **kwargs)
        self.unit_forget_bias = unit_forget_bias

    @property
    def state_size(self):
        return [self.units, self.units]

    def make_bias_initializer(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        units, initializer = self.units, self.bias_initializer

        def forget_one(shape, dtype=None):
            return ops.concatenate([initializer((units,), dtype=dtype),
                                    ops.ones((units,), dtype=dtype),
                                    initializer((2 * units,), dtype=dtype)])
        return forget_one

    def step(self, x, states):
        h, c = states
        z = ops.matmul(x, self.kernel) + ops.matmul(h, self.recurrent_kernel) + self.bias
        i, f, g, o = ops.split(z, 4, axis=-1)  # Keras' order
        c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
        h = ops.sigmoid(o) * ops.tanh(c)
        return h, [h, c]

    def get_config(self):
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


@_SERIALIZABLE
class GRUCell(_RecurrentCell):
    """The gated recurrent unit in Keras' ``reset_after=True`` form (``keras.layers.GRUCell``).

    Cho et al. (2014). One step, with ``x`` (batch, features) and ``h``
    (batch, units). Keras' default, ``reset_after=True`` (the form cuDNN
    implements), applies the reset gate after the recurrent product and so
    has two biases, one for the input and one for the recurrent product::

        z  = sigma(x W_z + b_z + h U_z + b'_z)       update gate
        r  = sigma(x W_r + b_r + h U_r + b'_r)       reset gate
        h~ = tanh(x W_h + b_h + r (.) (h U_h + b'_h))
        h' = z (.) h + (1 - z) (.) h~                output = h'

    The paper's form (Keras' ``reset_after=False``) resets before the product,
    with one bias::

        h~ = tanh(x W_h + (r (.) h) U_h + b_h)

    This cell implements only the first. ``kernel`` (features, 3 units) and
    ``recurrent_kernel`` (units, 3 units) pack the blocks ``(z, r, h)``;
    ``bias`` is (2, 3 units): row 0 the input biases ``b``, row 1 the
    recurrent biases ``b'``.

    Args:
        units: the size of ``h``.
        kernel_initializer, recurrent_initializer, bias_initializer: Keras'
            defaults (``glorot_uniform``, ``orthogonal``, ``zeros``).

    Example:
        >>> cell = GRUCell(8)
        >>> output, h = cell(keras.ops.ones((2, 5)), cell.initial_state(2))
    """

    GATES = 3
    KERAS_CELL, KERAS_LAYER = "GRUCell", "GRU"

    def bias_shape(self):
        return (2, self.GATES * self.units)

    def step(self, x, states):
        (h,) = states
        from_x = ops.matmul(x, self.kernel) + self.bias[0]
        from_h = ops.matmul(h, self.recurrent_kernel) + self.bias[1]
        x_z, x_r, x_h = ops.split(from_x, 3, axis=-1)
        h_z, h_r, h_h = ops.split(from_h, 3, axis=-1)
        z = ops.sigmoid(x_z + h_z)
        r = ops.sigmoid(x_r + h_r)
        candidate = ops.tanh(x_h + r * h_h)
        h = z * h + (1 - z) * candidate
        return h, [h]


def unroll(cell, sequence, initial_states=None, return_sequences=True):
    """Runs a cell over a sequence with a Python loop over its static time axis.

    There is no symbolic while loop: a model built with ``unroll`` has one
    copy of the step per time step, and converts to TFLite builtins (a Keras
    RNN layer leaves a ``WHILE`` or TensorList ops). It works on symbolic
    Keras tensors (a functional model) and on arrays alike.

    Args:
        cell: an ``RNNCell``, ``LSTMCell`` or ``GRUCell`` (any layer with the
            same API).
        sequence: ``(batch, time, features)`` with a static ``time``.
        initial_states: a list of states as ``cell.state_size`` says; zeros
            when ``None``.
        return_sequences: return every step's output ``(batch, time, units)``
            (default), or only the last ``(batch, units)``.

    Returns:
        ``(outputs, final_states)``.

    Raises:
        KCCError: ``sequence`` is not 3-D with a static time axis, or the
            number of initial states is wrong.

    Example:
        >>> cell = LSTMCell(16)
        >>> outputs, (h, c) = unroll(cell, keras.ops.ones((2, 7, 5)))  # outputs (2, 7, 16)
    """
    if isinstance(sequence, np.ndarray):
        sequence = ops.convert_to_tensor(sequence)
    shape = tuple(sequence.shape)
    if len(shape) != 3 or shape[1] is None:
        raise KCCError(f"unroll: expected a sequence (batch, time, features) with a static "
                       f"time axis; got shape {shape}")
    if initial_states is None:
        # Zeros of the sequence's (possibly symbolic) batch size.
        column = ops.zeros_like(sequence[:, 0, :1])  # (batch, 1)
        states = [ops.tile(column, (1, size)) for size in cell.state_size]
    else:
        states = list(initial_states)
    if len(states) != len(cell.state_size):
        raise KCCError(f"unroll: {type(cell).__name__} expects {len(cell.state_size)} initial "
                       f"state(s) {cell.state_size}; got {len(states)}")
    outputs = []
    for t in range(shape[1]):
        output, states = cell(sequence[:, t, :], states)
        outputs.append(output)
    return (ops.stack(outputs, axis=1) if return_sequences else outputs[-1]), states


def reorder_gates(matrix, source="keras", target="course"):
    """Permutes the four ``units``-wide column blocks of a packed LSTM matrix.

    The orders (``LSTM_GATE_ORDERS``): ``"keras"`` packs ``(i, f, g, o)``
    (Keras writes the candidate as ``c``), ``"course"`` (CS231n) packs
    ``(i, f, o, g)``. The permutation applies to the last axis, so it works on
    a kernel ``(features, 4u)``, a recurrent kernel ``(u, 4u)`` and a bias
    ``(4u,)`` alike; ``reorder_gates(reorder_gates(m), "course", "keras")`` is
    ``m``.

    Args:
        matrix: an array or tensor whose last axis is ``4 * units``.
        source, target: ``"keras"`` or ``"course"``.

    Returns:
        A NumPy array, the blocks in ``target``'s order.

    Raises:
        KCCError: an unknown order, or a last axis not divisible by four.

    Example:
        >>> keras_kernel = reorder_gates(Wx, source="course", target="keras")
    """
    for name in (source, target):
        if name not in LSTM_GATE_ORDERS:
            raise KCCError(f"reorder_gates: expected a gate order in {sorted(LSTM_GATE_ORDERS)}; "
                           f"got {name!r}")
    matrix = ops.convert_to_numpy(matrix)
    if matrix.ndim == 0 or matrix.shape[-1] % 4:
        raise KCCError(f"reorder_gates: expected a last axis of 4 * units; got shape "
                       f"{matrix.shape}")
    blocks = dict(zip(LSTM_GATE_ORDERS[source], np.split(matrix, 4, axis=-1), strict=True))
    return np.concatenate([blocks[gate] for gate in LSTM_GATE_ORDERS[target]], axis=-1)


def copy_keras_weights(cell, keras_layer):
    """Copies a Keras recurrent layer's (or cell's) weights into the matching cell.

    ``RNNCell`` takes ``keras.layers.SimpleRNN`` or ``SimpleRNNCell``,
    ``LSTMCell`` takes ``LSTM`` or ``LSTMCell``, ``GRUCell`` takes ``GRU`` or
    ``GRUCell`` with ``reset_after=True``; the Keras layer must use a bias and
    the activations the equations use (tanh, and sigmoid gates). An unbuilt
    ``cell`` is built for the Keras kernel's input size.

    Args:
        cell: an ``RNNCell``, ``LSTMCell`` or ``GRUCell``.
        keras_layer: a built Keras recurrent layer or cell.

    Returns:
        ``cell``, now computing what ``keras_layer`` computes.

    Raises:
        KCCError: the kinds, the form or the shapes differ.
    """
    if not isinstance(cell, _RecurrentCell):
        raise KCCError(f"copy_keras_weights: expected an RNNCell, LSTMCell or GRUCell; got "
                       f"{type(cell).__name__}")
    source = getattr(keras_layer, "cell", keras_layer)
    expected = getattr(keras.layers, cell.KERAS_CELL)
    if type(source) is not expected:
        raise KCCError(f"copy_keras_weights: {type(cell).__name__} takes keras.layers."
                       f"{cell.KERAS_LAYER} or {cell.KERAS_CELL}; got {type(keras_layer).__name__}")
    _check_form(cell, source)
    weights = source.get_weights()
    if not weights:
        raise KCCError(f"copy_keras_weights: the Keras {type(keras_layer).__name__} has no "
                       "weights yet; call it on an input first")
    if not cell.built:
        cell.build((None, weights[0].shape[0]))
    have = [tuple(w.shape) for w in cell.get_weights()]
    given = [tuple(w.shape) for w in weights]
    if have != given:
        raise KCCError(f"copy_keras_weights: {type(cell).__name__} weights have shapes {have}; "
                       f"the Keras {type(keras_layer).__name__} has {given}")
    cell.set_weights(weights)
    return cell


def _check_form(cell, source):
    """The Keras cell computes this cell's equations: a bias, tanh, sigmoid gates."""
    name = type(cell).__name__
    if not source.use_bias:
        raise KCCError(f"copy_keras_weights: {name} has a bias; the Keras cell has "
                       "use_bias=False")
    activations = {"activation": keras.activations.tanh}
    if hasattr(source, "recurrent_activation"):
        activations["recurrent_activation"] = keras.activations.sigmoid
    for attribute, function in activations.items():
        given = getattr(source, attribute)
        if given is not function:
            raise KCCError(f"copy_keras_weights: {name} uses {attribute}={function.__name__}; "
                           f"the Keras cell has {getattr(given, '__name__', given)}")
    if getattr(source, "reset_after", True) is not True:
        raise KCCError(f"copy_keras_weights: {name} is the reset_after=True form; the Keras "
                       "GRU has reset_after=False")
