"""Fast style transfer: a feed-forward network trained with a perceptual loss.

Johnson, Alahi and Fei-Fei, "Perceptual Losses for Real-Time Style Transfer
and Super-Resolution", ECCV 2016 (arXiv:1603.08155): instead of optimising
each image (``style.stylize_by_optimisation``), train one *transformer
network* on many content photos to minimise the perceptual loss; then one
forward pass stylises a photo.

The network is ``TransformerNet`` of the PyTorch examples' ``fast_neural_style``
(github.com/pytorch/examples, ``neural_style/transformer_net.py``): every
convolution is reflection padding (``kernel // 2``) and a convolution with
bias; instance normalisation (Ulyanov, Vedaldi and Lempitsky, "Instance
Normalization: The Missing Ingredient for Fast Stylization",
arXiv:1607.08022) replaces the paper's batch normalisation, and nearest
upsampling followed by a convolution replaces its fractionally strided
convolutions (Odena, Dumoulin and Olah, "Deconvolution and Checkerboard
Artifacts", Distill 2016).

| stage      | layers                                                  |
|------------|---------------------------------------------------------|
| down       | 9x9 conv 32 /1, 3x3 conv 64 /2, 3x3 conv 128 /2; IN, ReLU |
| residual   | 5 x (3x3 conv 128, IN, ReLU, 3x3 conv 128, IN) + skip   |
| up         | nearest x2, 3x3 conv 64; IN, ReLU; nearest x2, 3x3 conv 32; IN, ReLU |
| out        | 9x9 conv 3 /1, no normalisation                         |

It has 1,679,235 parameters, as the reference. Choices (named): inputs are
``[0, 1]`` images (the reference takes 0..255; the first instance norm
removes the scale but for the first convolution's bias), and the output is
``sigmoid`` of the last convolution, an image in ``[0, 1]`` (the reference
returns the raw convolution, about 0..255, and clamps when saving; a
sigmoid keeps a gradient everywhere, where clipping would not).

Training (``train_style_network``) uses ``model.fit`` on ``PerceptualTrainer``,
a small ``keras.Model`` whose ``compute_loss`` is Johnson et al.'s loss:
content at ``relu2_2``, style Grams at all four layers (``style.py``). It is
written with ``keras.ops`` and runs under TensorFlow and JAX.

The custom layers use only ``keras.ops`` that convert to TFLite builtins
(``MIRROR_PAD``; ``BROADCAST_TO``, ``RESHAPE``; ``MEAN``, ``RSQRT``) and to ONNX, so
the network goes through ``export.export`` without Flex ops.
"""

import keras
import numpy as np
from keras import ops

from keras_cv_course.errors import KCCError
from keras_cv_course.layers.normalization import InstanceNorm
from keras_cv_course.understanding import style
from keras_cv_course.understanding.style_features import CONTENT_LAYER

FILTERS = (32, 64, 128)
RESIDUAL_BLOCKS = 5
INSTANCE_NORM_EPSILON = 1e-5  # torch.nn.InstanceNorm2d's default
CONTENT_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera",
                  "immunohistochemistry")


@keras.saving.register_keras_serializable(package="keras_cv_course")
class ReflectionPad2D(keras.layers.Layer):
    """Pads height and width by ``padding`` pixels, mirroring without repeating the edge."""

    def __init__(self, padding, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, inputs):
        p = self.padding
        return ops.pad(inputs, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        grow = 2 * self.padding
        return (batch, height and height + grow, width and width + grow, channels)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package="keras_cv_course")
class NearestUpsampling2D(keras.layers.Layer):
    """Doubles height and width by repeating each pixel into a 2x2 block.

    ``torch.nn.Upsample(mode="nearest", scale_factor=2)``. Written as a
    broadcast and a reshape (TFLite ``BROADCAST_TO`` and ``RESHAPE``):
    ``keras.layers.UpSampling2D`` uses ``ops.repeat``, whose TensorFlow graph
    loses the static height, and the TFLite converter then leaves the next
    convolution to a Flex op.
    """

    def call(self, inputs):
        shape = ops.shape(inputs)
        height, width, channels = shape[1], shape[2], inputs.shape[-1]
        blocks = ops.broadcast_to(inputs[:, :, None, :, None, :],
                                  (shape[0], height, 2, width, 2, channels))
        return ops.reshape(blocks, (-1, height * 2, width * 2, channels))

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, height and 2 * height, width and 2 * width, channels)


