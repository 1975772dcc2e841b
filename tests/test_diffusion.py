"""The diffusion model: schedules, forward noising, the DDIM sampler, training on TF and JAX."""

import math

import keras
import numpy as np
import pytest

from keras_cv_course.applications.generative.diffusion import TINY, VARIANTS, Diffusion
from keras_cv_course.errors import KCCError
from keras_cv_course.generative import ddim as diffusion_ddim
from keras_cv_course.generative.ddim import NoiseSchedule, ddim_sample, ddim_timesteps
from tests.jax_runner import run_on_jax

SHAPE = (16, 16, 1)


@pytest.fixture(scope="module")
def digits():
    from keras_cv_course.data.embedded import digits_arrays

    images, _ = digits_arrays(image_size=SHAPE[:2])
    return images


def one_line_error(call):
    with pytest.raises(KCCError) as error:
        call()
    assert "\n" not in str(error.value)
    return str(error.value)


# -- schedules --------------------------------------------------------------------------------

def test_linear_schedule_is_ddpm_exactly():
    schedule = NoiseSchedule("linear", timesteps=1000)
    assert schedule.betas.shape == (1000,)
    assert schedule.betas[0] == 1e-4 and schedule.betas[-1] == 0.02
    np.testing.assert_allclose(np.diff(schedule.betas), (0.02 - 1e-4) / 999, rtol=1e-9)
    abar = schedule.alphas_cumprod
    assert np.all(np.diff(abar) < 0) and np.all((abar > 0) & (abar < 1))
    assert abar[0] == 1.0 - 1e-4
    np.testing.assert_allclose(abar[-1], np.prod(1.0 - schedule.betas), rtol=1e-12)
    assert abar[-1] < 1e-4  # x_T is all but pure noise


def test_cosine_schedule_follows_its_closed_form():
    schedule = NoiseSchedule("cosine", timesteps=1000)
    abar = schedule.alphas_cumprod
    assert np.all(np.diff(abar) < 0) and np.all((abar > 0) & (abar < 1))
    assert abar[0] > 0.9999 and np.all(schedule.betas <= 0.999)

    def f(t, s=0.008):
        return math.cos((t / 1000 + s) / (1 + s) * math.pi / 2) ** 2

    for t in (1, 100, 500, 900):  # index t - 1 is the paper's step t; unclipped here
        np.testing.assert_allclose(abar[t - 1], f(t) / f(0), rtol=1e-10)
    assert abs(abar[499] - 0.5) < 0.03  # cosine keeps half the signal at T / 2


def test_ddim_timesteps_and_bad_arguments():
    np.testing.assert_array_equal(ddim_timesteps(1000, 4), [0, 333, 666, 999])
    assert len(ddim_timesteps(1000, 1000)) == 1000
    assert "steps" in one_line_error(lambda: ddim_timesteps(10, 11))
    assert "schedule" in one_line_error(lambda: NoiseSchedule("quadratic"))
    assert "beta" in one_line_error(lambda: NoiseSchedule("linear", beta_start=0.1, beta_end=0.01))
    assert "even" in one_line_error(lambda: Diffusion(**{**TINY, "input_shape": (15, 16, 1)}))
    assert "groups" in one_line_error(lambda: Diffusion(**{**TINY, "widths": (6, 8), "groups": 4}))


# -- forward noising --------------------------------------------------------------------------

def test_forward_noising_has_the_right_moments():
    schedule = NoiseSchedule("linear")
    rng = np.random.default_rng(0)
    x0 = np.full((200_000,), 0.6)
    for t in (0, 250, 999):
        xt = schedule.q_sample(x0, np.full(x0.shape, t), rng.standard_normal(x0.shape))
        abar = schedule.alphas_cumprod[t]
        assert abs(xt.mean() - math.sqrt(abar) * 0.6) < 0.01
        assert abs(xt.var() - (1.0 - abar)) < 0.01 * max(1.0 - abar, 0.01) + 2e-4


def test_the_model_noises_images_as_q_does():
    model = Diffusion(**TINY, seed=1)
    images = np.full((512,) + SHAPE, 0.8, dtype="float32")  # x0 = 0.6
    out = {k: keras.ops.convert_to_numpy(v) for k, v in model(images).items()}
    t = out["timesteps"]
    assert np.all(t == np.round(t)) and t.min() >= 0 and t.max() <= 999
    assert abs(t.mean() - 499.5) < 40 and len(np.unique(t)) > 300  # uniform over [0, T)
    noise = out["noise"]
    assert abs(noise.mean()) < 0.01 and abs(noise.var() - 1.0) < 0.02
    expected = NoiseSchedule("linear").q_sample(np.full(noise.shape, 0.6), t.astype(int), noise)
    np.testing.assert_allclose(out["noisy_images"], expected, atol=1e-5)


