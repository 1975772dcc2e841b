"""The copy (memory) task, and the per-step state gradients that show vanishing gradients.

Papers:
    Sepp Hochreiter, Juergen Schmidhuber. "Long Short-Term Memory". Neural
    Computation 9(8), 1997 (its long-time-lag experiments).
    Martin Arjovsky, Amar Shah, Yoshua Bengio. "Unitary Evolution Recurrent
    Neural Networks". ICML 2016. arXiv:1511.06464 (section 4.1, the copy task).
    Yoshua Bengio, Patrice Simard, Paolo Frasconi. "Learning long-term
    dependencies with gradient descent is difficult". IEEE Transactions on
    Neural Networks 5(2), 1994.
    Razvan Pascanu, Tomas Mikolov, Yoshua Bengio. "On the difficulty of
    training recurrent neural networks". ICML 2013. arXiv:1211.5063.

The copy task. The alphabet has ``symbols + 2`` letters: ``0`` is the blank,
``1 .. symbols`` are data and ``symbols + 1`` is the delimiter. A sequence of
``length`` steps shows ``copy_length`` random data letters, then blanks, then
the delimiter, then ``copy_length`` more blanks, during which the network
must write the data letters back in order; every other target is the blank::

    inputs   d1 d2 .. dK  _  _ .. _  :  _  _ .. _
    targets  _  _  .. _   _  _ .. _  _  d1 d2 .. dK

Arjovsky et al. write ``T`` for the number of steps between the two
halves; their sequences have ``T + 2K`` steps, so ``length = T + 20`` with
``K = 10`` is theirs.

The measurement. Let ``L`` be the loss at the last ``loss_steps`` steps
(softmax cross-entropy of a ``Dense`` readout of the hidden state, averaged
over the batch and those steps) and ``h_t`` the hidden state after step
``t`` (``t = 1 .. length``; for the LSTM ``h``, not the cell state ``c``).
``state_gradient_norms`` returns, for every ``t``, the Frobenius norm (over
the batch and the units) of the total derivative ``dL/dh_t``: the error
signal that back-propagation through time carries into step ``t`` along
every later path. It is read as the gradient of ``L`` with respect to a
zero perturbation ``e_t`` added to ``h_t`` (``h_t + e_t`` is what step
``t + 1`` and the readout see), so one backward pass gives every step.

Bengio et al. (1994) and Pascanu et al. (2013) show that in a vanilla RNN
``dL/dh_t = dL/dh_T prod_{s=t+1..T} diag(tanh'(a_s)) U^T``; when the
factors' norms stay below one it shrinks exponentially in ``T - t``. The
LSTM's error also flows through ``c``, multiplied only by the forget gates.

What it shows, measured (``tests/test_cells.py``: ``seeded_cell(..., 32,
seed=0)``, ``length`` 40, the evaluation batch ``copy_task_batch(32, 40,
seed=1)``; the ratio ``||dL/dh_1|| / ||dL/dh_40||``):

* At Keras' default initialisation the LSTM does *not* keep more gradient
  than the RNN (LSTM 7.3e-4, RNN 2.0e-2). The RNN's orthogonal recurrent
  kernel preserves norms and its units start far from saturation, while
  every LSTM forget gate starts near ``sigmoid(1) = 0.73``
  (``unit_forget_bias``; measured mean 0.73, none above 0.77), so the cell
  state's error shrinks about like ``0.73 ** 39``.
* After ``train_on_copy_task``'s 100 Adam steps the effect is there: the
  RNN's ratio falls to 1.9e-9 (its units saturate: the mean ``tanh'`` of
  its states drops to about 0.2), while the LSTM's rises to 3.0e-2 (a few
  units now keep forget gates near 0.93). The LSTM has then reached the
  memoryless baseline (blanks, then a uniform guess over the letters:
  ``log 8 = 2.08`` on the 10 copy steps; measured 2.09 on 256 fresh
  sequences); the RNN is still above it (3.16).

The test asserts both findings, and ``scripts/plot_vanishing_gradients.py``
draws both (``length`` 50: initial RNN 6.2e-3 and LSTM 1.3e-4; trained RNN
2.4e-18 and LSTM 2.8e-1).
"""

import keras
import numpy as np
from keras import ops

from keras_cv_course.errors import KCCError
from keras_cv_course.sequence.cells import unroll
from keras_cv_course.understanding.gradients import value_and_gradient

COPY_LENGTH = 10  # Arjovsky et al.'s K


def seeded_cell(cell_class, units, seed=0):
    """``cell_class(units)`` with Keras' default initialisers, seeded (Glorot-uniform
    kernel, orthogonal recurrent kernel), so an experiment is the same every run."""
    return cell_class(units, kernel_initializer=keras.initializers.GlorotUniform(seed),
                      recurrent_initializer=keras.initializers.Orthogonal(seed=seed + 1))


