"""Adversarial examples, adversarial training, class visualisation, feature
inversion and DeepDream on one digits classifier.

One module-scoped fixture trains the two-layer network on scikit-learn's
8x8 digits with ``training.train`` (the ``test_training`` recipe, longer:
about 97% test accuracy in a few seconds); every test reads that model. A
second fixture trains the same recipe with ``train``'s PGD option.
"""

import functools
import json
import os

import keras
import numpy as np
import pytest

from keras_cv_course.data import load_dataset
from keras_cv_course.errors import KCCError
from keras_cv_course.runs import resume_command
from keras_cv_course.training import train
from keras_cv_course.training.adversarial import check_model
from keras_cv_course.understanding import adversarial, dream, synthesis
from keras_cv_course.understanding.adversarial import accuracy, adversarial_accuracy
from tests.jax_runner import run_on_jax

EPSILON = 0.1
RECIPE = dict(epochs=20, batch_size=32, learning_rate=5e-3, seed=0, hidden_units=64)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The clean-trained classifier and the digits splits."""
    run = train("mlp", "digits", str(tmp_path_factory.mktemp("runs") / "mlp"), verbose=0,
                **RECIPE)
    bundle = load_dataset("digits")
    return run.model, bundle.arrays["train"], bundle.arrays["test"]


def test_fgsm_breaks_the_clean_classifier(digits):
    model, _, (images, labels) = digits
    clean = accuracy(model, images, labels)
    attacked = adversarial_accuracy(model, images, labels, "fgsm", EPSILON)
    print(f"clean {clean:.3f}, FGSM(eps={EPSILON}) {attacked:.3f}")
    assert clean >= 0.95
    assert attacked < 0.5


def test_pgd_is_at_least_as_strong_as_fgsm_and_stays_in_the_ball(digits):
    model, _, (images, labels) = digits
    x = adversarial.pgd(model, images, labels, EPSILON, steps=10, seed=0)
    assert x.shape == images.shape
    assert np.max(np.abs(x - images)) <= EPSILON + 1e-6
    assert x.min() >= 0.0 and x.max() <= 1.0
    fgsm = adversarial_accuracy(model, images, labels, "fgsm", EPSILON)
    pgd = accuracy(model, x, labels)
    print(f"FGSM {fgsm:.3f}, PGD {pgd:.3f}")
    assert pgd <= fgsm + 0.01


@pytest.fixture(scope="module")
def robust_run(tmp_path_factory):
    """The same recipe trained with ``train``'s PGD adversarial-training option."""
    return train("mlp", "digits", str(tmp_path_factory.mktemp("runs") / "robust"), verbose=0,
                 adversarial_epsilon=EPSILON, adversarial_steps=3, **RECIPE)


def test_adversarial_training_raises_robust_accuracy(digits, robust_run):
    model, _, (images, labels) = digits
    rows = adversarial.robustness_table({"clean": model, "pgd-trained": robust_run.model},
                                        images, labels, [0.0, EPSILON], steps=5)
    print("\n" + adversarial.table_markdown(rows))
    table = {(name, attack, eps): value for name, attack, eps, value in rows}
    for attack in ("fgsm", "pgd"):
        assert table["pgd-trained", attack, EPSILON] > table["clean", attack, EPSILON] + 0.15
    assert table["pgd-trained", "fgsm", 0.0] >= 0.9


def test_adversarial_training_is_recorded_and_leaves_the_model_plain(robust_run):
    config = json.loads(open(os.path.join(robust_run.path, "config.json")).read())
    assert (config["adversarial_epsilon"], config["adversarial_steps"]) == (EPSILON, 3)
    command = resume_command(config, robust_run.path)
    assert "--adversarial-epsilon 0.1 --adversarial-steps 3" in command
    model = robust_run.model
    assert "compute_loss" not in vars(model) and model.train_function is None
    assert len(robust_run.history["loss"]) == RECIPE["epochs"]


def test_adversarial_training_rejects_bad_options(tmp_path):
    for options in (dict(adversarial_epsilon=0.0), dict(adversarial_epsilon=1.5),
                    dict(adversarial_epsilon=0.1, adversarial_steps=0)):
        message = one_line_error(functools.partial(train, "mlp", "digits", str(tmp_path / "bad"),
                                                   epochs=1, verbose=0, **options))
        assert "adversarial" in message
        assert not (tmp_path / "bad").exists()
    vectors = keras.Input((2,))
    not_images = keras.Model(vectors, keras.layers.Dense(2)(vectors))
    assert "one image input" in one_line_error(lambda: check_model(not_images))


