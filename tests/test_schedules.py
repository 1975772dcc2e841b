"""Learning-rate schedules: values, warm-up composition, serialization, logging."""

import glob
import math

import keras
import numpy as np
import pytest

from keras_cv_course.errors import KCCError
from keras_cv_course.training import schedules


def values(schedule, steps):
    return np.array([float(keras.ops.convert_to_numpy(schedule(s))) for s in steps])


def test_step_decay():
    schedule = schedules.StepDecay(0.1, step_size=10, gamma=0.5)
    np.testing.assert_allclose(values(schedule, [0, 9, 10, 25]), [0.1, 0.1, 0.05, 0.025],
                               rtol=1e-6)


def test_cosine_decay_matches_keras():
    ours = schedules.CosineDecay(0.1, decay_steps=50, end_learning_rate=0.0)
    theirs = keras.optimizers.schedules.CosineDecay(0.1, decay_steps=50)
    steps = [0, 1, 13, 25, 49, 50, 80]
    np.testing.assert_allclose(values(ours, steps), values(theirs, steps), atol=1e-7)
    assert values(ours, [25])[0] == pytest.approx(0.05)


def test_linear_decay_matches_keras_polynomial():
    ours = schedules.LinearDecay(0.1, decay_steps=40, end_learning_rate=0.01)
    theirs = keras.optimizers.schedules.PolynomialDecay(0.1, 40, end_learning_rate=0.01)
    steps = [0, 10, 20, 40, 60]
    np.testing.assert_allclose(values(ours, steps), values(theirs, steps), atol=1e-7)


def test_inverse_sqrt_with_warmup_is_the_transformer_schedule():
    d_model, warmup = 512, 400
    peak = d_model**-0.5 * warmup**-0.5
    schedule = schedules.LinearWarmup(schedules.InverseSqrtDecay(peak, timescale=warmup),
                                      warmup_steps=warmup, shift=False)
    for t in [1, 100, 399, 400, 1000, 5000]:
        expected = d_model**-0.5 * min(t**-0.5, t * warmup**-1.5)  # Vaswani et al., Eq. 3
        assert values(schedule, [t])[0] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("name", sorted(schedules.SCHEDULES))
def test_warmup_composes_with_every_schedule(name):
    schedule = schedules.get(name, warmup_steps=10, **_arguments(name))
    after = schedules.SCHEDULES[name](**_arguments(name))
    warm = values(schedule, range(0, 11))
    target = values(after, [0])[0]
    np.testing.assert_allclose(warm, target * np.arange(11) / 10, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(values(schedule, [15, 30]), values(after, [5, 20]), rtol=1e-6)


def test_one_cycle_values():
    schedule = schedules.OneCycle(1.0, total_steps=100, pct_start=0.3, div_factor=10.0,
                                  final_div_factor=100.0)
    np.testing.assert_allclose(values(schedule, [0, 15, 30, 65, 100, 200]),
                               [0.1, 0.55, 1.0, 0.5 * (1.0 + 0.001), 0.001, 0.001], rtol=1e-4)
    cosine = schedules.OneCycle(1.0, total_steps=100, anneal="cos", div_factor=10.0,
                                final_div_factor=100.0)
    expected = 0.001 + (1.0 - 0.001) * 0.5 * (1 + math.cos(math.pi * 0.5))
    assert values(cosine, [65])[0] == pytest.approx(expected, rel=1e-5)


def _arguments(name):
    return {
        "step": dict(initial_learning_rate=0.1, step_size=10),
        "cosine": dict(initial_learning_rate=0.1, decay_steps=40),
        "linear": dict(initial_learning_rate=0.1, decay_steps=40),
        "inverse_sqrt": dict(initial_learning_rate=0.1, timescale=5),
        "one_cycle": dict(max_learning_rate=0.1, total_steps=40),
    }[name]


@pytest.mark.parametrize("name", sorted(schedules.SCHEDULES))
def test_serialization_round_trip(name):
    schedule = schedules.get(name, warmup_steps=5, **_arguments(name))
    config = keras.saving.serialize_keras_object(schedule)
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is type(schedule)
    steps = [0, 3, 7, 20, 50]
    np.testing.assert_allclose(values(restored, steps), values(schedule, steps))


def test_schedule_saves_with_model_and_is_logged_to_tensorboard(tmp_path):
    import tensorflow as tf

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    schedule = schedules.LinearWarmup(schedules.CosineDecay(0.1, 20), warmup_steps=2)
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
    x, y = np.ones((8, 3), "float32"), np.zeros((8, 2), "float32")
    log_dir = str(tmp_path / "logs")
    model.fit(x, y, epochs=2, batch_size=4, verbose=0,
              callbacks=[keras.callbacks.TensorBoard(log_dir)])
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    restored = loaded.optimizer.get_config()["learning_rate"]
    assert keras.saving.deserialize_keras_object(restored).get_config() == schedule.get_config()
    assert float(loaded.optimizer.learning_rate) == pytest.approx(float(schedule(4)))
    tags = set()
    for event_file in glob.glob(f"{log_dir}/train/events.*"):
        for record in tf.compat.v1.train.summary_iterator(event_file):
            tags.update(value.tag for value in record.summary.value)
    assert "epoch_learning_rate" in tags


def test_bad_arguments():
    with pytest.raises(KCCError, match="cosine"):
        schedules.get("cosin")
    with pytest.raises(KCCError, match="decay_steps"):
        schedules.CosineDecay(0.1, decay_steps=0)
