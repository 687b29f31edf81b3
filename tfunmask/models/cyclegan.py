"""CycleGAN (Zhu et al. 2017) for unpaired unmasking: A = masked faces, B = unmasked faces.

Two ResNet generators G: A -> B (the unmasker) and F: B -> A, two 70x70
PatchGANs D_A and D_B, and the paper's objective with least-squares
adversarial terms, summed over both directions X -> Y in {A -> B, B -> A}:

    L_G = (D_Y(G(x)) - 1)^2                          adversarial
          + lambda |F(G(x)) - x|_1                    cycle consistency
          + lambda_id * lambda |G(y) - y|_1           identity
    L_D = 1/2 [(D_Y(y) - 1)^2 + D_Y(pool_Y(G(x)))^2]

with lambda = 10 and lambda_id = 0.5 by default. ``lambda_gan`` weights the adversarial term
(1, the paper's; below 1 the other terms, and a subclass's supervised ones, dominate).
``masked_cycle_weight`` scales the
cycle term of the A -> B -> A direction only (1: the paper's; 0: a one-sided cycle, B ->
A -> B alone). The masked cycle asks G(x) to keep enough of the mask for F to paint it
back exactly, a pressure against removing it; without it G_AB is held by the adversarial
and identity terms (and, in AttentionGAN, by the synthetic pairs). Each discriminator
sees its generated images through a history pool of 50 (``image_pool``); the identity
passes are skipped when lambda_id = 0, as in the official code. One optimizer covers
both generators and one both discriminators; the learning rate decays linearly
(``training.schedule.LinearDecay``). ResNet blocks default to 6 up to 128 px and 9 above
(the paper's rule). A subclass changes the generators through ``_generator`` (a builder)
and ``_translate`` and adds terms in ``_direction_terms`` and ``loss_weights`` (see
``attentiongan``).
"""

import collections

import keras
import tensorflow as tf

from tfunmask.models import losses
from tfunmask.models.gan import GAN, check_mask_closing, check_positive, check_size
from tfunmask.models.image_pool import ImagePool
from tfunmask.models.layers import (
    fused_upsampling,
    patch_discriminator,
    resnet_generator,
)


def default_blocks(image_size):
    """CycleGAN's residual blocks: 6 up to 128 px, 9 above."""
    return 6 if image_size <= 128 else 9


Direction = collections.namedtuple("Direction", "source target generator inverse discriminator pool")


