"""Backbones: any classifier's feature pyramid, for dense heads.

A level ``C<k>`` is a feature map at stride ``2**k`` (four times smaller than
the image at ``C2``, 32 times at ``C5``), as in the FPN paper (Lin et al.,
"Feature Pyramid Networks for Object Detection", CVPR 2017,
arXiv:1612.03144). Each classifier builder records, while it builds, which
tensor is the last one at each stride: ``record_levels(model, levels)``
attaches them to the model as ``model.pyramid_outputs`` (keras-hub's name;
timm calls the same record ``feature_info``). ``backbone`` turns them into a
multi-output model; ``backbone_features`` gives the tensors on an image input
of the caller's, so a head such as FCN's builds one flat model.

A ViT has one level: its patch tokens reshaped to a grid, at the patch
size's stride. Small-image stems (``stem_type="small"``) keep every level's
name honest: a level is named by its real stride, so a stem that does not
downsample moves every stage down by two levels.

Example:
    >>> features = backbone("resnet50", levels=("C3", "C4", "C5"), input_shape=(224, 224, 3))
    >>> {level: tuple(t.shape) for level, t in features.output.items()}
    {'C3': (None, 28, 28, 512), 'C4': (None, 14, 14, 1024), 'C5': (None, 7, 7, 2048)}
    >>> features.feature_info[0]
    {'level': 'C3', 'stride': 8, 'channels': 512, 'layer': 'stage2_block4_out'}
"""

import math

import keras

from keras_cv_course.applications.registry import get_info, list_models
from keras_cv_course.errors import KCCError

MIN_DEFAULT_STRIDE = 4  # by default a backbone returns C2 and coarser


def level_name(stride):
    """``C<k>`` for a stride of ``2**k``, ``stride<s>`` for other strides."""
    exponent = math.log2(stride)
    return f"C{int(exponent)}" if exponent.is_integer() else f"stride{stride}"


def level_stride(name):
    """The stride of a level name made by ``level_name``."""
    return 2 ** int(name[1:]) if name.startswith("C") else int(name[len("stride"):])


def record_levels(model, levels):
    """Attaches ``{level name: tensor}`` to a freshly built model; returns the model."""
    model.pyramid_outputs = dict(sorted(levels.items(), key=lambda item: level_stride(item[0])))
    return model


def has_backbone(name):
    """True for registered models that record feature levels."""
    return bool(get_info(name).fact("feature_levels"))


def backbone_features(name, image, levels=None, **overrides):
    """Builds a classifier's feature extractor on ``image``; returns its level tensors.

    Args:
        name: a registered model with ``feature_levels`` (see ``backbone``).
        image: a Keras image tensor, e.g. ``keras.Input((64, 64, 3))``.
        levels: level names to return; ``None`` returns every recorded
            level at stride 4 or coarser.
        **overrides: builder arguments, e.g. ``stage_widths=(8, 16, 16, 32)``.

    Returns:
        ``{level: tensor}``, finest first.
    """
    model = _features_model(name, input_tensor=image, **overrides)
    return _select(name, model.pyramid_outputs, levels)


def backbone(name, levels=None, **overrides):
    """A multi-output feature model of a registered classifier.

    Args:
        name: a registered model with ``feature_levels``: every CNN family
            and ViT. ``[n for n in list_models() if has_backbone(n)]`` lists them.
        levels: level names, e.g. ``("C3", "C4", "C5")``; ``None`` returns
            every recorded level at stride 4 or coarser.
        **overrides: builder arguments, e.g. ``input_shape=(128, 128, 3)``.

    Returns:
        A ``keras.Model`` with dict outputs ``{level: feature map}`` and a
        ``feature_info`` list of ``{"level", "stride", "channels", "layer"}``.

    Raises:
        KCCError: the model has no feature levels, or a level is not
            available at this configuration.
    """
    model = _features_model(name, **overrides)
    features = _select(name, model.pyramid_outputs, levels)
    extractor = keras.Model(model.input, features, name=f"{model.name}_backbone")
    extractor.feature_info = [
        {"level": level, "stride": level_stride(level), "channels": int(tensor.shape[-1]),
         "layer": tensor._keras_history.operation.name}
        for level, tensor in features.items()
    ]
    return extractor


def _features_model(name, **overrides):
    if not has_backbone(name):
        backbones = [n for n in list_models() if has_backbone(n)]
        raise KCCError(f"model {name!r} records no feature levels; backbones include "
                       f"{', '.join(backbones[:8])}")
    from keras_cv_course.applications.registry import build

    return build(name, include_top=False, pooling=None, **overrides)


def _select(name, recorded, levels):
    if levels is None:
        levels = [level for level in recorded if level_stride(level) >= MIN_DEFAULT_STRIDE]
    missing = [level for level in levels if level not in recorded]
    if missing:
        raise KCCError(f"{name}: levels {missing} are not available at this configuration; "
                       f"it records {list(recorded)}")
    return {level: recorded[level] for level in levels}
