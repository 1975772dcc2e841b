"""What every captioner shares: an image encoder, a one-step decoder, teacher forcing.

A captioner is two networks, and it is served as two:

* the **encoder**, ``images -> {"features", <initial state>}``: a registered
  backbone's feature grid (``applications.backbone_features``) flattened to
  ``(cells, channels)`` tokens, plus the decoder's state before the first
  word;
* the **decoder**, one step of the language model:
  ``{"token", <state>, ("features")} -> {"logits", "next_<state>", ("attention")}``.
  Its state is explicit: every recurrent tensor is an input and comes back
  as an output named ``next_<name>``. A decode loop outside the network
  (``sequence.captioning``) feeds it one token at a time, so the exported
  decoder has no while-loop and runs on TFLite builtins.

``Captioner`` is the functional model that training sees: inputs
``images`` and ``tokens`` (``<start> w1 ... wn``, teacher forcing), output
``logits`` for the next token at every position. Its graph is built from the
two networks (``teacher_forced``), so the weights that train are the weights
that are served. Recurrent captioners unroll the one-step decoder over the
caption; the Transformer runs all positions at once with a causal mask.
"""

import keras
from keras import ops

from keras_cv_course.applications.backbones import backbone_features
from keras_cv_course.applications.registry import register_family
from keras_cv_course.errors import KCCError

TOKEN_INPUT = "token"
FEATURES = "features"
LOGITS = "logits"
ATTENTION = "attention"
NEXT = "next_"
"""A decoder output named ``next_<state>`` is the new value of its input ``<state>``."""
TINY_COMMON = dict(input_shape=(32, 32, 3), vocabulary_size=24, max_length=8,
                   backbone="resnet18", backbone_level="C3",
                   backbone_overrides=dict(stage_widths=(8, 16, 16, 32), stem_type="small"))
"""What every captioner's tiny config shares: 32x32 images, a tiny ResNet-18's 4x4 grid."""
FULL_COMMON = dict(input_shape=(224, 224, 3), vocabulary_size=10_000, max_length=16)
NO_REFERENCE = "no public reference for this configuration"


