"""Learning-rate schedules, as ``keras.optimizers.schedules.LearningRateSchedule``.

A schedule maps the optimizer's step counter ``t`` (0, 1, 2, ...) to a
learning rate. Each schedule here is a few lines of ``keras.ops``, is
serializable (``get_config`` plus registration, so it saves and loads with
the model's optimizer), and is logged to TensorBoard by
``keras.callbacks.TensorBoard``, which records ``optimizer.learning_rate``
(the schedule's current value) as ``learning_rate`` every epoch.

==================  ========================================================
schedule            learning rate at step ``t``
==================  ========================================================
StepDecay           ``lr0 * gamma ** floor(t / step_size)``  (He et al.,
                    "Deep Residual Learning", CVPR 2016, arXiv:1512.03385:
                    divide by 10 at fixed epochs)
CosineDecay         ``lr_end + (lr0 - lr_end) (1 + cos(pi t / T)) / 2``
                    (Loshchilov & Hutter, "SGDR", ICLR 2017,
                    arXiv:1608.03983, one cycle without restarts)
LinearDecay         ``lr0 + (lr_end - lr0) t / T``
InverseSqrtDecay    ``lr0 * sqrt(s / max(t, s))``  (Vaswani et al.,
                    "Attention Is All You Need", NeurIPS 2017,
                    arXiv:1706.03762, Eq. 3, without its warm-up part)
LinearWarmup        ramps linearly up to the wrapped schedule (Goyal et al.,
                    "Accurate, Large Minibatch SGD", arXiv:1706.02677)
OneCycle            up from ``lr_max / div`` to ``lr_max``, then down to
                    ``lr_max / (div * final_div)`` (Smith & Topin,
                    "Super-Convergence", arXiv:1708.07120)
==================  ========================================================

After the last step (``t >= T``) each decaying schedule stays at its final
value.

Example:
    >>> schedule = LinearWarmup(CosineDecay(0.1, decay_steps=900), warmup_steps=100)
    >>> optimizer = keras.optimizers.SGD(learning_rate=schedule)
"""

import math

import keras
from keras import ops

from keras_cv_course.errors import KCCError, unknown_name_error

_SERIALIZABLE = keras.saving.register_keras_serializable(package="keras_cv_course")


def _positive(name, value):
    if value is None or value <= 0:
        raise KCCError(f"{name} must be positive, got {value!r}")
    return value


def _step(step):
    return ops.cast(step, "float32")


class _Schedule(keras.optimizers.schedules.LearningRateSchedule):
    """Stores the constructor arguments and returns them as the config."""

    def __init__(self, **config):
        self._config = config
        for key, value in config.items():
            setattr(self, key, value)

    def get_config(self):
        return dict(self._config)


@_SERIALIZABLE
class StepDecay(_Schedule):
    """Multiplies the learning rate by ``gamma`` every ``step_size`` steps.

    Args:
        initial_learning_rate: ``lr0``.
        step_size: steps between two drops.
        gamma: factor of each drop (0.1 in the ResNet paper).
    """

    def __init__(self, initial_learning_rate, step_size, gamma=0.1):
        _positive("step_size", step_size)
        super().__init__(initial_learning_rate=initial_learning_rate, step_size=step_size,
                         gamma=gamma)

    def __call__(self, step):
        drops = ops.floor(_step(step) / self.step_size)
        return self.initial_learning_rate * ops.power(self.gamma, drops)


class _Decay(_Schedule):
    """A decay from ``initial_learning_rate`` to ``end_learning_rate`` over ``decay_steps``.

    Subclasses give the curve: ``fraction(progress)`` is 1 at the start and 0 at
    the end, for ``progress = min(step / decay_steps, 1)``.

    Args:
        initial_learning_rate: ``lr0``.
        decay_steps: ``T``, the length of the decay.
        end_learning_rate: the value at and after step ``T``.
    """

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0):
        _positive("decay_steps", decay_steps)
        super().__init__(initial_learning_rate=initial_learning_rate, decay_steps=decay_steps,
                         end_learning_rate=end_learning_rate)

    def __call__(self, step):
        progress = ops.minimum(_step(step) / self.decay_steps, 1.0)
        span = self.initial_learning_rate - self.end_learning_rate
        return self.end_learning_rate + span * self.fraction(progress)


@_SERIALIZABLE
class CosineDecay(_Decay):
    """Half a cosine from ``initial_learning_rate`` down to ``end_learning_rate``."""

    def fraction(self, progress):
        return 0.5 * (1.0 + ops.cos(math.pi * progress))


@_SERIALIZABLE
class LinearDecay(_Decay):
    """A straight line from ``initial_learning_rate`` to ``end_learning_rate``."""

    def fraction(self, progress):
        return 1.0 - progress


@_SERIALIZABLE
class InverseSqrtDecay(_Schedule):
    """Constant for ``timescale`` steps, then decays as ``1 / sqrt(t)``.

    ``lr(t) = lr0 * sqrt(timescale / max(t, timescale))``. Wrapped in
    ``LinearWarmup(..., warmup_steps=timescale, shift=False)`` this is the
    Transformer schedule ``d^-0.5 min(t^-0.5, t * warmup^-1.5)`` with peak
    ``lr0`` at the end of warm-up.

    Args:
        initial_learning_rate: ``lr0``, the plateau value.
        timescale: ``s``, the step at which the decay starts.
    """

    def __init__(self, initial_learning_rate, timescale=1000):
        _positive("timescale", timescale)
        super().__init__(initial_learning_rate=initial_learning_rate, timescale=timescale)

    def __call__(self, step):
        t = ops.maximum(_step(step), float(self.timescale))
        return self.initial_learning_rate * ops.sqrt(self.timescale / t)