def copy_task_batch(batch_size, length, symbols=8, seed=0, copy_length=COPY_LENGTH):
    """One batch of the copy task as one-hot arrays.

    Args:
        batch_size: sequences in the batch.
        length: steps per sequence, at least ``2 * copy_length + 1``.
        symbols: data letters; the alphabet adds the blank (0) and the
            delimiter (``symbols + 1``).
        seed: the NumPy seed; the same arguments give the same batch.
        copy_length: letters to copy (Arjovsky et al.'s 10).

    Returns:
        ``(inputs, targets)``, both float32 ``(batch_size, length, symbols + 2)``
        one-hot.

    Raises:
        KCCError: ``length`` is too short for ``copy_length``.

    Example:
        >>> inputs, targets = copy_task_batch(32, 40)   # (32, 40, 10) each
    """
    if length < 2 * copy_length + 1:
        raise KCCError(f"copy_task_batch: expected length >= 2 * copy_length + 1 = "
                       f"{2 * copy_length + 1}; got {length}")
    letters = np.random.default_rng(seed).integers(1, symbols + 1, (batch_size, copy_length))
    inputs = np.zeros((batch_size, length), dtype="int64")
    targets = np.zeros((batch_size, length), dtype="int64")
    inputs[:, :copy_length] = letters
    inputs[:, length - copy_length - 1] = symbols + 1
    targets[:, length - copy_length:] = letters
    eye = np.eye(symbols + 2, dtype="float32")
    return eye[inputs], eye[targets]


def state_gradient_norms(cell, inputs, targets, loss_steps=COPY_LENGTH, readout=None, seed=0):
    """The norm of ``dL/dh_t`` at every step ``t``, for the loss at the last steps.

    The cell runs over ``inputs`` from zero states, a ``Dense`` readout maps
    each hidden state to logits, and ``L`` is the softmax cross-entropy
    against ``targets`` averaged over the batch and the last ``loss_steps``
    steps. The module docstring gives the definition; the gradient comes
    from ``understanding.gradients`` (TensorFlow or JAX backend).

    Args:
        cell: an ``RNNCell``, ``LSTMCell`` or ``GRUCell`` (built or not).
        inputs, targets: ``(batch, time, letters)`` from ``copy_task_batch``.
        loss_steps: how many final steps the loss covers.
        readout: the ``Dense`` layer to logits; by default a new one with
            ``letters`` units, Glorot-uniform with ``seed``.
        seed: the default readout's seed.

    Returns:
        A float64 NumPy array of ``time`` norms; entry ``t - 1`` is step
        ``t``'s ``||dL/dh_t||``.

    Example:
        >>> inputs, targets = copy_task_batch(32, 40)
        >>> norms = state_gradient_norms(RNNCell(32), inputs, targets)
        >>> norms[0] / norms[-1]   # how much of the last step's signal reaches the first
    """
    inputs = np.asarray(inputs, dtype="float32")
    targets = np.asarray(targets, dtype="float32")
    if inputs.ndim != 3 or targets.ndim != 3 or targets.shape[:2] != inputs.shape[:2]:
        raise KCCError(f"state_gradient_norms: expected inputs (batch, time, letters) and "
                       f"targets with the same batch and time; got {inputs.shape} and "
                       f"{targets.shape}")
    batch, time = inputs.shape[:2]
    if not 1 <= loss_steps <= time:
        raise KCCError(f"state_gradient_norms: expected 1 <= loss_steps <= {time}; "
                       f"got {loss_steps}")
    if readout is None:
        readout = keras.layers.Dense(
            targets.shape[-1], kernel_initializer=keras.initializers.GlorotUniform(seed))

    for layer, features in ((cell, inputs.shape[-1]), (readout, cell.units)):
        if not layer.built:  # outside the gradient's trace
            layer.build((None, features))

    def loss(perturbation):
        states = cell.initial_state(batch)
        hidden = []
        for t in range(time):
            h, states = cell(inputs[:, t], states)
            h = h + perturbation[:, t]  # e_t: its gradient is dL/dh_t
            states = [h, *states[1:]]  # states[0] is h for the RNN, GRU and LSTM
            hidden.append(h)
        logits = readout(ops.stack(hidden[time - loss_steps:], axis=1))
        losses = keras.losses.categorical_crossentropy(targets[:, time - loss_steps:], logits,
                                                       from_logits=True)
        return ops.mean(losses)

    _, gradient = value_and_gradient(loss, np.zeros((batch, time, cell.units), "float32"))
    return np.sqrt(np.sum(np.square(gradient.astype("float64")), axis=(0, 2)))


def train_on_copy_task(cell, length, steps=100, batch_size=64, learning_rate=1e-2, symbols=8,
                       seed=0):
    """Trains ``cell`` with a ``Dense`` readout on the copy task, with ``model.fit``.

    The loss is the softmax cross-entropy at every step (Arjovsky et al.'s),
    minimised with Adam over ``steps`` batches of fresh sequences, in a fixed
    order: with seeded initialisers the result is the same every run.

    Args:
        cell: an ``RNNCell``, ``LSTMCell`` or ``GRUCell``, not yet built or
            built for ``symbols + 2`` features.
        length: steps per sequence.
        steps, batch_size, learning_rate: the optimisation.
        symbols: data letters (``copy_task_batch``).
        seed: the data's and the readout's seed.

    Returns:
        ``(readout, loss)``: the trained ``Dense`` layer (pass it to
        ``state_gradient_norms``) and the mean training loss over the steps.
        The memoryless baseline (blanks, then a uniform guess) is
        ``copy_length * log(symbols) / length``.
    """
    letters = symbols + 2
    inputs = keras.Input((length, letters), name="letters")
    readout = keras.layers.Dense(letters, kernel_initializer=keras.initializers.GlorotUniform(seed),
                                 name="readout")
    model = keras.Model(inputs, readout(unroll(cell, inputs)[0]))
    model.compile(keras.optimizers.Adam(learning_rate),
                  keras.losses.CategoricalCrossentropy(from_logits=True))
    x, y = copy_task_batch(batch_size * steps, length, symbols, seed=seed)
    history = model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    return readout, float(history.history["loss"][-1])

