"""Every classification CNN/ViT family learns the embedded digits.

For one registered model per family, a narrow, shallow instance of the same
builder (registry overrides only: widths, depths, input size) is trained with
the package's own entry point, ``training.train``, on scikit-learn's 8x8
handwritten digits, upsampled to the smallest input the architecture takes,
and must reach at least 95% accuracy on the held-out test split (360 images).
This checks that each architecture is wired so that it can learn, end to end:
data pipeline, build, compile, fit with the standard callbacks, and
evaluation. Seeds are fixed by ``train(seed=0)``.

The MobileNets and EfficientNet train with BatchNorm momentum 0.9 (their
builders' ``bn_momentum``): at the reference 0.99/0.999 the moving statistics
lag the few hundred steps of these runs and evaluation stays at chance.
"""

import math

import pytest

from keras_cv_course import applications
from keras_cv_course.data import load_dataset
from keras_cv_course.training import train

TARGET = 0.95

# family: (registered model, input size, channels, builder overrides, train kwargs)
FAMILIES = {
    "alexnet": ("alexnet", 16, 1,
                dict(stem_type="small", widths=(32, 64, 64, 64, 64), fc_units=128,
                     dropout_rate=0.1),
                dict(epochs=14, batch_size=32, learning_rate=2e-3, schedule="cosine")),
    "vgg": ("vgg11_bn", 32, 1,
            dict(block_widths=(16, 32, 32, 64, 64), fc_units=64, dropout_rate=0.1),
            dict(epochs=8, batch_size=36, learning_rate=1e-3, schedule="cosine")),
    "googlenet": ("googlenet", 32, 1,
                  dict(width_scale=1 / 4),
                  dict(epochs=14, batch_size=32, learning_rate=2e-3, schedule="cosine")),
    "resnet": ("resnet50", 16, 1,
               dict(stem_type="small", stage_widths=(16, 16, 32, 32),
                    blocks_per_stage=(1, 1, 1, 1)),
               dict(epochs=10, batch_size=36, learning_rate=1e-3, schedule="cosine")),
    "resnext": ("resnext50_32x4d", 16, 1,
                dict(stem_type="small", stage_widths=(8, 8, 16, 16),
                     blocks_per_stage=(1, 1, 1, 1), groups=2, width_per_group=32),
                dict(epochs=14, batch_size=64, learning_rate=3e-3, schedule="cosine")),
    "mobilenet_v1": ("mobilenet_v1", 32, 1,
                     dict(alpha=0.5, bn_momentum=0.9),
                     dict(epochs=14, batch_size=64, learning_rate=1e-2, schedule="cosine")),
    "mobilenet_v2": ("mobilenet_v2", 32, 1,
                     dict(alpha=0.5, last_channels=64, bn_momentum=0.9,
                          stages=((1, 16, 1, 1), (6, 24, 1, 2), (6, 32, 1, 2), (6, 64, 1, 2),
                                  (6, 96, 1, 1), (6, 160, 1, 2), (6, 320, 1, 1))),
                     dict(epochs=10, batch_size=32, learning_rate=2e-3, schedule="cosine")),
    "mobilenet_v3": ("mobilenet_v3_small", 32, 1,
                     dict(alpha=0.5, last_point_channels=64, bn_momentum=0.9),
                     dict(epochs=8, batch_size=36, learning_rate=1e-3, schedule="cosine")),
    "efficientnet": ("efficientnet_b0", 32, 3,
                     dict(width_coefficient=0.25, depth_coefficient=0.2, bn_momentum=0.9),
                     dict(epochs=12, batch_size=64, learning_rate=3e-3, schedule="cosine")),
    "regnet": ("regnet_y_400mf", 32, 1,
               dict(depth=4, w0=16, wa=16, wm=2, group_width=8, stem_width=16),
               dict(epochs=12, batch_size=64, learning_rate=3e-3, schedule="cosine")),
    "vit": ("vit_tiny_16", 16, 1,
            dict(patch_size=4, hidden_size=64, num_layers=2, num_heads=4, mlp_size=128),
            dict(epochs=15, batch_size=36, learning_rate=1e-3, schedule="cosine")),
}
@pytest.fixture(scope="module")
def digits():
    """Loads each (size, channels) digits bundle once per module."""
    cache = {}

    def get(size, channels):
        if (size, channels) not in cache:
            cache[size, channels] = load_dataset("digits", image_size=(size, size),
                                                 channels=channels)
        return cache[size, channels]

    return get


def test_every_family_has_a_case():
    """The table names a registered model of each family."""
    for family, (name, *_) in FAMILIES.items():
        assert applications.get_info(name).family == family


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_learns_digits(family, digits, tmp_path):
    name, size, channels, overrides, fit = FAMILIES[family]
    run = train(name, digits(size, channels), str(tmp_path / name), verbose=0,
                **fit, **overrides)
    test_images = len(digits(size, channels).arrays["test"][1])
    assert test_images == 360
    # Compare counts, not float32 ratios: 342 of 360 is exactly 95%.
    correct = round(run.metrics["accuracy"] * test_images)
    assert correct >= math.ceil(TARGET * test_images), (family, run.metrics)
