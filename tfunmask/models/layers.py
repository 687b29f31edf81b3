"""Building blocks shared by the generators and discriminators.

The blocks are chosen for what they become after export as much as for
training: upsampling is a nearest-neighbour resize followed by a 3x3 convolution rather
than ``Conv2DTranspose``, because TFLite runs resize + conv with fast XNNPACK
kernels (and full-integer int8) while transposed convolutions fall back to slow
reference kernels; it also avoids checkerboard artefacts. Batch normalisation is
synchronised across replicas so that a step on N replicas equals a step on one
device with the same global batch, and at inference it folds into the
preceding convolution.
"""

import keras
from keras import layers, ops

INIT = keras.initializers.RandomNormal(stddev=0.02)


class ReflectionPad2D(layers.Layer):
    """Pads height and width by reflecting the border (CycleGAN's ResNet blocks)."""

    def __init__(self, pad=1, **kwargs):
        super().__init__(**kwargs)
        self.pad = pad

    def call(self, x):
        p = self.pad
        return ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, shape):
        grow = lambda n: None if n is None else n + 2 * self.pad  # noqa: E731
        return (shape[0], grow(shape[1]), grow(shape[2]), shape[3])

    def get_config(self):
        return {**super().get_config(), "pad": self.pad}


def norm(kind, name=None):
    """A normalisation layer: "batch" (synchronised), "instance" or "none"."""
    if kind == "batch":
        return layers.BatchNormalization(synchronized=True, momentum=0.9, epsilon=1e-5, name=name)
    if kind == "instance":
        return layers.GroupNormalization(groups=-1, epsilon=1e-5, name=name)
    if kind == "none":
        return layers.Identity(name=name)
    raise ValueError(f"unknown normalisation {kind!r}; use batch, instance or none")


def down(x, filters, *, normalization="batch", kernel=4, strides=2, name):
    """Conv (4x4, stride 2) -> norm -> LeakyReLU(0.2): one encoder step."""
    x = layers.Conv2D(filters, kernel, strides, padding="same", kernel_initializer=INIT,
                      use_bias=normalization == "none", name=f"{name}_conv")(x)
    x = norm(normalization, name=f"{name}_norm")(x)
    return layers.LeakyReLU(0.2, name=f"{name}_act")(x)


def up(x, filters, *, normalization="batch", dropout=0.0, name):
    """Nearest x2 resize -> 3x3 conv -> norm -> (dropout) -> ReLU: one decoder step."""
    x = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_resize")(x)
    x = layers.Conv2D(filters, 3, padding="same", kernel_initializer=INIT,
                      use_bias=normalization == "none", name=f"{name}_conv")(x)
    x = norm(normalization, name=f"{name}_norm")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return layers.ReLU(name=f"{name}_act")(x)


def to_image(x, channels=3, *, name):
    """Final 3x3 conv + tanh in float32, so mixed precision never clips the output."""
    x = layers.Conv2D(channels, 3, padding="same", kernel_initializer=INIT, name=f"{name}_conv")(x)
    return layers.Activation("tanh", dtype="float32", name=name)(x)


def patch_discriminator(image_size, in_channels, *, filters=64, normalization="batch", name):
    """The 70x70 PatchGAN: C64-C128-C256-C512 then a 1-channel logit map (float32).

    Three stride-2 and two stride-1 4x4 convolutions give each output logit a
    70x70 receptive field; the output is a map of real/fake logits, one per patch.
    """
    inputs = keras.Input((image_size, image_size, in_channels), name="images")
    x = down(inputs, filters, normalization="none", name="c1")
    x = down(x, filters * 2, normalization=normalization, name="c2")
    x = down(x, filters * 4, normalization=normalization, name="c3")
    x = down(x, filters * 8, normalization=normalization, strides=1, name="c4")
    logits = layers.Conv2D(1, 4, padding="same", kernel_initializer=INIT, name="logits_conv")(x)
    logits = layers.Activation("linear", dtype="float32", name="logits")(logits)
    return keras.Model(inputs, logits, name=name)