@keras.saving.register_keras_serializable(package="keras_cv_course")
class Captioner(keras.Model):
    """A captioner as ``fit`` trains it: ``{images, tokens} -> {logits}``.

    Args:
        encoder: ``images -> {"features", <initial state>}``.
        decoder: the one-step decoder (see the module docstring).
        max_length: caption positions trained on (the ``tokens`` length).
        vocabulary: the tokenizer's words, id order (``sequence.text``), or
            ``()`` when unknown; kept in the model's config so that an export
            can write the tokenizer beside the artifacts.
        name: model name.

    Subclasses define ``teacher_forced(encoder, decoder, encoded, tokens)``,
    the logits of every position given the true previous tokens; it is
    called while the graph is built, before the attributes are set.
    """

    def __init__(self, encoder, decoder, max_length, vocabulary=(), name="captioner", **kwargs):
        max_length, vocabulary = int(max_length), tuple(vocabulary)
        vocabulary_size = int(decoder.output[LOGITS].shape[-1])
        if vocabulary and len(vocabulary) != vocabulary_size:
            raise KCCError(f"vocabulary has {len(vocabulary)} words, the decoder predicts "
                           f"{vocabulary_size}")
        images = keras.Input(tuple(encoder.inputs[0].shape[1:]), name="images")
        tokens = keras.Input((max_length,), dtype="int32", name="tokens")
        logits = self.teacher_forced(encoder, decoder, encoder(images), tokens)
        super().__init__(inputs={"images": images, "tokens": tokens},
                         outputs={LOGITS: logits}, name=name, **kwargs)
        self.encoder, self.decoder = encoder, decoder
        self.max_length, self.vocabulary = max_length, vocabulary

    @property
    def state_names(self):
        """The decoder's recurrent inputs, in order."""
        return state_names(self.decoder)

    def teacher_forced(self, encoder, decoder, encoded, tokens):
        """The logits of every position given the true previous tokens (symbolic)."""
        raise NotImplementedError

    def get_config(self):
        return {"encoder": keras.saving.serialize_keras_object(self.encoder),
                "decoder": keras.saving.serialize_keras_object(self.decoder),
                "max_length": self.max_length, "vocabulary": list(self.vocabulary),
                "name": self.name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "decoder"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_cv_course")
class RecurrentCaptioner(Captioner):
    """Teacher forcing by unrolling the one-step decoder over the caption.

    The loop runs over a static number of positions, so the training graph
    is ``max_length`` copies of the served step with shared weights. With
    ``coverage_weight > 0`` and an ``attention`` output, it adds Xu et al.'s
    doubly stochastic penalty (eq. 14): ``weight * sum_cells (1 - sum_t
    alpha_t)^2``, over the caption's real words, which asks the decoder to look
    at every cell about once over the caption.
    """

    def __init__(self, encoder, decoder, max_length, vocabulary=(), coverage_weight=0.0,
                 name="captioner", **kwargs):
        self._coverage_weight = float(coverage_weight)  # read by teacher_forced
        super().__init__(encoder, decoder, max_length, vocabulary, name=name, **kwargs)

    @property
    def coverage_weight(self):
        return self._coverage_weight

    def teacher_forced(self, encoder, decoder, encoded, tokens):
        state = {name: encoded[name] for name in state_names(decoder)}
        logits, attention = [], []
        for position in range(int(tokens.shape[1])):
            outputs = decoder_step(decoder, tokens[:, position], encoded, state)
            state = {name: outputs[NEXT + name] for name in state}
            logits.append(outputs[LOGITS])
            if ATTENTION in outputs:
                attention.append(outputs[ATTENTION])
        logits = ops.stack(logits, axis=1)
        if attention and self._coverage_weight > 0:
            logits = AttentionCoverage(self._coverage_weight, name="coverage")(
                [logits, ops.stack(attention, axis=1), tokens])
        return logits

    def get_config(self):
        return {**super().get_config(), "coverage_weight": self.coverage_weight}


@keras.saving.register_keras_serializable(package="keras_cv_course")
class AttentionCoverage(keras.layers.Layer):
    """Adds the doubly stochastic attention penalty as a layer loss; passes logits through.

    Inputs ``[logits, attention (B, T, cells), tokens (B, T)]``; positions whose
    input token is padding (0) do not count."""

    def __init__(self, weight, **kwargs):
        super().__init__(**kwargs)
        self.weight = float(weight)

    def call(self, inputs):
        logits, attention, tokens = inputs
        real = ops.cast(ops.not_equal(tokens, 0), attention.dtype)[..., None]
        coverage = ops.sum(attention * real, axis=1)
        self.add_loss(self.weight * ops.mean(ops.sum(ops.square(1.0 - coverage), axis=-1)))
        return logits

    def get_config(self):
        return {**super().get_config(), "weight": self.weight}


def state_names(decoder):
    """A one-step decoder's recurrent inputs: those with a ``next_<name>`` output."""
    return tuple(name[len(NEXT):] for name in decoder.output if name.startswith(NEXT))


def decoder_step(decoder, token, encoded, state):
    """One decoder call: ``{"logits", "next_*", ...}``; ``features`` only if it takes them."""
    inputs = {TOKEN_INPUT: token, **state}
    if FEATURES in decoder.input:
        inputs[FEATURES] = encoded[FEATURES]
    return decoder(inputs)


def grid_features(images, backbone, level, backbone_overrides):
    """A backbone's feature map at ``level`` as tokens: ``(batch, cells, channels)``."""
    feature_map = backbone_features(backbone, images, levels=(level,),
                                    **dict(backbone_overrides or {}))[level]
    rows, columns, channels = (int(d) for d in feature_map.shape[1:])
    return keras.layers.Reshape((rows * columns, channels), name="grid")(feature_map)


def encoder_model(input_shape, backbone, level, backbone_overrides, initial_state,
                  project=None):
    """The encoder network: backbone grid tokens plus the decoder's initial state.

    Args:
        initial_state: ``grid -> {state name: tensor}``, the captioner's own rule.
        project: ``grid -> features``, applied to the grid before it is served
            (a Transformer's projection); ``None`` serves the grid itself.
    """
    images = keras.Input(tuple(input_shape), name="images")
    grid = grid_features(images, backbone, level, backbone_overrides)
    features = project(grid) if project else grid
    return keras.Model(images, {FEATURES: features, **initial_state(grid)}, name="encoder")


def initial_state_from_mean(grid, units, names):
    """Each state tensor as ``tanh(Dense(mean of the grid))``: Xu et al.'s f_init (§4.2.1)."""
    mean = keras.layers.GlobalAveragePooling1D(name="mean_features")(grid)
    return {name: keras.layers.Dense(units, activation="tanh", name=f"init_{name}")(mean)
            for name in names}


def token_input():
    """The decoder's input: one token id per example."""
    return keras.Input((), dtype="int32", name=TOKEN_INPUT)


def state_inputs(units, names):
    """``{name: keras.Input((units,))}`` for a recurrent state."""
    return {name: keras.Input((units,), name=name) for name in names}


def check_vocabulary(vocabulary_size):
    if int(vocabulary_size) < 5:
        raise KCCError(f"a captioner needs a vocabulary of at least 5 tokens (4 special ones "
                       f"and a word), got {vocabulary_size!r}")
    return int(vocabulary_size)


def register_captioners(family, variants, paper, tiny_config):
    """Registers a captioner family under the ``captioning`` task, full and tiny configs
    from ``FULL_COMMON`` and the family's ``tiny_config``; no reference parameter count."""
    register_family(family, variants, task="captioning", paper=paper, reference_params=None,
                    params_source=NO_REFERENCE, full_config=FULL_COMMON, tiny_config=tiny_config)

