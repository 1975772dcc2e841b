"""DCGAN, conditional GAN and WGAN-GP: ``model.fit`` on TensorFlow and JAX, two optimizers.

The TensorFlow tests run in this process; the JAX step runs once, for all
three models, in a subprocess with ``KERAS_BACKEND=jax``. Networks are tiny
(8x8 grayscale) so the file stays well under three minutes on two cores.
"""

import json

import keras
import numpy as np
import pytest

from keras_cv_course.applications.generative import gan
from keras_cv_course.errors import KCCError
from tests.jax_runner import run_on_jax

TINY = {**gan.TINY, "seed": 1}  # the registry's tiny networks, seeded noise
BUILDERS = {
    "dcgan": lambda: gan.DCGAN(**TINY),
    "conditional_gan": lambda: gan.ConditionalGAN(classes=10, **TINY),
    "wgan_gp": lambda: gan.WGANGP(n_critic=2, **TINY),
}

# Shared by both backends: one fit step, then what changed. Printed as JSON.
STEP_SCRIPT = r"""
import json
import keras
import numpy as np

def kernels(network):
    return [w for w in network.trainable_weights if "kernel" in w.path]

def snapshot(model):
    bn = model.generator.get_layer("generator_project_bn")
    return ([np.array(w) for w in kernels(model.generator)],
            [np.array(w) for w in kernels(model.discriminator)],
            np.array(bn.moving_mean), np.array(bn.moving_variance),
            np.array(model.seed_generator.state))

def changed(before, after):
    return all(not np.allclose(a, b) for a, b in zip(before, after))

def fit_step(model):
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(16, 8, 8, 1)).astype("float32")
    labels = rng.integers(0, 10, 16)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    before = snapshot(model)
    data = (images, labels) if model.classes else (images,)
    history = model.fit(*data, batch_size=16, epochs=1, verbose=0).history
    after = snapshot(model)
    return {"d_loss": float(history["d_loss"][0]), "g_loss": float(history["g_loss"][0]),
            "keys": sorted(history), "generator": changed(before[0], after[0]),
            "discriminator": changed(before[1], after[1]),
            "moving_stats": changed(before[2:4], after[2:4]),
            "seed": not np.array_equal(before[4], after[4]),
            "generator_steps": int(model.generator_optimizer.iterations.numpy()),
            "discriminator_steps": int(model.discriminator_optimizer.iterations.numpy())}
"""

JAX_SCRIPT = STEP_SCRIPT + r"""
from keras_cv_course.applications.generative import gan
assert keras.backend.backend() == "jax"
TINY = {**gan.TINY, "seed": 1}
models = {"dcgan": gan.DCGAN(**TINY), "conditional_gan": gan.ConditionalGAN(classes=10, **TINY),
          "wgan_gp": gan.WGANGP(n_critic=2, **TINY)}
print("RESULT " + json.dumps({name: fit_step(model) for name, model in models.items()}))
"""

_step = {}
exec(STEP_SCRIPT, _step)


def check_step(name, result):
    assert result["keys"] == ["d_loss", "g_loss"], result
    assert np.isfinite(result["d_loss"]) and np.isfinite(result["g_loss"]), result
    assert result["generator"], f"{name}: generator kernels did not change"
    assert result["discriminator"], f"{name}: discriminator kernels did not change"
    assert result["moving_stats"], f"{name}: generator BatchNorm statistics did not change"
    assert result["seed"], f"{name}: the noise seed state did not advance"
    n_critic = 2 if name == "wgan_gp" else 1
    assert result["generator_steps"] == 1, result
    assert result["discriminator_steps"] == n_critic, result


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_fit_step_tensorflow(name):
    assert keras.backend.backend() == "tensorflow"
    check_step(name, _step["fit_step"](BUILDERS[name]()))