@keras.saving.register_keras_serializable("tfunmask")
class CycleGAN(GAN):
    """Two generators and two discriminators trained on {"a": masked, "b": unmasked} batches."""

    LOSS_NAMES = ("g_loss", "g_gan", "cycle", "identity", "d_loss", "d_real", "d_fake")
    PROGRESS_NAMES = ("g_loss", "cycle", "d_loss")
    DATA = "unpaired"

    def __init__(self, image_size, *, filters=64, resnet_blocks=None, pool_size=50, lambda_cycle=10.0,
                 lambda_identity=0.5, masked_cycle_weight=1.0, lambda_gan=1.0, seed=0, upsampling="auto", **kwargs):
        check_size(image_size)
        check_positive(filters=filters)
        resnet_blocks = default_blocks(image_size) if resnet_blocks is None else resnet_blocks
        fused_upsampling(upsampling)  # checks the value
        if resnet_blocks < 0 or pool_size < 0:
            raise ValueError(f"resnet_blocks and pool_size must not be negative (got {resnet_blocks}, {pool_size})")
        if masked_cycle_weight < 0 or lambda_gan < 0:
            raise ValueError(f"masked_cycle_weight and lambda_gan must not be negative "
                             f"(got {masked_cycle_weight}, {lambda_gan})")
        super().__init__(**kwargs)
        self.image_size = image_size
        self.filters = filters
        self.resnet_blocks = resnet_blocks
        self.pool_size = pool_size
        self.lambda_cycle = lambda_cycle
        self.lambda_identity = lambda_identity
        self.masked_cycle_weight = masked_cycle_weight
        self.lambda_gan = lambda_gan
        self.seed = seed
        self.upsampling = upsampling
        with self.policy_scope():
            self.generator_ab = self._generator("generator_ab")
            self.generator_ba = self._generator("generator_ba")
            self.discriminator_a = self._discriminator("discriminator_a")
            self.discriminator_b = self._discriminator("discriminator_b")
        shape = (image_size, image_size, 3)
        self.pool_a = ImagePool(pool_size, shape, seed=2 * seed, name="pool_a")
        self.pool_b = ImagePool(pool_size, shape, seed=2 * seed + 1, name="pool_b")

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "filters": self.filters,
                "resnet_blocks": self.resnet_blocks, "pool_size": self.pool_size,
                "lambda_cycle": self.lambda_cycle, "lambda_identity": self.lambda_identity,
                "masked_cycle_weight": self.masked_cycle_weight, "lambda_gan": self.lambda_gan, "seed": self.seed,
                "upsampling": self.upsampling}

    def _generator(self, name):
        """One A -> B or B -> A network (a subclass builds another kind)."""
        return resnet_generator(self.image_size, filters=self.filters, blocks=self.resnet_blocks,
                                fused=fused_upsampling(self.upsampling), name=name)

    def _discriminator(self, name, channels=3):
        return patch_discriminator(self.image_size, channels, filters=self.filters, normalization="instance",
                                   name=name)

    @property
    def generators(self):
        return (self.generator_ab, self.generator_ba)

    @property
    def discriminators(self):
        return (self.discriminator_a, self.discriminator_b)

    @property
    def generator_variables(self):
        return [v for network in self.generators for v in network.trainable_variables]

    @property
    def discriminator_variables(self):
        return [v for network in self.discriminators for v in network.trainable_variables]

    @property
    def unmasker(self):
        return self.generator_ab

    def export_generator(self, mask_closing=0):
        check_mask_closing(mask_closing, has_map=False)
        return self.generator_ab

    def _translate(self, generator, images, training):
        """A generator's outputs as a dict with at least "image"."""
        return {"image": generator(images, training=training)}

    def call(self, masked, training=False):
        return self._translate(self.generator_ab, masked, training)["image"]

    def sample_images(self, batch):
        """Grids for TensorBoard, per direction (see ``_sample_grids``)."""
        grids = {}
        for d in self._directions():
            grids.update(self._sample_grids(d, batch[d.source], self._translate(d.generator, batch[d.source], False)))
        return grids

    def _sample_grids(self, d, x, fake):
        """``{name: columns}`` of one direction from its input ``x`` and G's outputs ``fake``:
        input | translated | reconstructed."""
        back = self._translate(d.inverse, fake["image"], False)["image"]
        return {f"{d.source}_to_{d.target}": {"input": x, "translated": fake["image"], "reconstructed": back}}

    def _directions(self):
        """A -> B (G, F, D_B, pool of fake B) and B -> A (F, G, D_A, pool of fake A)."""
        return (Direction("a", "b", self.generator_ab, self.generator_ba, self.discriminator_b, self.pool_b),
                Direction("b", "a", self.generator_ba, self.generator_ab, self.discriminator_a, self.pool_a))

    def loss_weights(self):
        g = {"g_gan": self.lambda_gan}
        if self.lambda_cycle:
            g["cycle"] = self.lambda_cycle
        if self._identity_weight:
            g["identity"] = self._identity_weight
        return g, {"d_real": 0.5, "d_fake": 0.5}

    @property
    def _identity_weight(self):
        return self.lambda_identity * self.lambda_cycle

    def _history(self, pool, images, training):
        """What the discriminator's fake term sees: the pool's answer while training, else ``images``."""
        if not training:
            return images
        return pool(images, step=self.g_optimizer.iterations)

    def _direction_terms(self, d, data, training):
        """Per-example terms of one direction X -> Y, G's outputs on x, and G's outputs on y (its
        identity pass; None when its weight, lambda_identity x lambda_cycle, is 0). The A -> B -> A
        cycle term is scaled by masked_cycle_weight; a cycle or identity term whose weight is 0 is
        neither computed nor returned (its passes are skipped)."""
        x, y = data[d.source], data[d.target]
        fake = self._translate(d.generator, x, training)
        history = self._history(d.pool, fake["image"], training)
        terms = {
            "g_gan": losses.lsgan_real(d.discriminator(fake["image"], training=training)),
            "d_real": losses.lsgan_real(d.discriminator(y, training=training)),
            "d_fake": losses.lsgan_fake(d.discriminator(history, training=training)),
        }
        cycle_weight = self.masked_cycle_weight if d.source == "a" else 1.0
        if cycle_weight and self.lambda_cycle:
            reconstructed = self._translate(d.inverse, fake["image"], training)["image"]
            terms["cycle"] = cycle_weight * losses.l1(x, reconstructed)
        same = None
        if self._identity_weight:
            same = self._translate(d.generator, y, training)
            terms["identity"] = losses.l1(y, same["image"])
        return terms, fake, same

    def _loss_terms(self, data, training):
        """Each term summed over the directions that have it (A -> B and B -> A)."""
        data = self.unpack(data)
        both = [self._direction_terms(d, data, training)[0] for d in self._directions()]
        return {name: tf.add_n([terms[name] for terms in both if name in terms])
                for name in {**both[0], **both[1]}}