def conv_layer(x, filters, kernel_size, strides, name):
    """Reflection padding of ``kernel_size // 2``, then a valid convolution with bias."""
    x = ReflectionPad2D(kernel_size // 2, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(filters, kernel_size, strides=strides, name=name)(x)


def conv_norm_relu(x, filters, kernel_size, strides, name, upsample=False):
    """(Nearest x2 upsampling,) padded convolution, instance norm, ReLU."""
    if upsample:
        x = NearestUpsampling2D(name=f"{name}_up")(x)
    x = conv_layer(x, filters, kernel_size, strides, name)
    x = InstanceNorm(epsilon=INSTANCE_NORM_EPSILON, name=f"{name}_in")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def residual_block(x, name):
    """conv-IN-ReLU-conv-IN plus the input (no ReLU after the sum, as the reference)."""
    channels = x.shape[-1]
    y = conv_norm_relu(x, channels, 3, 1, f"{name}_conv1")
    y = conv_layer(y, channels, 3, 1, f"{name}_conv2")
    y = InstanceNorm(epsilon=INSTANCE_NORM_EPSILON, name=f"{name}_conv2_in")(y)
    return keras.layers.Add(name=f"{name}_add")([x, y])


def transformer_net(input_shape=(None, None, 3), filters=FILTERS,
                    residual_blocks=RESIDUAL_BLOCKS, name="transformer_net"):
    """Johnson et al.'s image transformation network (``TransformerNet``).

    Args:
        input_shape: ``(height, width, 3)``; ``None`` sizes take any image
            whose sides are multiples of 4 (two stride-2 convolutions).
        filters: the three widths, ``(32, 64, 128)`` as the reference;
            smaller ones are for quick experiments.
        residual_blocks: how many residual blocks (5).
        name: the model's name.

    Returns:
        A ``keras.Model`` mapping ``[0, 1]`` images to ``[0, 1]`` images.
    """
    small, middle, large = filters
    images = keras.Input(shape=input_shape, name="images")
    x = conv_norm_relu(images, small, 9, 1, "conv1")
    x = conv_norm_relu(x, middle, 3, 2, "conv2")
    x = conv_norm_relu(x, large, 3, 2, "conv3")
    for index in range(1, residual_blocks + 1):
        x = residual_block(x, f"res{index}")
    x = conv_norm_relu(x, middle, 3, 1, "deconv1", upsample=True)
    x = conv_norm_relu(x, small, 3, 1, "deconv2", upsample=True)
    x = conv_layer(x, 3, 9, 1, "deconv3")
    x = keras.layers.Activation("sigmoid", name="stylised", dtype="float32")(x)
    return keras.Model(images, x, name=name)


class PerceptualTrainer(keras.Model):
    """Trains ``transformer`` with ``fit``: its ``compute_loss`` is the perceptual loss.

    ``fit(content_images)`` needs no targets: the content targets are the
    extractor's features of the inputs, the style targets its Gram matrices
    of the style image (constants).
    """

    def __init__(self, transformer, extractor, style_grams, style_weight, content_weight,
                 content_layer=CONTENT_LAYER, **kwargs):
        super().__init__(**kwargs)
        self.transformer = transformer
        self.extractor = extractor
        self.style_grams = {key: np.asarray(value) for key, value in style_grams.items()}
        self.style_weight = float(style_weight)
        self.content_weight = float(content_weight)
        self.content_layer = content_layer

    def call(self, images, training=False):
        return self.transformer(images, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        content = ops.stop_gradient(self.extractor(x)[self.content_layer])
        return style.perceptual_loss(self.extractor(y_pred), content, self.style_grams,
                                     self.style_weight, self.content_weight, self.content_layer)


def train_style_network(style_image, content_images, extractor, epochs=2, batch_size=4,
                        image_size=256, style_weight=10.0, content_weight=1.0,
                        learning_rate=1e-3, seed=0, filters=FILTERS, verbose=0):
    """Trains a ``transformer_net`` on ``content_images`` for one style.

    Args:
        style_image: ``(H, W, 3)`` in ``[0, 1]``.
        content_images: ``(N, H, W, 3)`` in ``[0, 1]``, resized to ``image_size``.
        extractor: ``style_features.perceptual_extractor``'s model.
        epochs, batch_size, learning_rate: for Adam and ``fit`` (Johnson et al.:
            batch 4, learning rate 1e-3, 256x256 images).
        image_size: the square training size (a multiple of 4).
        style_weight, content_weight: the perceptual loss's weights; tune them
            per extractor and style.
        seed: seeds the weights and the shuffling.
        filters: the network's widths (the reference's by default).
        verbose: ``fit``'s verbosity.

    Returns:
        ``(network, history)``: the trained ``transformer_net`` (input size
        ``image_size``) and ``fit``'s ``History.history`` (``"loss"`` per epoch).
    """
    if image_size % 4:
        raise KCCError(f"image_size must be a multiple of 4, got {image_size}")
    keras.utils.set_random_seed(seed)
    images = resize_images(content_images, image_size)
    network = transformer_net((image_size, image_size, 3), filters=filters)
    trainer = PerceptualTrainer(network, extractor, style.style_targets(extractor, style_image),
                                style_weight, content_weight)
    trainer.compile(optimizer=keras.optimizers.Adam(learning_rate))
    history = trainer.fit(images, epochs=epochs, batch_size=batch_size, shuffle=True,
                          verbose=verbose)
    return network, history.history


def resize_images(images, size):
    """``(N, H, W, 3)`` float images -> ``(N, size, size, 3)`` float32 (bilinear)."""
    images = np.asarray(images, dtype="float32")
    if images.shape[1:3] == (size, size):
        return images
    return np.asarray(ops.convert_to_numpy(ops.image.resize(images, (size, size))), "float32")


def _square(image, size):
    """Centre-crop to a square, resize (anti-aliased) to ``size``; float32 RGB in [0, 1]."""
    from skimage import img_as_float32
    from skimage.color import gray2rgb
    from skimage.transform import resize

    image = img_as_float32(image)
    image = gray2rgb(image) if image.ndim == 2 else image[..., :3]
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[top:top + side, left:left + side]
    return np.clip(resize(square, (size, size), anti_aliasing=True), 0, 1).astype("float32")


def content_photos(size=256, names=CONTENT_PHOTOS):
    """scikit-image's sample photos (``skimage.data``), centre-cropped and resized.

    Returns:
        ``(len(names), size, size, 3)`` float32 in ``[0, 1]``; grey photos
        (``camera``) are repeated into three channels.
    """
    from skimage import data

    return np.stack([_square(getattr(data, name)(), size) for name in names])


def style_image(size=256, source="waves"):
    """A style image ``(size, size, 3)`` in ``[0, 1]``.

    ``"waves"`` (the default) is drawn procedurally, so it needs no file:
    three interfering sinusoids, one per channel, a bold colourful texture.
    Any other ``source`` names a ``skimage.data`` image, e.g.
    ``"hubble_deep_field"`` or ``"immunohistochemistry"``.
    """
    if source != "waves":
        from skimage import data

        return _square(getattr(data, source)(), size)
    y, x = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    phases = (9 * x + 5 * np.sin(6 * y), 7 * y + 4 * np.cos(5 * x), 6 * (x + y))
    channels = [0.5 + 0.5 * np.sin(2 * np.pi * phase) for phase in phases]
    return np.stack(channels, axis=-1).astype("float32")
