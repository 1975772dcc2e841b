"""Reference optimizers, written as the course derives them.

Each optimizer is a ``keras.optimizers.Optimizer`` subclass: ``build`` makes
its state (one slot per model variable) and ``update_step`` applies one
update with ``keras.ops``, so they run under every Keras backend, inside
``model.fit``, and save and load with the model.

Notation: ``w`` a weight, ``g`` its gradient, ``lr`` the learning rate at
this step (a schedule is allowed), ``t`` the 1-based step number.

============  ===========================================================
optimizer     update
============  ===========================================================
SGD           ``w -= lr * g``
SGDMomentum   ``v = mu * v - lr * g;  w += v``  (Polyak 1964; Sutskever et
              al., ICML 2013)
Nesterov      ``v' = mu * v - lr * g;  w += -mu * v + (1 + mu) * v'``
              (Nesterov 1983, in the "look-ahead" form of Sutskever et al.
              2013 and Bengio et al. arXiv:1212.0901)
AdaGrad       ``G += g^2;  w -= lr * g / (sqrt(G) + eps)``  (Duchi, Hazan,
              Singer, "Adaptive Subgradient Methods ...", JMLR 2011)
RMSProp       ``s = rho * s + (1 - rho) * g^2;  w -= lr * g / (sqrt(s) + eps)``
              (Tieleman & Hinton, COURSERA Neural Networks lecture 6e, 2012)
Adam          ``m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
              m^ = m / (1-b1^t);  v^ = v / (1-b2^t);
              w -= lr * m^ / (sqrt(v^) + eps)``  (Kingma & Ba, "Adam: A
              Method for Stochastic Optimization", ICLR 2015,
              arXiv:1412.6980, Algorithm 1)
AdamW         Adam plus the decoupled decay ``w -= lr * lambda * w``
              (Loshchilov & Hutter, "Decoupled Weight Decay
              Regularization", ICLR 2019, arXiv:1711.05101, Algorithm 2)
============  ===========================================================

Where these equal Keras' built-ins, and where not (tested in
``tests/test_optimizers.py``):

* SGD, SGDMomentum, Nesterov and AdamW follow the same trajectory as
  ``keras.optimizers.SGD`` / ``SGD(momentum=...)`` / ``SGD(nesterov=True)`` /
  ``AdamW`` (Keras, like PyTorch, multiplies the decay by the learning rate;
  the paper writes ``eta_t * lambda`` with a separate schedule multiplier
  ``eta_t``; the two coincide with ``lambda_paper = lr * lambda``).
* AdaGrad and RMSProp put ``eps`` outside the square root, as the papers
  and the course do; Keras writes ``sqrt(G + eps)``. AdaGrad here starts its
  accumulator at 0 (the paper), Keras at 0.1. With ``epsilon=0`` and the
  same initial accumulator the two are identical, and the tests check that;
  the defaults are checked against the paper formula in NumPy.
* Adam here is Algorithm 1 of the paper (bias-corrected moments, ``eps``
  added to ``sqrt(v^)``); Keras implements the paper's "efficient" variant
  (``alpha_t = lr sqrt(1-b2^t)/(1-b1^t)``, ``eps`` added to ``sqrt(v)``),
  which amounts to a step-dependent epsilon ``eps * sqrt(1 - b2^t)``. The
  two agree to float precision when ``epsilon=0``; the tests check that and
  check the defaults against NumPy.
"""

import keras
from keras import ops

from keras_cv_course.errors import unknown_name_error

_SERIALIZABLE = keras.saving.register_keras_serializable(package="keras_cv_course")


class _SlotOptimizer(keras.optimizers.Optimizer):
    """Shared plumbing: one named state slot per model variable."""

    slot_names = ()
    slot_initial_value = 0.0

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        initializer = keras.initializers.Constant(self.slot_initial_value)
        self._slots = {
            name: self.add_optimizer_variables(variables, name, initializer=initializer)
            for name in self.slot_names
        }

    def slot(self, name, variable):
        """The state ``name`` (e.g. ``"velocity"``) that belongs to ``variable``."""
        return self._slots[name][self._get_variable_index(variable)]