# -- DDIM with a perfect noise predictor ------------------------------------------------------

def oracle(x0, schedule, record):
    """The noise predictor that knows ``x0``: ``eps = (x_t - sqrt(abar) x0) / sqrt(1 - abar)``."""

    def denoise(noisy, timesteps):
        assert noisy.dtype == np.float32 and timesteps.shape == (len(noisy),)
        abar = schedule.alphas_cumprod[int(timesteps[0])]
        eps = (noisy.astype("float64") - math.sqrt(abar) * x0) / math.sqrt(1.0 - abar)
        record.append((int(timesteps[0]), eps))
        return {"predicted_noise": eps.astype("float32")}

    return denoise


@pytest.mark.parametrize("name", ["linear", "cosine"])
@pytest.mark.parametrize("clip", [False, True])
def test_ddim_with_an_oracle_recovers_x0_exactly(name, clip):
    schedule = NoiseSchedule(name)
    x0 = np.random.default_rng(3).uniform(-1, 1, (4,) + SHAPE)
    record = []
    images = ddim_sample(oracle(x0, schedule, record), 4, SHAPE, schedule, steps=20, seed=7,
                         clip=clip)
    np.testing.assert_allclose(images * 2.0 - 1.0, x0, atol=1e-5)
    assert [t for t, _ in record] == sorted(ddim_timesteps(1000, 20).tolist(), reverse=True)
    # eta = 0 keeps x_t on the line sqrt(abar) x0 + sqrt(1 - abar) eps with the SAME eps,
    # which checks the update's direction term, not only its last step.
    first = record[0][1]
    for _, eps in record[1:]:
        np.testing.assert_allclose(eps, first, atol=1e-3)
    x_T = np.random.default_rng(7).standard_normal((4,) + SHAPE)
    abar_T = schedule.alphas_cumprod[999]
    np.testing.assert_allclose(first, (x_T - math.sqrt(abar_T) * x0) / math.sqrt(1 - abar_T),
                               atol=1e-5)


def test_stochastic_ddim_step_against_its_formula():
    rng = np.random.default_rng(0)
    x, eps, z = (rng.standard_normal((3, 2, 2, 1)) for _ in range(3))
    abar, abar_prev, eta = 0.3, 0.6, 0.7
    x_prev, _ = diffusion_ddim.ddim_step(x, eps, abar, abar_prev, eta, z, clip=False)
    sigma = eta * math.sqrt((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev))
    x0 = (x - math.sqrt(1 - abar) * eps) / math.sqrt(abar)
    expected = (math.sqrt(abar_prev) * x0 + math.sqrt(1 - abar_prev - sigma ** 2) * eps
                + sigma * z)
    np.testing.assert_allclose(x_prev, expected, rtol=1e-12)
    # eta = 1 on consecutive steps is DDPM's ancestral step: its mean is the posterior mean
    # mu_tilde(x_t, x0) and its variance beta_tilde.
    alpha = abar / abar_prev
    mean, x0_hat = diffusion_ddim.ddim_step(x, eps, abar, abar_prev, 1.0, None, clip=False)
    beta = 1.0 - alpha
    mu_tilde = (math.sqrt(abar_prev) * beta / (1 - abar) * x0_hat
                + math.sqrt(alpha) * (1 - abar_prev) / (1 - abar) * x)
    np.testing.assert_allclose(mean, mu_tilde, rtol=1e-10, atol=1e-12)
    with_noise, _ = diffusion_ddim.ddim_step(x, eps, abar, abar_prev, 1.0, z, clip=False)
    beta_tilde = (1 - abar_prev) / (1 - abar) * beta
    np.testing.assert_allclose(with_noise - mean, math.sqrt(beta_tilde) * z, rtol=1e-10)


# -- the loss and training --------------------------------------------------------------------

def test_a_zero_predictor_scores_one():
    model = Diffusion(**TINY, seed=0)
    for variable in model.denoiser.weights:
        variable.assign(np.zeros(variable.shape, variable.dtype))
    images = np.random.default_rng(0).uniform(size=(256,) + SHAPE).astype("float32")
    outputs = model(images)
    assert np.all(keras.ops.convert_to_numpy(outputs["predicted_noise"]) == 0)
    loss = float(model.compute_loss(x=images, y_pred=outputs))
    assert abs(loss - 1.0) < 0.03, loss


