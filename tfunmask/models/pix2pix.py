"""Pix2Pix for paired unmasking: a U-Net generator against a 70x70 PatchGAN.

The generator maps a masked face to the unmasked face; the discriminator sees
the masked input together with either the true or the generated face. The
generator's reconstruction loss is selectable:

* ``l1``: mean absolute error (lambda = 100 as in the Pix2Pix paper);
* ``cosine_mean`` / ``cosine_sum``: per image ``1 - x.y / max(|x| |y|, eps)``
  over the flattened image, then averaged or summed over the *global* batch.

Inference is deterministic: dropout is active only with ``training=True`` and
batch normalisation uses its moving statistics at inference (the TensorFlow
tutorial's ``training=True`` at test time is deliberately not copied).
"""

import keras
import tensorflow as tf
from keras import layers

from tfunmask.models import losses
from tfunmask.models.gan import GAN
from tfunmask.models.layers import down, patch_discriminator, to_image, up

RECONSTRUCTION = {
    "l1": (losses.l1, "mean"),
    "cosine_mean": (losses.cosine_distance, "mean"),
    "cosine_sum": (losses.cosine_distance, "sum"),
}


def unet_depth(image_size, max_depth=8):
    """Number of stride-2 steps: down to 1x1 for sizes up to 256, capped at ``max_depth``."""
    depth = 0
    while image_size % 2 == 0 and image_size > 1 and depth < max_depth:
        image_size //= 2
        depth += 1
    if depth < 4:
        raise ValueError(f"image size must be divisible by 16 (got {image_size * 2 ** depth})")
    return depth


def unet_generator(image_size, *, filters=64, max_filters=512, dropout=0.5, normalization="batch",
                   name="generator"):
    """U-Net: ``depth`` encoder steps, mirrored decoder with skip connections.

    Encoder widths are ``filters * 2**i`` capped at ``max_filters``; the three
    innermost decoder steps use dropout during training, as in Pix2Pix.
    """
    depth = unet_depth(image_size)
    widths = [min(filters * 2 ** i, max_filters) for i in range(depth)]
    inputs = keras.Input((image_size, image_size, 3), name="masked")
    x, skips = inputs, []
    for i, width in enumerate(widths):
        x = down(x, width, normalization="none" if i == 0 else normalization, name=f"down{i}")
        skips.append(x)
    for i in reversed(range(depth - 1)):
        x = up(x, widths[i], normalization=normalization,
               dropout=dropout if i >= depth - 4 else 0.0, name=f"up{i}")
        x = layers.Concatenate(name=f"skip{i}")([x, skips[i]])
    x = layers.UpSampling2D(2, interpolation="nearest", name="out_resize")(x)
    outputs = to_image(x, name="unmasked")
    return keras.Model(inputs, outputs, name=name)


class Pix2Pix(GAN):
    """Conditional GAN trained on (masked, target, mask_map) batches."""

    LOSS_NAMES = ("g_loss", "g_gan", "g_rec", "d_loss", "d_real", "d_fake")
    DATA = "paired"

    def __init__(self, image_size=256, *, filters=64, dropout=0.5, normalization="batch",
                 loss="l1", lambda_rec=100.0, mask_weight=1.0, **kwargs):
        super().__init__(**kwargs)
        if loss not in RECONSTRUCTION:
            raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(RECONSTRUCTION)}")
        self.image_size = image_size
        self.loss_kind = loss
        self.lambda_rec = lambda_rec
        self.mask_weight = mask_weight
        self.generator = unet_generator(image_size, filters=filters, dropout=dropout,
                                        normalization=normalization)
        self.discriminator = patch_discriminator(image_size, 6, filters=filters,
                                                 normalization=normalization, name="discriminator")

    @classmethod
    def from_train_config(cls, config):
        return cls(config.image_size, filters=config.filters, dropout=config.dropout,
                   normalization=config.normalization, loss=config.loss,
                   lambda_rec=config.lambda_l1, mask_weight=config.mask_weight)

    @property
    def generator_variables(self):
        return self.generator.trainable_variables

    @property
    def discriminator_variables(self):
        return self.discriminator.trainable_variables

    def export_generator(self):
        return self.generator

    def call(self, masked, training=False):
        return self.generator(masked, training=training)

    def sample_images(self, batch):
        """Columns for the TensorBoard grid: input | output | target."""
        output = self.generator(batch["masked"], training=False)
        return {"input_output_target": [batch["masked"], output, batch["target"]]}

    def _pixel_weights(self, mask_map):
        """1 outside the mask, ``mask_weight`` inside it; None when weighting is off."""
        if self.mask_weight == 1.0:
            return None
        return 1.0 + (self.mask_weight - 1.0) * tf.cast(mask_map, tf.float32)

    def _loss_terms(self, data, training):
        """Forward pass and every loss term, per example."""
        data = self.unpack(data)
        masked, target = data["masked"], data["target"]
        output = self.generator(masked, training=training)
        real_logits = self.discriminator(tf.concat([masked, target], -1), training=training)
        fake_logits = self.discriminator(tf.concat([masked, output], -1), training=training)
        rec_fn, _ = RECONSTRUCTION[self.loss_kind]
        return {
            "g_gan": losses.bce_real(fake_logits),
            "g_rec": rec_fn(target, output, self._pixel_weights(data.get("mask_map"))),
            "d_real": losses.bce_real(real_logits),
            "d_fake": losses.bce_fake(fake_logits),
        }

    def _objectives(self, terms):
        """Generator and discriminator objectives as this replica's share of the global batch."""
        _, rec_mode = RECONSTRUCTION[self.loss_kind]
        g = self.reduce(terms["g_gan"]) + self.lambda_rec * self.reduce(terms["g_rec"], rec_mode)
        d = 0.5 * (self.reduce(terms["d_real"]) + self.reduce(terms["d_fake"]))
        return g, d

    def _report(self, terms):
        """Per-example means of each term (comparable across batch sizes and replicas)."""
        mean = {name: tf.reduce_mean(value) for name, value in terms.items()}
        return self.track(
            g_loss=mean["g_gan"] + self.lambda_rec * mean["g_rec"],
            d_loss=0.5 * (mean["d_real"] + mean["d_fake"]),
            **mean,
        )

    def train_step(self, data):
        with tf.GradientTape(persistent=True) as tape:
            terms = self._loss_terms(data, training=True)
            g_loss, d_loss = self._objectives(terms)
            g_scaled = self.g_optimizer.scale_loss(g_loss)
            d_scaled = self.d_optimizer.scale_loss(d_loss)
        self.step(self.g_optimizer, tape, g_scaled, self.generator_variables)
        self.step(self.d_optimizer, tape, d_scaled, self.discriminator_variables)
        del tape
        return self._report(terms)

    def test_step(self, data):
        return self._report(self._loss_terms(data, training=False))