@_SERIALIZABLE
class SGD(_SlotOptimizer):
    """Stochastic gradient descent: ``w -= lr * g``.

    Args:
        learning_rate: a float or a ``LearningRateSchedule``.
        name: optimizer name.
        **kwargs: base ``Optimizer`` arguments (clipping, EMA, ...).
    """

    def __init__(self, learning_rate=0.01, name="sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        self.assign_sub(variable, lr * ops.cast(gradient, variable.dtype))


@_SERIALIZABLE
class SGDMomentum(_SlotOptimizer):
    """SGD with (heavy-ball) momentum: a velocity that integrates gradients.

    ``v = mu * v - lr * g;  w += v``. With constant ``lr`` this equals
    PyTorch's ``v = mu * v + g;  w -= lr * v``.

    Args:
        learning_rate: a float or a ``LearningRateSchedule``.
        momentum: ``mu``, the fraction of the velocity kept each step.
        name: optimizer name.
        **kwargs: base ``Optimizer`` arguments.
    """

    slot_names = ("velocity",)

    def __init__(self, learning_rate=0.01, momentum=0.9, name="sgd_momentum", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum = momentum

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        g = ops.cast(gradient, variable.dtype)
        velocity = self.slot("velocity", variable)
        self.assign(velocity, self.momentum * velocity - lr * g)
        self.assign_add(variable, velocity)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum}


@_SERIALIZABLE
class Nesterov(SGDMomentum):
    """Nesterov accelerated gradient, in the "look-ahead" form.

    The gradient is conceptually taken at ``w + mu * v``; rewriting in terms
    of the look-ahead point gives an update that only needs ``g(w)``:
    ``v_prev = v;  v = mu * v - lr * g;  w += -mu * v_prev + (1 + mu) * v``.

    Args:
        learning_rate: a float or a ``LearningRateSchedule``.
        momentum: ``mu``.
        name: optimizer name.
        **kwargs: base ``Optimizer`` arguments.
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, name="nesterov", **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=momentum, name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        g = ops.cast(gradient, variable.dtype)
        velocity = self.slot("velocity", variable)
        new_velocity = self.momentum * velocity - lr * g
        step = -self.momentum * velocity + (1.0 + self.momentum) * new_velocity
        self.assign(velocity, new_velocity)
        self.assign_add(variable, step)


@_SERIALIZABLE
class AdaGrad(_SlotOptimizer):
    """AdaGrad: per-coordinate steps shrink with the accumulated squared gradient.

    ``G += g^2;  w -= lr * g / (sqrt(G) + eps)``.

    Args:
        learning_rate: a float or a ``LearningRateSchedule``.
        initial_accumulator_value: starting value of ``G`` (0 in the paper;
            Keras uses 0.1).
        epsilon: added to ``sqrt(G)`` (Keras adds it inside the root).
        name: optimizer name.
        **kwargs: base ``Optimizer`` arguments.
    """

    slot_names = ("accumulator",)

    def __init__(self, learning_rate=0.01, initial_accumulator_value=0.0, epsilon=1e-7,
                 name="adagrad", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.initial_accumulator_value = initial_accumulator_value
        self.slot_initial_value = initial_accumulator_value
        self.epsilon = epsilon

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        g = ops.cast(gradient, variable.dtype)
        accumulator = self.slot("accumulator", variable)
        self.assign_add(accumulator, ops.square(g))
        self.assign_sub(variable, lr * g / (ops.sqrt(accumulator) + self.epsilon))

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon,
                "initial_accumulator_value": self.initial_accumulator_value}


@_SERIALIZABLE
class RMSProp(_SlotOptimizer):
    """RMSProp: AdaGrad with a leaky (exponential moving) average of ``g^2``.

    ``s = rho * s + (1 - rho) * g^2;  w -= lr * g / (sqrt(s) + eps)``.

    Args:
        learning_rate: a float or a ``LearningRateSchedule``.
        rho: decay of the moving average.
        epsilon: added to ``sqrt(s)`` (Keras adds it inside the root).
        name: optimizer name.
        **kwargs: base ``Optimizer`` arguments.
    """

    slot_names = ("mean_square",)

    def __init__(self, learning_rate=0.001, rho=0.9, epsilon=1e-7, name="rmsprop", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.rho = rho
        self.epsilon = epsilon

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        g = ops.cast(gradient, variable.dtype)
        mean_square = self.slot("mean_square", variable)
        self.assign(mean_square, self.rho * mean_square + (1.0 - self.rho) * ops.square(g))
        self.assign_sub(variable, lr * g / (ops.sqrt(mean_square) + self.epsilon))

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


@_SERIALIZABLE
class Adam(_SlotOptimizer):
    """Adam: momentum (first moment) plus RMSProp (second moment), bias-corrected.

    Both moments start at zero, so early on they are biased towards zero;
    dividing by ``1 - beta^t`` removes that bias (Kingma & Ba, Section 3).

    Args:
        learning_rate: a float or a ``LearningRateSchedule``.
        beta_1: decay of the first moment.
        beta_2: decay of the second moment.
        epsilon: added to ``sqrt(v^)``.
        name: optimizer name.
        **kwargs: base ``Optimizer`` arguments.
    """

    slot_names = ("first_moment", "second_moment")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 name="adam", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def adam_direction(self, gradient, variable):
        """Updates the moments and returns ``m^ / (sqrt(v^) + eps)``."""
        g = ops.cast(gradient, variable.dtype)
        t = ops.cast(self.iterations + 1, variable.dtype)
        m = self.slot("first_moment", variable)
        v = self.slot("second_moment", variable)
        self.assign(m, self.beta_1 * m + (1.0 - self.beta_1) * g)
        self.assign(v, self.beta_2 * v + (1.0 - self.beta_2) * ops.square(g))
        m_hat = m / (1.0 - ops.power(ops.cast(self.beta_1, variable.dtype), t))
        v_hat = v / (1.0 - ops.power(ops.cast(self.beta_2, variable.dtype), t))
        return m_hat / (ops.sqrt(v_hat) + self.epsilon)

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        self.assign_sub(variable, lr * self.adam_direction(gradient, variable))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


@_SERIALIZABLE
class AdamW(Adam):
    """Adam with decoupled weight decay.

    L2 regularisation added to the loss is rescaled by Adam's per-coordinate
    step, so heavily-updated weights are barely decayed. AdamW decays every
    weight at the same rate, outside the adaptive step:
    ``w -= lr * (m^ / (sqrt(v^) + eps) + lambda * w)``.

    Args:
        learning_rate: a float or a ``LearningRateSchedule``.
        weight_decay: ``lambda``, multiplied by the learning rate as in Keras
            and PyTorch.
        beta_1, beta_2, epsilon: as in ``Adam``.
        name: optimizer name.
        **kwargs: base ``Optimizer`` arguments.
    """

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, name="adamw", **kwargs):
        # The decay is applied in update_step; it is not passed to the base
        # class, which would apply it a second time.
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, name=name, **kwargs)
        self.decoupled_weight_decay = weight_decay

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        decay = ops.cast(self.decoupled_weight_decay, variable.dtype) * variable
        direction = self.adam_direction(gradient, variable)
        self.assign_sub(variable, lr * (direction + decay))

    def get_config(self):
        return {**super().get_config(), "weight_decay": self.decoupled_weight_decay}


OPTIMIZERS = {
    "sgd": SGD,
    "sgd_momentum": SGDMomentum,
    "nesterov": Nesterov,
    "adagrad": AdaGrad,
    "rmsprop": RMSProp,
    "adam": Adam,
    "adamw": AdamW,
}


def get(name, **kwargs):
    """Builds a reference optimizer by name, e.g. ``get("adam", learning_rate=1e-3)``.

    Raises:
        KCCError: unknown name; the message lists the closest names.
    """
    if name not in OPTIMIZERS:
        raise unknown_name_error("optimizer", name, OPTIMIZERS)
    return OPTIMIZERS[name](**kwargs)