def test_one_fit_step_on_tensorflow(digits):
    model = Diffusion(**TINY, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    seed_before = keras.ops.convert_to_numpy(model.seed_generator.state).copy()
    history = model.fit(digits[:16], batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    assert all(not np.array_equal(b, a) for b, a in zip(before, after))
    assert not np.array_equal(seed_before, keras.ops.convert_to_numpy(model.seed_generator.state))


JAX_SCRIPT = """
import keras, numpy as np
assert keras.backend.backend() == "jax"
from keras_cv_course.applications.generative.diffusion import TINY, Diffusion
model = Diffusion(**TINY, seed=0)
model.compile(optimizer=keras.optimizers.Adam(1e-3))
before = [np.array(w) for w in model.trainable_weights]
seed_before = np.array(model.seed_generator.state)
images = np.random.default_rng(0).uniform(size=(16, 16, 16, 1)).astype("float32")
loss = model.fit(images, batch_size=8, epochs=1, verbose=0).history["loss"][0]
assert np.isfinite(loss), loss
changed = [not np.array_equal(b, np.array(w)) for b, w in zip(before, model.trainable_weights)]
assert all(changed), changed
assert not np.array_equal(seed_before, np.array(model.seed_generator.state))
samples = model.sample(2, steps=3, seed=0)
assert samples.shape == (2, 16, 16, 1) and samples.min() >= 0 and samples.max() <= 1
print("OK", loss)
"""


def test_one_fit_step_on_jax():
    assert "OK" in run_on_jax(JAX_SCRIPT)


def test_training_on_digits_beats_the_zero_predictor(digits):
    keras.utils.set_random_seed(0)
    model = Diffusion(**TINY, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(digits, batch_size=64, epochs=3, verbose=0).history["loss"]
    assert history[-1] < 0.35, history  # a zero predictor scores 1.0
    assert history[-1] < history[0], history


# -- serialisation and sampling ---------------------------------------------------------------

def test_keras_round_trip_gives_identical_denoiser_outputs(tmp_path):
    model = Diffusion(**{**TINY, "attention": True, "heads": 2, "schedule": "cosine"}, seed=3)
    path = str(tmp_path / "diffusion.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)  # safe_mode=True
    assert isinstance(loaded, Diffusion) and loaded.get_config() == model.get_config()
    inputs = {"noisy_images": np.random.default_rng(0).standard_normal((3,) + SHAPE)
              .astype("float32"), "timesteps": np.array([0.0, 500.0, 999.0], "float32")}
    expected = keras.ops.convert_to_numpy(model.denoiser(inputs)["predicted_noise"])
    got = keras.ops.convert_to_numpy(loaded.denoiser(inputs)["predicted_noise"])
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_allclose(loaded.noise_schedule.alphas_cumprod,
                               model.noise_schedule.alphas_cumprod, rtol=0)


def test_denoiser_names_and_integer_timesteps():
    denoiser = Diffusion(**TINY).denoiser
    assert [i.name for i in denoiser.inputs] == ["noisy_images", "timesteps"]
    assert list(denoiser.output.keys()) == ["predicted_noise"]
    assert "down1_block1_1_conv" in [layer.name for layer in denoiser.layers]
    noisy = np.random.default_rng(0).standard_normal((2,) + SHAPE).astype("float32")
    as_float = denoiser({"noisy_images": noisy, "timesteps": np.array([3.0, 700.0], "float32")})
    as_int = denoiser({"noisy_images": noisy, "timesteps": np.array([3, 700], "int32")})
    np.testing.assert_allclose(keras.ops.convert_to_numpy(as_int["predicted_noise"]),
                               keras.ops.convert_to_numpy(as_float["predicted_noise"]), atol=1e-6)


def test_parameter_counts():
    assert Diffusion(**TINY).count_params() == 5213
    assert Diffusion(**VARIANTS[0]["full_config"]).count_params() == 421217


def test_sample_shape_range_and_determinism():
    model = Diffusion(**TINY, seed=0)
    first = model.sample(3, steps=4, seed=5)
    assert first.shape == (3,) + SHAPE and first.dtype == np.float32
    assert first.min() >= 0.0 and first.max() <= 1.0
    np.testing.assert_array_equal(model.sample(3, steps=4, seed=5), first)
    assert not np.array_equal(model.sample(3, steps=4, seed=6), first)
    noisy = model.sample(3, steps=4, seed=5, eta=1.0)
    np.testing.assert_array_equal(model.sample(3, steps=4, seed=5, eta=1.0), noisy)
    assert not np.array_equal(noisy, first)
    assert "eta" in one_line_error(lambda: model.sample(1, steps=2, eta=-1.0))
