"""Generative adversarial networks: DCGAN, a class-conditional GAN and WGAN-GP.

Papers:
    Ian Goodfellow et al. "Generative Adversarial Nets". NeurIPS 2014.
    arXiv:1406.2661 (the game and the non-saturating generator loss).

    Alec Radford, Luke Metz, Soumith Chintala. "Unsupervised Representation
    Learning with Deep Convolutional Generative Adversarial Networks".
    ICLR 2016. arXiv:1511.06434 (DCGAN).

    Mehdi Mirza, Simon Osindero. "Conditional Generative Adversarial Nets".
    arXiv preprint 2014. arXiv:1411.1784 (class-conditional GAN).

    Ishaan Gulrajani, Faruk Ahmed, Martin Arjovsky, Vincent Dumoulin, Aaron
    Courville. "Improved Training of Wasserstein GANs". NeurIPS 2017.
    arXiv:1704.00028 (WGAN-GP).

A generator ``G`` maps a latent ``z ~ N(0, I)`` to an image; a discriminator
``D`` scores images. DCGAN trains them in turn with the non-saturating losses

    L_D = -E[log sigmoid(D(x))] - E[log(1 - sigmoid(D(G(z))))]
    L_G = -E[log sigmoid(D(G(z)))]

(``D`` returns logits; the sigmoid lives in the loss, for stability). WGAN-GP
makes ``D`` a critic whose scores estimate the Wasserstein-1 distance and
keeps it near 1-Lipschitz with a gradient penalty on random interpolates:

    L_D = E[D(G(z))] - E[D(x)] + lambda * E[(||grad D(x_hat)||_2 - 1)^2],
    x_hat = eps * x + (1 - eps) * G(z),  eps ~ U[0, 1] per example,
    L_G = -E[D(G(z))],

with ``n_critic`` critic steps per generator step. ``eps`` has shape
``(batch, 1, 1, 1)``: one weight per example, shared by its pixels.

``GAN`` holds both networks and two optimizers and trains with ``model.fit``
on the TensorFlow backend (``tf.GradientTape``) and the JAX backend
(stateless, ``jax.value_and_grad``). Its forward pass is the generator:
``gan(latent)`` (``gan([latent, class_onehot])`` when conditional) returns
images in [0, 1], so the exported model is the generator.

Variants (full configs; images are floats in [0, 1]):

    ============== ========== ============= ================== ==============
    name           input      latent        generator widths   D widths
    ============== ========== ============= ================== ==============
    dcgan          28x28x1    100           128, 64            64, 128
    conditional    28x28x1    100 + classes 128, 64            64, 128
    wgan_gp        28x28x1    100           128, 64            64, 128
    ============== ========== ============= ================== ==============

Choices, named: the generator ends in a sigmoid (the project's images lie in
[0, 1]) rather than the paper's tanh on [-1, 1]; kernels are 4x4 (the paper's
code used 5x5); weights start from N(0, 0.02) as in DCGAN; the WGAN-GP critic
has no normalisation (the paper suggests layer norm as an option); the
conditional discriminator sees the one-hot class as constant planes
concatenated to the image. Under ``tf.distribute`` every replica draws the
same noise.
"""

import keras
import numpy as np
from keras import ops

from keras_cv_course.applications.classification.common import check_image_shape
from keras_cv_course.applications.registry import register_family
from keras_cv_course.errors import KCCError
from keras_cv_course.generative.sampling import (
    CLASS_INPUT,
    CLASS_SPEC,
    IMAGES_OUTPUT,
    LATENT_INPUT,
    LATENT_SPEC,
    Sampler,
    draw,
    keras_forward,
)
from keras_cv_course.specs import TensorSpec
from keras_cv_course.understanding.gradients import tensor_gradient

DCGAN_PAPER = ("Radford, Metz, Chintala. Unsupervised Representation Learning with Deep "
               "Convolutional Generative Adversarial Networks. ICLR 2016. arXiv:1511.06434")