def test_class_visualisation_maximises_the_class(digits):
    model = digits[0]
    start = np.full((1, 8, 8, 1), 0.5, "float32")
    start_prob = keras.ops.convert_to_numpy(model(start))[0]
    for class_index in (3, 7):
        image = synthesis.class_visualisation(model, class_index, steps=60, seed=0)
        assert image.shape == (8, 8, 1)
        assert image.min() >= 0.0 and image.max() <= 1.0
        prob = keras.ops.convert_to_numpy(model(image[None]))[0]
        assert prob[class_index] > start_prob[class_index]
        assert np.argmax(prob) == class_index and prob[class_index] > 0.9, prob


def test_feature_inversion_matches_the_features(digits):
    model, _, (images, _) = digits
    image, history = synthesis.feature_inversion(model, "hidden", images[0], steps=150,
                                                 learning_rate=0.05, tv_weight=1e-3, seed=0)
    print(f"feature loss {history[0]:.3f} -> {history[-1]:.4f}")
    assert image.shape == images[0].shape
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert history[-1] < 0.2 * history[0]


def test_deep_dream_amplifies_the_layer(digits):
    model, _, (images, _) = digits
    objective = dream.dream_objective(model, ["hidden"])
    before = float(keras.ops.convert_to_numpy(objective(images[:1])))
    dreamed = dream.deep_dream(model, images[0], ["hidden"], octaves=2, octave_scale=1.4,
                               steps_per_octave=10, step_size=0.05, seed=0)
    after = float(keras.ops.convert_to_numpy(objective(dreamed[None])))
    print(f"mean squared activation {before:.3f} -> {after:.3f}")
    assert dreamed.shape == images[0].shape
    assert dreamed.min() >= 0.0 and dreamed.max() <= 1.0
    assert after > 1.5 * before


JAX_SCRIPT = """
import tempfile
import numpy as np
from keras_cv_course.data import load_dataset
from keras_cv_course.training import train
from keras_cv_course.understanding import adversarial, dream, synthesis
recipe = dict(epochs=12, batch_size=32, learning_rate=5e-3, seed=0, hidden_units=64, verbose=0)
images, labels = load_dataset("digits").arrays["test"]
with tempfile.TemporaryDirectory() as folder:
    clean = train("mlp", "digits", folder + "/clean", **recipe).model
    robust = train("mlp", "digits", folder + "/robust", adversarial_epsilon=0.1,
                   adversarial_steps=3, **recipe).model
x = adversarial.pgd(clean, images[:8], labels[:8], 0.1, steps=3)
assert np.isfinite(x).all() and np.max(np.abs(x - images[:8])) <= 0.1 + 1e-6
fooled = [adversarial.adversarial_accuracy(m, images, labels, "fgsm", 0.1) for m in (clean, robust)]
print("FGSM accuracy clean %.3f, PGD-trained %.3f" % tuple(fooled))
assert fooled[1] > fooled[0] + 0.15, fooled
picture = synthesis.class_visualisation(clean, 3, steps=20, seed=0)
dreamed = dream.deep_dream(clean, images[0], ["hidden"], octaves=1, steps_per_octave=3)
assert np.isfinite(picture).all() and np.isfinite(dreamed).all()
print("OK")
"""


def test_attacks_adversarial_training_and_synthesis_on_jax():
    assert "OK" in run_on_jax(JAX_SCRIPT)


def one_line_error(call):
    with pytest.raises(KCCError) as error:
        call()
    assert "\n" not in str(error.value)
    return str(error.value)


def test_bad_inputs_raise_one_line_errors(digits):
    model, _, (images, labels) = digits
    assert "epsilon" in one_line_error(lambda: adversarial.fgsm(model, images, labels, -0.1))
    assert "epsilon" in one_line_error(lambda: adversarial.pgd(model, images, labels, -1))
    assert "shape" in one_line_error(lambda: adversarial.fgsm(model, images[0], labels, 0.1))
    one_line_error(lambda: adversarial.adversarial_accuracy(model, images, labels, "fgsn"))
    one_line_error(lambda: synthesis.class_visualisation(model, 10))
    one_line_error(lambda: synthesis.feature_inversion(model, "nope", images[0]))
    one_line_error(lambda: dream.deep_dream(model, images[:2], ["hidden"]))