@pytest.fixture(scope="module")
def jax_results():
    stdout = run_on_jax(JAX_SCRIPT, timeout=400)
    line = [row for row in stdout.splitlines() if row.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_fit_step_jax(jax_results, name):
    check_step(name, jax_results[name])


# -- the gradient penalty ---------------------------------------------------------------------

def linear_critic(weight):
    return lambda images: keras.ops.sum(images * weight, axis=(1, 2, 3))[:, None]


def test_gradient_penalty_vanishes_for_a_unit_norm_linear_critic():
    rng = np.random.default_rng(0)
    real, fake = (rng.uniform(size=(6, 8, 8, 1)).astype("float32") for _ in range(2))
    weight = rng.normal(size=(1, 8, 8, 1)).astype("float32")
    weight /= np.linalg.norm(weight)
    eps = gan.interpolation_weights(6, seed=0)
    zero = float(gan.gradient_penalty(linear_critic(weight), real, fake, eps))
    doubled = float(gan.gradient_penalty(linear_critic(2 * weight), real, fake, eps))
    critic = gan.discriminator_network((8, 8, 1), (8, 16), batch_norm=False)
    random_critic = float(gan.gradient_penalty(critic, real, fake, eps))
    assert zero < 1e-6
    assert doubled == pytest.approx(1.0, abs=1e-4)  # (||2w|| - 1)^2
    assert random_critic > 1e-3


def test_interpolation_weight_is_per_example_uniform():
    eps = keras.ops.convert_to_numpy(gan.interpolation_weights(64, seed=3))
    assert eps.shape == (64, 1, 1, 1)
    assert eps.min() >= 0.0 and eps.max() <= 1.0
    assert eps.std() > 0.1  # U[0, 1] has std 0.29; a shared weight would have 0
    again = keras.ops.convert_to_numpy(gan.interpolation_weights(64, seed=3))
    np.testing.assert_array_equal(eps, again)


# -- compile, save, sample --------------------------------------------------------------------

def test_one_optimizer_becomes_two_distinct_optimizers():
    model = BUILDERS["dcgan"]()
    model.compile(optimizer=keras.optimizers.Adam(3e-4, beta_1=0.5))
    g, d = model.generator_optimizer, model.discriminator_optimizer
    assert g is not d
    assert type(g) is type(d)
    assert float(d.learning_rate.numpy()) == pytest.approx(3e-4)
    assert d.get_config()["beta_1"] == 0.5
    assert not set(map(id, g.variables)) & set(map(id, d.variables))

    model.compile(optimizer="sgd")  # a name: two instances too
    assert model.generator_optimizer is not model.discriminator_optimizer
    shared = keras.optimizers.SGD(0.1)
    model.compile(generator_optimizer=shared, discriminator_optimizer=shared)
    assert model.generator_optimizer is shared and model.discriminator_optimizer is not shared

    wgan = BUILDERS["wgan_gp"]()
    wgan.compile()  # the paper's default
    config = wgan.discriminator_optimizer.get_config()
    assert config["beta_1"] == 0.0 and config["beta_2"] == 0.9
    assert config["learning_rate"] == pytest.approx(1e-4)
    with pytest.raises(KCCError, match="own losses"):
        wgan.compile(optimizer="adam", loss="mse")


def test_save_load_round_trip_reproduces_the_generator(tmp_path):
    model = BUILDERS["conditional_gan"]()
    step = _step["fit_step"](model)  # trained: BatchNorm statistics are not the initial ones
    assert step["moving_stats"]
    path = str(tmp_path / "cgan.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, gan.GAN) and loaded.classes == 10 and loaded.latent_dim == 8
    np.testing.assert_allclose(loaded.sample(12, seed=5), model.sample(12, seed=5), atol=1e-6)
    z = np.random.default_rng(1).normal(size=(4, 8)).astype("float32")
    onehot = np.eye(10, dtype="float32")[[0, 3, 5, 9]]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded([z, onehot])["images"]),
                               keras.ops.convert_to_numpy(model([z, onehot])["images"]),
                               atol=1e-6)
    assert loaded.generator_optimizer is not loaded.discriminator_optimizer
    for network in ("generator", "discriminator"):  # the optimizer state is restored too
        saved, restored = (getattr(m, f"{network}_optimizer") for m in (model, loaded))
        assert int(restored.iterations.numpy()) == int(saved.iterations.numpy()) == 1
        for a, b in zip(saved.variables, restored.variables):
            np.testing.assert_allclose(a.numpy(), b.numpy())
    weights = str(tmp_path / "cgan.weights.h5")  # what BackupAndRestore writes and reads
    model.save_weights(weights)
    fresh = BUILDERS["conditional_gan"]()
    fresh.compile(optimizer="adam")
    fresh.load_weights(weights)
    np.testing.assert_allclose(fresh.sample(4, seed=2), model.sample(4, seed=2), atol=1e-6)
    assert int(fresh.discriminator_optimizer.iterations.numpy()) == 1
    restored = gan.GAN.from_config(model.get_config())
    assert restored.get_config()["loss"] == "non_saturating"


def test_sample_shape_range_and_seed():
    model = BUILDERS["dcgan"]()
    images = model.sample(10, seed=0)
    assert images.shape == (10, 8, 8, 1) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    np.testing.assert_array_equal(images, model.sample(10, seed=0))
    assert not np.allclose(images, model.sample(10, seed=1))
    conditional = BUILDERS["conditional_gan"]()
    assert conditional.sample(3, seed=0, class_ids=[1, 2, 3]).shape == (3, 8, 8, 1)
    with pytest.raises(KCCError, match="class_ids"):
        conditional.sample(2, class_ids=[0, 10])


def test_builders_names_and_errors():
    model = BUILDERS["conditional_gan"]()  # the model's graph is the generator's
    assert [t.name for t in model.inputs] == ["latent", gan.CLASS_INPUT]
    assert model.outputs[0].shape[1:] == (8, 8, 1)
    generator = gan.generator_network((16, 16, 1), 4, (16, 8, 4), classes=3)
    assert [i.name for i in generator.inputs] == ["latent", gan.CLASS_INPUT]
    assert generator.output.shape[1:] == (16, 16, 1)
    names = [layer.name for layer in generator.layers]
    assert "generator_up1_deconv" in names and "generator_up2_bn" in names
    critic = gan.discriminator_network((16, 16, 1), (4, 8), batch_norm=False, name="critic")
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in critic.layers)
    assert critic.output.shape[1:] == (1,)
    with pytest.raises(KCCError, match="divisible"):
        gan.generator_network((10, 10, 1), 4, (8, 8))
    with pytest.raises(KCCError, match="loss"):
        gan.GAN(generator, critic, loss="hinge")


# -- a short run on real digits ---------------------------------------------------------------

def test_short_training_moves_generated_pixels_toward_the_data():
    from keras_cv_course.data import load_dataset

    images = load_dataset("digits", "generative").arrays["train"][0]  # (1257, 8, 8, 1)
    model = gan.DCGAN(input_shape=(8, 8, 1), latent_dim=16, generator_widths=(32, 16),
                      discriminator_widths=(16, 32), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(2e-3, beta_1=0.5))
    data_mean = float(images.mean())
    before = abs(float(model.sample(256, seed=0).mean()) - data_mean)
    history = model.fit(images, batch_size=64, epochs=5, verbose=0).history
    after = abs(float(model.sample(256, seed=0).mean()) - data_mean)
    print(f"data mean {data_mean:.3f}; |mean(G) - mean(data)| {before:.3f} -> {after:.3f}")
    assert np.all(np.isfinite(history["d_loss"])) and np.all(np.isfinite(history["g_loss"]))
    assert after < 0.5 * before