CGAN_PAPER = "Mirza, Osindero. Conditional Generative Adversarial Nets. 2014. arXiv:1411.1784"
WGAN_GP_PAPER = ("Gulrajani, Ahmed, Arjovsky, Dumoulin, Courville. Improved Training of "
                 "Wasserstein GANs. NeurIPS 2017. arXiv:1704.00028")
LOSSES = ("non_saturating", "wasserstein_gp")


def _init():
    return keras.initializers.RandomNormal(stddev=0.02)


# -- networks ---------------------------------------------------------------------------------

def up_block(x, filters, kernel_size, name):
    """Transposed convolution (stride 2), BatchNorm, ReLU: doubles height and width."""
    x = keras.layers.Conv2DTranspose(filters, kernel_size, strides=2, padding="same",
                                     use_bias=False, kernel_initializer=_init(),
                                     name=f"{name}_deconv")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def down_block(x, filters, kernel_size, batch_norm, name):
    """Strided convolution, optional BatchNorm, LeakyReLU(0.2): halves height and width."""
    x = keras.layers.Conv2D(filters, kernel_size, strides=2, padding="same",
                            use_bias=not batch_norm, kernel_initializer=_init(),
                            name=f"{name}_conv")(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.LeakyReLU(negative_slope=0.2, name=f"{name}_lrelu")(x)


def generator_network(image_shape, latent_dim, widths, classes=None, kernel_size=4,
                      name="generator"):
    """DCGAN generator: project and reshape, then transposed convolutions up to pixels.

    Args:
        image_shape: ``(H, W, C)``; ``H`` and ``W`` divisible by ``2 ** len(widths)``.
        latent_dim: size of ``z``.
        widths: feature channels from the coarsest grid to the finest; the
            projection makes a ``(H / 2^k, W / 2^k, widths[0])`` grid.
        classes: number of classes of a ``class_onehot`` input concatenated
            to ``z``; ``None`` for an unconditional generator.
        kernel_size: kernel of the transposed convolutions.
        name: model name.

    Returns:
        A functional model ``latent -> images`` (``[latent, class_onehot]``
        when conditional), images in [0, 1].
    """
    height, width, channels = _check_grid(image_shape, widths, "generator")
    scale = 2 ** len(widths)
    grid = (height // scale, width // scale, widths[0])
    latent = keras.Input(shape=(latent_dim,), name=LATENT_INPUT)
    inputs = [latent]
    x = latent
    if classes:
        inputs.append(keras.Input(shape=(classes,), name=CLASS_INPUT))
        x = keras.layers.Concatenate(name=f"{name}_concat")(inputs)
    x = keras.layers.Dense(int(np.prod(grid)), use_bias=False, kernel_initializer=_init(),
                           name=f"{name}_project")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_project_bn")(x)
    x = keras.layers.ReLU(name=f"{name}_project_relu")(x)
    x = keras.layers.Reshape(grid, name=f"{name}_reshape")(x)  # (H / 2^k, W / 2^k, widths[0])
    for index, filters in enumerate(widths[1:], start=1):
        x = up_block(x, filters, kernel_size, name=f"{name}_up{index}")
    images = keras.layers.Conv2DTranspose(channels, kernel_size, strides=2, padding="same",
                                          activation="sigmoid", kernel_initializer=_init(),
                                          name=f"{name}_pixels")(x)
    return keras.Model(inputs if classes else latent, images, name=name)


def discriminator_network(image_shape, widths, classes=None, kernel_size=4, batch_norm=True,
                          name="discriminator"):
    """DCGAN discriminator (or WGAN-GP critic): strided convolutions, no pooling.

    Args:
        image_shape: ``(H, W, C)``.
        widths: channels of the strided convolutions.
        classes: number of classes of a ``class_onehot`` input, fed as
            constant planes beside the image; ``None`` for unconditional.
        kernel_size: kernel of the convolutions.
        batch_norm: BatchNorm after every convolution but the first (DCGAN);
            ``False`` for a WGAN-GP critic, whose penalty is per example.
        name: model name.

    Returns:
        A functional model ``images -> logits (batch, 1)`` (``[images,
        class_onehot]`` when conditional).
    """
    height, width, _ = _check_grid(image_shape, widths, "discriminator")
    images = keras.Input(shape=tuple(image_shape), name="images")
    inputs = [images]
    x = images
    if classes:
        onehot = keras.Input(shape=(classes,), name=CLASS_INPUT)
        inputs.append(onehot)
        planes = keras.layers.Reshape((1, 1, classes), name=f"{name}_class_reshape")(onehot)
        planes = keras.layers.UpSampling2D((height, width), name=f"{name}_class_planes")(planes)
        x = keras.layers.Concatenate(name=f"{name}_concat")([images, planes])  # (H, W, C + K)
    for index, filters in enumerate(widths, start=1):
        x = down_block(x, filters, kernel_size, batch_norm and index > 1,
                       name=f"{name}_down{index}")
    x = keras.layers.Flatten(name=f"{name}_flatten")(x)
    logits = keras.layers.Dense(1, kernel_initializer=_init(), name=f"{name}_logits")(x)
    return keras.Model(inputs if classes else images, logits, name=name)


def _check_grid(image_shape, widths, what):
    shape = check_image_shape(image_shape)
    scale = 2 ** len(widths)
    if not widths or None in shape or shape[0] % scale or shape[1] % scale:
        raise KCCError(f"{what}: image height and width must be fixed and divisible by "
                       f"2 ** len(widths) = {scale}, got image_shape={tuple(shape)}, "
                       f"widths={tuple(widths)}")
    return shape


# -- losses -----------------------------------------------------------------------------------

def interpolation_weights(batch_size, seed=None):
    """WGAN-GP's ``eps ~ U[0, 1]``, one per example: shape ``(batch, 1, 1, 1)``."""
    return keras.random.uniform((batch_size, 1, 1, 1), seed=seed)


def gradient_penalty(critic, real, fake, weights):
    """``E[(||grad critic(x_hat)||_2 - 1)^2]`` at ``x_hat = eps x + (1 - eps) G(z)``.

    Args:
        critic: callable, images ``(batch, H, W, C)`` -> scores ``(batch, 1)``.
        real: real images.
        fake: generated images.
        weights: ``eps``, ``(batch, 1, 1, 1)`` (see ``interpolation_weights``).

    Returns:
        Scalar penalty (multiply by lambda = 10).
    """
    mixed = weights * real + (1.0 - weights) * fake
    # Differentiated again by the training step: double backpropagation.
    gradients = tensor_gradient(critic, mixed)  # (batch, H, W, C)
    norms = ops.sqrt(ops.sum(ops.square(gradients), axis=(1, 2, 3)) + 1e-12)
    return ops.mean(ops.square(norms - 1.0))


def discriminator_loss(kind, real_scores, fake_scores):
    """Non-saturating BCE on logits, or the critic's Wasserstein estimate (no penalty)."""
    if kind == "wasserstein_gp":
        return ops.mean(fake_scores) - ops.mean(real_scores)
    # -log sigmoid(s) = softplus(-s); -log(1 - sigmoid(s)) = softplus(s)
    return ops.mean(ops.softplus(-real_scores)) + ops.mean(ops.softplus(fake_scores))


def generator_loss(kind, fake_scores):
    """``-E[D(G(z))]`` (Wasserstein) or ``-E[log sigmoid(D(G(z)))]`` (non-saturating)."""
    if kind == "wasserstein_gp":
        return -ops.mean(fake_scores)
    return ops.mean(ops.softplus(-fake_scores))


# -- two optimizers as one --------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="keras_cv_course")
class GANOptimizers(keras.optimizers.Optimizer):
    """The generator's and the discriminator's optimizers, seen by Keras as one.

    Keras' trainers keep one ``model.optimizer``; on JAX its ``variables``
    are the optimizer state threaded through the compiled step, so they must
    hold both optimizers' variables. ``GAN.train_step`` applies each inner
    optimizer itself; this object is never applied directly.
    ``iterations`` counts generator steps.
    """

    def __init__(self, generator_optimizer, discriminator_optimizer, name="gan_optimizers",
                 **kwargs):
        super().__init__(learning_rate=0.0, name=name)
        self.generator_optimizer = keras.optimizers.get(generator_optimizer)
        self.discriminator_optimizer = keras.optimizers.get(discriminator_optimizer)

    @property
    def variables(self):
        return (self._variables + self.generator_optimizer.variables
                + self.discriminator_optimizer.variables)

    @property
    def iterations(self):
        return self.generator_optimizer.iterations

    @property
    def learning_rate(self):
        return self.generator_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        # Called by the base constructor before the inner optimizers exist.
        if hasattr(self, "discriminator_optimizer"):
            self.generator_optimizer.learning_rate = value
            self.discriminator_optimizer.learning_rate = value
        else:
            self._learning_rate = self._build_learning_rate(value)

    def apply(self, grads, trainable_variables=None):
        raise KCCError("GANOptimizers is applied by GAN.train_step through its "
                       "generator_optimizer and discriminator_optimizer, not directly")

    def get_config(self):
        return {"name": self.name,
                "generator_optimizer": keras.optimizers.serialize(self.generator_optimizer),
                "discriminator_optimizer":
                    keras.optimizers.serialize(self.discriminator_optimizer)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(keras.optimizers.deserialize(config["generator_optimizer"]),
                   keras.optimizers.deserialize(config["discriminator_optimizer"]),
                   name=config.get("name", "gan_optimizers"))


def clone_optimizer(optimizer):
    """A new optimizer of the same class and configuration (fresh state)."""
    optimizer = keras.optimizers.get(optimizer)
    return optimizer.__class__.from_config(optimizer.get_config())


# -- the model --------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="keras_cv_course")
class GAN(keras.Model):
    """A generator and a discriminator trained adversarially by ``model.fit``.

    Args:
        generator: model ``latent -> images in [0, 1]`` (or ``[latent,
            class_onehot] -> images``).
        discriminator: model ``images -> logits (batch, 1)`` (or ``[images,
            class_onehot] -> logits``).
        loss: ``"non_saturating"`` (DCGAN, cGAN) or ``"wasserstein_gp"``.
        n_critic: discriminator steps per generator step.
        gp_weight: lambda of the gradient penalty (WGAN-GP).
        seed: seed of the training noise (latents and interpolation weights).
        name: model name.

    The model is functional, and its graph is the generator: ``inputs`` are
    ``latent`` (and ``class_onehot``), the output is ``{"images": ...}``, so
    ``gan(latent)``, ``predict`` and ``export`` give generated images. The
    discriminator is trained but not part of the forward pass.

    Training data: images, or ``(images, labels)`` with integer or one-hot
    labels (required by a conditional GAN, ignored otherwise).

    Example:
        >>> gan = DCGAN(input_shape=(8, 8, 1), latent_dim=8,
        ...             generator_widths=(16, 8), discriminator_widths=(8, 16))
        >>> gan.compile(optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
        >>> history = gan.fit(images, epochs=1, batch_size=32)  # d_loss, g_loss
        >>> samples = gan.sample(16, seed=0)  # (16, 8, 8, 1) in [0, 1]
    """

    def __init__(self, generator, discriminator, loss="non_saturating", n_critic=1,
                 gp_weight=10.0, seed=None, name="gan", **kwargs):
        if loss not in LOSSES:
            raise KCCError(f"GAN loss must be one of {LOSSES}, got {loss!r}")
        if int(n_critic) < 1:
            raise KCCError(f"GAN n_critic must be a positive int, got {n_critic!r}")
        # A functional model whose graph is the generator: ``inputs`` and ``outputs``
        # are the generator's, so export and specs see ``latent -> images``.
        inputs = [keras.Input(shape=tensor.shape[1:], name=tensor.name.split(":")[0])
                  for tensor in generator.inputs]
        images = generator(inputs if len(inputs) > 1 else inputs[0])
        super().__init__(inputs=inputs if len(inputs) > 1 else inputs[0],
                         outputs={IMAGES_OUTPUT: images}, name=name, **kwargs)
        self.generator, self.discriminator = generator, discriminator
        self.loss_kind, self.n_critic, self.gp_weight = loss, int(n_critic), float(gp_weight)
        self.seed = seed
        self.latent_dim = int(generator.inputs[0].shape[-1])
        self.classes = int(generator.inputs[1].shape[-1]) if len(generator.inputs) > 1 else None
        self.seed_generator = keras.random.SeedGenerator(seed, name="noise_seed")
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    @property
    def generator_optimizer(self):
        return self.optimizer.generator_optimizer

    @property
    def discriminator_optimizer(self):
        return self.optimizer.discriminator_optimizer

    def compile(self, optimizer=None, generator_optimizer=None, discriminator_optimizer=None,
                loss=None, metrics=None, **kwargs):
        """Compiles with one optimizer per network.

        Args:
            optimizer: one optimizer (or name) for both: the generator gets it
                and the discriminator a clone from its config. A
                ``GANOptimizers`` is used as it is.
            generator_optimizer: the generator's; overrides ``optimizer``.
            discriminator_optimizer: the discriminator's; overrides the clone.
            loss: must be ``None``: the model computes its own losses.
            metrics: must be ``None``; ``d_loss`` and ``g_loss`` are reported.
            **kwargs: passed to ``keras.Model.compile`` (``jit_compile``, ...).
        """
        if loss is not None or metrics:
            raise KCCError(f"a GAN computes its own losses and metrics; got loss={loss!r}, "
                           f"metrics={metrics!r}")
        if isinstance(optimizer, GANOptimizers):
            pair = optimizer
        else:
            generator_opt = generator_optimizer or optimizer or self.default_optimizer()
            if discriminator_optimizer is not None:
                discriminator_opt = discriminator_optimizer
            elif optimizer is not None:
                discriminator_opt = clone_optimizer(optimizer)
            else:
                discriminator_opt = self.default_optimizer()
            if discriminator_opt is generator_opt:  # one object cannot hold both states
                discriminator_opt = clone_optimizer(generator_opt)
            pair = GANOptimizers(generator_opt, discriminator_opt)
        super().compile(optimizer=pair, **kwargs)
        pair.generator_optimizer.build(self.generator.trainable_variables)
        pair.discriminator_optimizer.build(self.discriminator.trainable_variables)
        pair.build([])

    def compile_from_config(self, config):
        """Recompiles a loaded model (``.keras`` files keep the ``GANOptimizers``)."""
        self.compile(**keras.saving.deserialize_keras_object(config))

    def default_optimizer(self):
        """The paper's Adam: (2e-4, beta1=0.5) for DCGAN; (1e-4, 0, 0.9) for WGAN-GP."""
        if self.loss_kind == "wasserstein_gp":
            return keras.optimizers.Adam(1e-4, beta_1=0.0, beta_2=0.9)
        return keras.optimizers.Adam(2e-4, beta_1=0.5)

    # -- pieces shared by both backends -------------------------------------------------------

    def _unpack(self, data):
        """``data`` -> (real images, one-hot classes or None)."""
        images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        if isinstance(images, dict):
            labels = images.get(CLASS_INPUT, labels)
            images = images["images"]
        images = ops.cast(images, "float32")
        if not self.classes:
            return images, None
        if labels is None:
            raise KCCError("a conditional GAN trains on (images, labels); got images alone")
        if len(labels.shape) == 1 or labels.shape[-1] != self.classes:
            labels = ops.one_hot(ops.cast(ops.reshape(labels, (-1,)), "int32"), self.classes)
        return images, ops.cast(labels, "float32")

    def _with_classes(self, tensor, onehot):
        return tensor if onehot is None else [tensor, onehot]

    def _critic_loss(self, critic, real, fake, weights, penalty_critic=None):
        """The discriminator's loss; ``critic(images)`` returns scores.

        ``penalty_critic`` scores the interpolates (default ``critic``); on
        JAX it leaves BatchNorm statistics alone, as its call is traced
        inside an inner gradient.
        """
        loss = discriminator_loss(self.loss_kind, critic(real), critic(fake))
        if self.loss_kind == "wasserstein_gp":
            penalty = gradient_penalty(penalty_critic or critic, real, fake, weights)
            loss = loss + self.gp_weight * penalty
        return loss

    def _draws(self, batch):
        """The noise of one step: latent ``(batch, latent_dim)`` and ``eps``."""
        z = keras.random.normal((batch, self.latent_dim), seed=self.seed_generator)
        return z, interpolation_weights(batch, seed=self.seed_generator)

    def train_step(self, *args):
        """One GAN step: ``n_critic`` discriminator updates, then one generator update.

        JAX's trainer calls ``train_step(state, data)``, TensorFlow's
        ``train_step(data)``.
        """
        if keras.backend.backend() == "jax":
            return self._jax_train_step(*args)
        if keras.backend.backend() == "tensorflow":
            return self._tf_train_step(*args)
        raise KCCError(f"GAN training needs the tensorflow or jax backend, got "
                       f"{keras.backend.backend()!r}")

    def test_step(self, *args):
        """Both losses on a held-out batch, with fresh noise and no update (``evaluate``)."""
        if keras.backend.backend() == "jax":
            return self._jax_test_step(*args)
        real, onehot = self._unpack(args[-1])
        z, weights = self._draws(ops.shape(real)[0])

        def critic(images):
            return self.discriminator(self._with_classes(images, onehot), training=False)

        fake = self.generator(self._with_classes(z, onehot), training=False)
        return self._record_losses(self._critic_loss(critic, real, fake, weights),
                                   generator_loss(self.loss_kind, critic(fake)))

    def _record_losses(self, d_loss, g_loss):
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {metric.name: metric.result() for metric in self.metrics}

    # -- TensorFlow -----------------------------------------------------------------------------

    def _tf_train_step(self, data):
        import tensorflow as tf  # the TF backend is loaded already

        real, onehot = self._unpack(data)
        batch = ops.shape(real)[0]
        generator, discriminator = self.generator, self.discriminator
        # Each replica's loss is its share of the global mean; the optimizer sums replicas.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync

        def critic(images):
            return discriminator(self._with_classes(images, onehot), training=True)

        for _ in range(self.n_critic):
            z, weights = self._draws(batch)
            fake = ops.stop_gradient(generator(self._with_classes(z, onehot), training=True))
            with tf.GradientTape() as tape:
                d_loss = self._critic_loss(critic, real, fake, weights)
                scaled = d_loss / replicas
            grads = tape.gradient(scaled, discriminator.trainable_weights)
            self.discriminator_optimizer.apply_gradients(
                zip(grads, discriminator.trainable_weights))

        z, _ = self._draws(batch)
        with tf.GradientTape() as tape:
            fake = generator(self._with_classes(z, onehot), training=True)
            g_loss = generator_loss(self.loss_kind, critic(fake))
            scaled = g_loss / replicas
        grads = tape.gradient(scaled, generator.trainable_weights)
        self.generator_optimizer.apply_gradients(zip(grads, generator.trainable_weights))

        return self._record_losses(d_loss, g_loss)

    # -- JAX: stateless; every variable's value lives in ``values``, keyed by id ---------------

    def _jax_train_step(self, state, data):
        import jax

        trainable, non_trainable, optimizer_values, metric_values = state
        values = {}
        for variables, current in ((self.trainable_variables, trainable),
                                   (self.non_trainable_variables, non_trainable),
                                   (self.optimizer.variables, optimizer_values)):
            values.update((id(v), x) for v, x in zip(variables, current))
        real, onehot = self._unpack(data)
        batch = real.shape[0]
        generator, discriminator = self.generator, self.discriminator

        for _ in range(self.n_critic):
            (z, weights), values = self._jax_stateful(values, self._draws, batch)
            fake = jax.lax.stop_gradient(
                _forward(generator, values, self._with_classes(z, onehot)))

            def d_loss_fn(d_trainable, values, fake, weights):
                values = {**values, **_keyed(discriminator.trainable_variables, d_trainable)}

                def critic(images, record=True):  # BatchNorm statistics update in ``values``
                    return _forward(discriminator, values, self._with_classes(images, onehot),
                                    record)

                loss = self._critic_loss(critic, real, fake, weights,
                                         lambda images: critic(images, record=False))
                return loss, values

            (d_loss, values), grads = jax.value_and_grad(d_loss_fn, has_aux=True)(
                _lookup(values, discriminator.trainable_variables), values, fake, weights)
            values = _apply(self.discriminator_optimizer, discriminator, values, grads)

        (z, _), values = self._jax_stateful(values, self._draws, batch)

        def g_loss_fn(g_trainable, values):
            values = {**values, **_keyed(generator.trainable_variables, g_trainable)}
            fake = _forward(generator, values, self._with_classes(z, onehot))
            scores = _forward(discriminator, values, self._with_classes(fake, onehot))
            return generator_loss(self.loss_kind, scores), values

        (g_loss, values), grads = jax.value_and_grad(g_loss_fn, has_aux=True)(
            _lookup(values, generator.trainable_variables), values)
        values = _apply(self.generator_optimizer, generator, values, grads)

        logs, metric_values = self._jax_record_losses(metric_values, d_loss, g_loss)
        state = (_lookup(values, self.trainable_variables),
                 _lookup(values, self.non_trainable_variables),
                 _lookup(values, self.optimizer.variables), metric_values)
        return logs, state

    def _jax_test_step(self, state, data):
        trainable, non_trainable, metric_values = state
        values = {**_keyed(self.trainable_variables, trainable),
                  **_keyed(self.non_trainable_variables, non_trainable)}
        real, onehot = self._unpack(data)
        (z, weights), values = self._jax_stateful(values, self._draws, real.shape[0])

        def critic(images):
            return _forward(self.discriminator, values, self._with_classes(images, onehot),
                            record=False, training=False)

        fake = _forward(self.generator, values, self._with_classes(z, onehot), record=False,
                        training=False)
        d_loss = self._critic_loss(critic, real, fake, weights)
        g_loss = generator_loss(self.loss_kind, critic(fake))
        logs, metric_values = self._jax_record_losses(metric_values, d_loss, g_loss)
        return logs, (trainable, _lookup(values, self.non_trainable_variables), metric_values)

    def _jax_record_losses(self, metric_values, d_loss, g_loss):
        """``_record_losses`` with the metrics' state passed in and out (JAX)."""
        with keras.StatelessScope(
                state_mapping=list(zip(self.metrics_variables, metric_values))) as scope:
            logs = self._record_losses(d_loss, g_loss)
        return logs, [scope.get_current_value(v) for v in self.metrics_variables]

    def _jax_stateful(self, values, function, *args):
        """Runs ``function`` with the seed generator's state taken from ``values``."""
        seed_state = self.seed_generator.state
        with keras.StatelessScope(state_mapping=[(seed_state, values[id(seed_state)])]) as scope:
            result = function(*args)
        return result, {**values, id(seed_state): scope.get_current_value(seed_state)}

    # -- inference and serialisation ----------------------------------------------------------

    @property
    def sampler(self):
        """One pass of ``z ~ N(0, I)`` through this network (``generative.sampling``)."""
        return Sampler(self, "latent", {"latent_dim": self.latent_dim, "classes": self.classes,
                                        "image_shape": list(self.generator.output.shape[1:])})

    def sample(self, num_samples, seed=None, class_ids=None):
        """Generates images from ``z ~ N(0, I)``.

        Args:
            num_samples: number of images.
            seed: NumPy seed of the latents; equal seeds give equal images.
            class_ids: conditional GANs: ``(num_samples,)`` class ids; by
                default ``0, 1, 2, ...`` cycling over the classes.

        Returns:
            float32 NumPy images ``(num_samples, H, W, C)`` in [0, 1].
        """
        return draw(self.sampler.record(), keras_forward(self), num_samples, seed, class_ids)

    def get_config(self):
        return {"generator": keras.saving.serialize_keras_object(self.generator),
                "discriminator": keras.saving.serialize_keras_object(self.discriminator),
                "loss": self.loss_kind, "n_critic": self.n_critic, "gp_weight": self.gp_weight,
                "seed": self.seed, "name": self.name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("generator", "discriminator"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def _keyed(variables, current):
    return {id(v): x for v, x in zip(variables, current)}


def _lookup(values, variables):
    return [values[id(v)] for v in variables]


def _forward(network, values, inputs, record=True, training=True):
    """``network``'s forward pass (training mode by default) on the weights in ``values``;
    with ``record``, its BatchNorm updates go into ``values``."""
    outputs, non_trainable = network.stateless_call(
        _lookup(values, network.trainable_variables),
        _lookup(values, network.non_trainable_variables), inputs, training=training)
    if record:
        values.update(_keyed(network.non_trainable_variables, non_trainable))
    return outputs


def _apply(optimizer, network, values, grads):
    """One stateless optimizer update of ``network``'s weights; returns new ``values``."""
    weights, state = optimizer.stateless_apply(
        _lookup(values, optimizer.variables), grads,
        _lookup(values, network.trainable_variables))
    return {**values, **_keyed(network.trainable_variables, weights),
            **_keyed(optimizer.variables, state)}


# -- variants ---------------------------------------------------------------------------------

def build_gan(input_shape=(28, 28, 1), latent_dim=100, classes=None,
              generator_widths=(128, 64), discriminator_widths=(64, 128), kernel_size=4,
              loss="non_saturating", n_critic=1, gp_weight=10.0, seed=None, name="gan"):
    """A ``GAN`` of the DCGAN networks; ``classes`` makes both class-conditional.

    ``input_shape`` is the shape of the images it learns (the data's input).

    The Wasserstein loss (WGAN-GP) takes a critic without BatchNorm, since
    the gradient penalty is per example and BatchNorm mixes the examples.
    """
    wasserstein = loss == "wasserstein_gp"
    return GAN(generator_network(input_shape, latent_dim, generator_widths, classes,
                                 kernel_size),
               discriminator_network(input_shape, discriminator_widths, classes, kernel_size,
                                     batch_norm=not wasserstein,
                                     name="critic" if wasserstein else "discriminator"),
               loss=loss, n_critic=n_critic, gp_weight=gp_weight, seed=seed, name=name)


def DCGAN(**kwargs):
    """DCGAN: BatchNorm in both networks, non-saturating loss."""
    return build_gan(**{"name": "dcgan", **kwargs})


def ConditionalGAN(**kwargs):
    """Class-conditional DCGAN: the one-hot class joins ``z`` and the image."""
    return build_gan(**{"classes": 10, "name": "conditional_gan", **kwargs})


def WGANGP(**kwargs):
    """WGAN-GP: Wasserstein loss plus gradient penalty, 5 critic steps per generator step."""
    return build_gan(**{"loss": "wasserstein_gp", "n_critic": 5, "name": "wgan_gp", **kwargs})


SERVED_OUTPUTS = (TensorSpec(IMAGES_OUTPUT, ("height", "width", "channels"), "float32",
                             "generated images in [0, 1]"),)
PARAMS_SOURCE = "no public reference for this configuration"
FULL = dict(input_shape=(28, 28, 1), latent_dim=100, generator_widths=(128, 64),
            discriminator_widths=(64, 128))
TINY = dict(input_shape=(8, 8, 1), latent_dim=8, generator_widths=(16, 8),
            discriminator_widths=(8, 16))
VARIANTS = (
    dict(name="dcgan", builder=DCGAN, paper=DCGAN_PAPER, task="generative",
         inputs=(LATENT_SPEC,), description="DCGAN: transposed-convolution generator"),
    dict(name="wgan_gp", builder=WGANGP, paper=WGAN_GP_PAPER, task="generative",
         inputs=(LATENT_SPEC,), description="WGAN-GP: critic with a gradient penalty"),
    dict(name="conditional_gan", builder=ConditionalGAN, paper=CGAN_PAPER,
         task="conditional_generative", inputs=(LATENT_SPEC, CLASS_SPEC),
         description="Class-conditional DCGAN"),
)

register_family("gan", VARIANTS, reference_params=None, params_source=PARAMS_SOURCE,
                full_config=FULL, tiny_config=TINY, outputs=SERVED_OUTPUTS)