@_SERIALIZABLE
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up in front of any schedule.

    For ``t < warmup_steps`` the rate rises linearly from
    ``start_factor * target`` to ``target``, where ``target`` is the wrapped
    schedule's value at the end of the warm-up. Afterwards the wrapped
    schedule takes over.

    Args:
        schedule: the schedule after the warm-up (a ``LearningRateSchedule``
            or a float).
        warmup_steps: length of the warm-up.
        start_factor: the first step's rate as a fraction of the target.
        shift: ``True`` starts the wrapped schedule at its own step 0 when the
            warm-up ends (``schedule(t - warmup_steps)``); ``False`` reads it at
            the global step (``schedule(t)``), as the Transformer schedule does.
    """

    def __init__(self, schedule, warmup_steps, start_factor=0.0, shift=True):
        _positive("warmup_steps", warmup_steps)
        self.schedule = schedule
        self.warmup_steps = warmup_steps
        self.start_factor = start_factor
        self.shift = shift

    def _after(self, step):
        if not callable(self.schedule):
            return ops.cast(self.schedule, "float32")
        return ops.cast(self.schedule(step), "float32")

    def __call__(self, step):
        t = _step(step)
        warmup = float(self.warmup_steps)
        if self.shift:
            target = self._after(0.0)
            after = self._after(ops.maximum(t - warmup, 0.0))
        else:
            target = self._after(warmup)
            after = self._after(t)
        fraction = self.start_factor + (1.0 - self.start_factor) * t / warmup
        return ops.where(t < warmup, target * fraction, after)

    def get_config(self):
        return {
            "schedule": keras.saving.serialize_keras_object(self.schedule),
            "warmup_steps": self.warmup_steps,
            "start_factor": self.start_factor,
            "shift": self.shift,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(**config)


@_SERIALIZABLE
class OneCycle(_Schedule):
    """The one-cycle policy: one warm-up to a large rate, then annealing.

    Phase 1 (the first ``pct_start`` of ``total_steps``) goes from
    ``max_learning_rate / div_factor`` up to ``max_learning_rate``; phase 2
    goes down to ``max_learning_rate / (div_factor * final_div_factor)``.
    Smith and Topin anneal linearly; ``anneal="cos"`` follows the common
    PyTorch/fastai default.

    Args:
        max_learning_rate: the peak rate.
        total_steps: length of the cycle.
        pct_start: fraction of the cycle spent increasing.
        div_factor: ``max / initial``.
        final_div_factor: ``initial / final``.
        anneal: ``"linear"`` or ``"cos"``.
    """

    def __init__(self, max_learning_rate, total_steps, pct_start=0.3, div_factor=25.0,
                 final_div_factor=1e4, anneal="linear"):
        _positive("total_steps", total_steps)
        if anneal not in ("linear", "cos"):
            raise KCCError(f"anneal must be 'linear' or 'cos', got {anneal!r}")
        if not 0.0 < pct_start < 1.0:
            raise KCCError(f"pct_start must be in (0, 1), got {pct_start!r}")
        super().__init__(max_learning_rate=max_learning_rate, total_steps=total_steps,
                         pct_start=pct_start, div_factor=div_factor,
                         final_div_factor=final_div_factor, anneal=anneal)

    def _interpolate(self, start, end, progress):
        if self.anneal == "cos":
            return end + (start - end) * 0.5 * (1.0 + ops.cos(math.pi * progress))
        return start + (end - start) * progress

    def __call__(self, step):
        t = _step(step)
        initial = self.max_learning_rate / self.div_factor
        final = initial / self.final_div_factor
        up_steps = float(self.pct_start * self.total_steps)
        down_steps = float(self.total_steps) - up_steps
        up = self._interpolate(initial, self.max_learning_rate, ops.minimum(t / up_steps, 1.0))
        progress = ops.clip((t - up_steps) / down_steps, 0.0, 1.0)
        down = self._interpolate(self.max_learning_rate, final, progress)
        return ops.where(t < up_steps, up, down)


SCHEDULES = {
    "step": StepDecay,
    "cosine": CosineDecay,
    "linear": LinearDecay,
    "inverse_sqrt": InverseSqrtDecay,
    "one_cycle": OneCycle,
}


def get(name, warmup_steps=0, **kwargs):
    """Builds a schedule by name, optionally behind a linear warm-up.

    Example:
        >>> get("cosine", initial_learning_rate=0.1, decay_steps=1000, warmup_steps=100)

    Raises:
        KCCError: unknown name; the message lists the closest names.
    """
    if name not in SCHEDULES:
        raise unknown_name_error("learning-rate schedule", name, SCHEDULES)
    schedule = SCHEDULES[name](**kwargs)
    return LinearWarmup(schedule, warmup_steps) if warmup_steps else schedule
