"""AttentionGAN (Tang et al. 2019, 2021) for unpaired unmasking: CycleGAN whose
generators say *where* to change the face.

A generator produces content images C_i and attention masks A_i that sum to 1
at every pixel, the last one the background, and composes

    G(x) = sum_{i < n} C_i * A_i + x * A_n.

* Scheme I: one ResNet encoder-decoder with two heads, a content image C (tanh)
  and one mask A (sigmoid); the masks are (A, 1 - A), so G(x) = C A + x (1 - A).
* Scheme II: a shared encoder, a content decoder giving n - 1 content images and
  an attention decoder giving n masks through a softmax across them (n = 10).

``backbone="unet"`` builds both generators as composite Pix2Pix U-Nets instead (scheme I only:
one content image, one sigmoid mask; ``max_filters``, ``normalization`` and ``dropout`` shape
them as Pix2Pix's, and ``resnet_blocks`` and ``attention_masks`` go unused; the layers keep
Pix2Pix's names). G_AB is then the same network as a composite Pix2Pix generator, and training
can start it from a paired run (``--warm_start``, ``training.warm_start``), so that the unpaired
terms fine-tune an unmasker that already knows where masks are and what lies under them instead
of discovering both.

The composition (``layers.Composite``) weights the input by 1 - sum_{i < n} A_i,
which is A_n up to rounding; where the foreground masks are 0 the input passes through
exactly (the softmax's A_n itself may then be 1 - 2^-24), which is what an unmasker wants
outside the mask. To CycleGAN's terms (``cyclegan``) each direction X -> Y adds, with its
own weight:

* pixel: |G(x) - x|_1, keeps what should not change unchanged;
* tv: total variation of the masks, so they form smooth regions instead of
  saturating into speckle. It is a per-pixel mean (``losses.total_variation``),
  so its weight does not depend on the image size: the default 0.05 is close to
  the official code's 1e-6 on a pixel *sum* at 256 px (1e-6 * 256^2 = 0.066);
* attention-guided adversarial terms, from a second PatchGAN per domain, D^att_Y,
  that judges the attended region only (at ``lambda_attention_gan=0`` the pair is not built):

      L_G^att = (D^att_Y(m . G(x)) - 1)^2,
      L_D^att = 1/2 [(D^att_Y(m . y) - 1)^2 + D^att_Y(m . G(x))^2],
      m = sg(sum_{i < n} A_i) (G's foreground attention on x, gradient stopped).

  The discriminator sees the image *multiplied by* the mask rather than the
  mask as an extra channel, and real and fake images are multiplied by the same
  mask: a real image has no attention mask of its own, and one taken from the
  other generator would differ from G's in shape and statistics, letting the
  discriminator tell real from fake by the mask alone instead of by the face
  inside it. Faces are aligned, so G's mask on x covers the same part of the
  face in y. Stopping the gradient through m keeps the generator from winning
  this game by shrinking its attention (an all-zero m makes real and fake
  identical); the whole-image discriminator and the cycle term still drive it.
  This discriminator sees current fakes only (no history pool: its input depends
  on the mask of the current batch). ``attention_discriminator="concat"`` is the
  paper's variant instead: D^att_Y sees [m, image] (4 channels), real and fake
  with the same m, and the generator's term reaches its attention through m.
  ``"context"`` is the product on m dilated by an eighth of the image on each side
  (a max filter): D^att then sees the attended region with a ring of the face
  round it. With the bare product, a weaker cycle lets the attention take dark
  masks, but the generator fills the region with a stack of mouth-like stripes
  that a discriminator blind to the nose and cheeks accepts (``docs/results.md``).

Guidance from synthetic pairs (off by default; the reference code has neither term). The
unpaired terms never say *where* the mask is, and on a few hundred real photos the attention
drifts: it spreads over the face, or collapses onto part of the mask and leaves straps and dark
masks alone. The overlay tool's (masked, unmasked, mask map) triples say exactly where, so with
``data["paired"]`` in the batch (``--paired_data``), for G_AB only:

* attention_map (weight ``lambda_attention_map``): BCE of G_AB's foreground attention on a
  synthetic masked face against its mask map, and of its attention on a real *unmasked* face (the
  identity pass) against 0, so the attention learns the mask and nothing of a bare face;
* paired (weight ``lambda_paired``): |G_AB(masked) - unmasked|_1 on the synthetic pair, a
  semi-supervised content term; the adversarial terms still judge real photos.

With ``warmup_epochs`` the first epochs train G_AB on these terms alone (the pairs, and its
attention on real unmasked faces): one or two generator passes per step instead of the full
objective's seven and four discriminators, so G_AB learns to paint a face from many more pairs
before the unpaired terms start. The discriminators' step counter still advances, so both
learning-rate schedules stay aligned with the epochs.

With ``discriminator_warmup_epochs`` (for a G_AB that ``--warm_start`` already taught to paint)
the first epochs train the discriminators alone against the generators as they are: a fine-tune
whose adversary starts at random lets the generator drift towards the blurred mean of its
L1 terms before the adversary can object (the paired model shows it: ``docs/results.md``, "v7").
Measured on the U-Net backbone (run W4) it did not keep real-photo mouths as the paired model's
kept PatchGAN does. The generators' step counter still advances. The two warm-ups exclude each
other.

With ``generator_ab_trains="attention"`` only the layers that make G_AB's attention learn (the
U-Net's map head; the ResNet's attention head, and scheme II's attention decoder); the rest of
G_AB keeps its weights, its batch normalisation its moving statistics. After ``--warm_start``
from a paired run, the unpaired terms can then move *where* G_AB paints and not *what*: every
unpaired fine-tune of the whole U-Net here smoothed the mouths the paired model paints
(``docs/results.md``). G_BA and the discriminators train as usual.

TensorBoard shows, per direction, the masks and content images beside the
CycleGAN columns.
"""


import math

import keras
import tensorflow as tf
from keras import layers, ops

from tfunmask.models import losses
from tfunmask.models.cyclegan import CycleGAN
from tfunmask.models.gan import check_choice, check_mask_closing, check_positive
from tfunmask.models.layers import (
    NORMALIZATIONS,
    Composite,
    fused_upsampling,
    head,
    resnet_decoder,
    resnet_encoder,
)
from tfunmask.models.pix2pix import MAP_HEAD, composite_export, unet_generator

SCHEMES = (1, 2)
BACKBONES = ("resnet", "unet")
# Foreground attention of an untrained generator: its biases start it near a copy of the input.
# Zero biases start scheme II at (n - 1) / n = 0.9 foreground (scheme I at 0.5), so the first
# hundreds of steps go to pulling the attention off a face that should mostly stay as it is.
START = 0.1
ATTENTION_DISCRIMINATORS = ("product", "concat", "context")
CONTEXT_FRACTION = 8  # "context": the mask is dilated by image_size / CONTEXT_FRACTION pixels
GENERATOR_AB_TRAINS = ("all", "attention")
# Layers that feed the attention alone: the U-Net's map head, the ResNet scheme I head, and scheme
# II's attention decoder and head (names as the generator builders give them).
ATTENTION_LAYERS = (MAP_HEAD, "foreground_conv", "attention_decoder", "attention_conv")


@keras.saving.register_keras_serializable("tfunmask")
class WithBackground(layers.Layer):
    """Appends the background mask 1 - sum_i A_i (scheme I: A -> (A, 1 - A))."""

    def __init__(self, **kwargs):
        super().__init__(**{**kwargs, "dtype": "float32"})  # also when from_config passes one

    def call(self, masks):
        return ops.concatenate([masks, 1.0 - ops.sum(masks, axis=-1, keepdims=True)], axis=-1)

    def compute_output_shape(self, shape):
        return (*shape[:-1], shape[-1] + 1)


@keras.saving.register_keras_serializable("tfunmask")
class Foreground(layers.Layer):
    """``foreground`` as a layer, the exported generator's "mask" output."""

    def __init__(self, **kwargs):
        super().__init__(**{**kwargs, "dtype": "float32"})

    def call(self, attention):
        return foreground(attention)

    def compute_output_shape(self, shape):
        return (*shape[:-1], 1)


def attention_generator(image_size, *, scheme=2, masks=10, filters=64, blocks=9, fused=False, name="generator"):
    """A generator with outputs {"image", "attention" (n masks), "content" (3 (n - 1) channels)}."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown AttentionGAN scheme {scheme!r}; use 1 or 2")
    if scheme == 2 and masks < 2:
        raise ValueError(f"scheme II needs at least 2 attention masks (got {masks})")
    inputs = keras.Input((image_size, image_size, 3), name="images")
    features = resnet_encoder(inputs, filters=filters, blocks=blocks)
    content_features = resnet_decoder(features, filters=filters, fused=fused, name="content_decoder")
    if scheme == 1:
        mask = head(content_features, 1, kernel=1, activation="sigmoid", bias=math.log(START / (1 - START)),
                    name="foreground")
        attention = WithBackground(name="attention")(mask)
    else:
        attention_features = resnet_decoder(features, filters=filters, fused=fused, name="attention_decoder")
        background = math.log((masks - 1) * (1 - START) / START)
        attention = head(attention_features, masks, kernel=1, activation="softmax",
                         bias=[0.0] * (masks - 1) + [background], name="attention")
    content = head(content_features, 3 * (attention.shape[-1] - 1), kernel=7, reflect=True, name="content")
    image = Composite(name="image")([content, attention[..., :-1], inputs])
    return keras.Model(inputs, {"image": image, "attention": attention, "content": content}, name=name)


def unet_attention_generator(image_size, *, filters=64, max_filters=512, normalization="batch", dropout=0.5,
                             fused=False, name="generator"):
    """Scheme I on a composite Pix2Pix U-Net: outputs {"image", "attention" (mask, 1 - mask),
    "content"} whose layers (and so whose weights' paths) are the Pix2Pix generator's."""
    unet = unet_generator(image_size, filters=filters, max_filters=max_filters, dropout=dropout,
                          normalization=normalization, composite=True, fused=fused, name=name)
    out = unet.output
    attention = WithBackground(name="attention")(out["mask"])
    return keras.Model(unet.input, {"image": out["unmasked"], "attention": attention, "content": out["content"]},
                       name=name)


def foreground(attention):
    """sum_{i < n} A_i: where the generator writes content (the weight ``Composite`` gives it)."""
    return tf.reduce_sum(attention[..., :-1], axis=-1, keepdims=True)


def as_columns(maps, channels):
    """Split (B, H, W, k * channels) maps into k column batches."""
    return tf.split(maps, maps.shape[-1] // channels, axis=-1)


@keras.saving.register_keras_serializable("tfunmask")
class AttentionGAN(CycleGAN):
    """CycleGAN with attention-composing generators and attention-guided discriminators."""

    LOSS_NAMES = CycleGAN.LOSS_NAMES + ("pixel", "tv", "g_attention", "d_attention_real",
                                        "d_attention_fake", "attention_map", "attention_unmasked", "paired")

    def __init__(self, image_size, *, aggan_scheme=2, attention_masks=10, lambda_pixel=1.0, lambda_tv=0.05,
                 lambda_attention_gan=1.0, lambda_attention_map=0.0, unmasked_attention_weight=1.0,
                 lambda_paired=0.0, attention_discriminator="product", warmup_epochs=0, discriminator_warmup_epochs=0,
                 backbone="resnet", max_filters=512, normalization="batch", dropout=0.5,
                 generator_ab_trains="all", **kwargs):
        check_choice("aggan_scheme", aggan_scheme, SCHEMES)
        check_choice("generator_ab_trains", generator_ab_trains, GENERATOR_AB_TRAINS)
        check_choice("backbone", backbone, BACKBONES)
        check_choice("normalization", normalization, NORMALIZATIONS)
        if backbone == "unet":
            if aggan_scheme != 1:
                raise ValueError("backbone='unet' composes with one mask: it needs aggan_scheme=1")
            check_positive(max_filters=max_filters)
            if not 0.0 <= dropout < 1.0:
                raise ValueError(f"dropout must be in [0, 1) (got {dropout})")
        elif (max_filters, normalization, dropout) != (512, "batch", 0.5):
            raise ValueError("max_filters, normalization and dropout shape the U-Net: they need backbone='unet'")
        check_choice("attention_discriminator", attention_discriminator, ATTENTION_DISCRIMINATORS)
        if attention_masks < 2:
            raise ValueError(f"attention_masks must be at least 2 (got {attention_masks})")
        if min(lambda_attention_map, unmasked_attention_weight, lambda_paired) < 0:
            raise ValueError(f"lambda_attention_map, unmasked_attention_weight and lambda_paired must not be "
                             f"negative (got {lambda_attention_map}, {unmasked_attention_weight}, {lambda_paired})")
        if warmup_epochs < 0 or (warmup_epochs and not (lambda_attention_map or lambda_paired)):
            raise ValueError(f"warmup_epochs trains G_AB on the synthetic pairs alone: it must not be negative "
                             f"and needs lambda_paired or lambda_attention_map (got {warmup_epochs})")
        if discriminator_warmup_epochs < 0 or (discriminator_warmup_epochs and warmup_epochs):
            raise ValueError(f"discriminator_warmup_epochs must not be negative, nor combined with warmup_epochs "
                             f"(got {discriminator_warmup_epochs} and {warmup_epochs})")
        # Set before CycleGAN's constructor, which builds the generators through ``_generator``.
        self.aggan_scheme = aggan_scheme
        self.attention_masks = attention_masks
        self.lambda_pixel = lambda_pixel
        self.lambda_tv = lambda_tv
        self.lambda_attention_gan = lambda_attention_gan
        self.lambda_attention_map = lambda_attention_map
        self.unmasked_attention_weight = unmasked_attention_weight
        self.lambda_paired = lambda_paired
        self.attention_discriminator = attention_discriminator
        self.warmup_epochs = warmup_epochs
        self.discriminator_warmup_epochs = discriminator_warmup_epochs
        self.backbone = backbone
        self.max_filters = max_filters
        self.normalization = normalization
        self.dropout = dropout
        self.generator_ab_trains = generator_ab_trains
        self.phase = "full"  # set per epoch by ``begin_epoch``: "full", "pairs" or "discriminators"
        super().__init__(image_size, **kwargs)
        if generator_ab_trains == "attention":
            for layer in self.generator_ab.layers:
                layer.trainable = layer.name.startswith(ATTENTION_LAYERS)
        self.attention_discriminator_a = self.attention_discriminator_b = None  # none at weight 0
        if lambda_attention_gan:
            channels = 4 if attention_discriminator == "concat" else 3
            with self.policy_scope():
                self.attention_discriminator_a = self._discriminator("attention_discriminator_a", channels)
                self.attention_discriminator_b = self._discriminator("attention_discriminator_b", channels)

    def get_config(self):
        return {**super().get_config(), "aggan_scheme": self.aggan_scheme,
                "attention_masks": self.attention_masks, "lambda_pixel": self.lambda_pixel,
                "lambda_tv": self.lambda_tv, "lambda_attention_gan": self.lambda_attention_gan,
                "lambda_attention_map": self.lambda_attention_map,
                "unmasked_attention_weight": self.unmasked_attention_weight, "lambda_paired": self.lambda_paired,
                "attention_discriminator": self.attention_discriminator, "warmup_epochs": self.warmup_epochs,
                "discriminator_warmup_epochs": self.discriminator_warmup_epochs,
                "backbone": self.backbone, "max_filters": self.max_filters, "normalization": self.normalization,
                "dropout": self.dropout, "generator_ab_trains": self.generator_ab_trains}

    @property
    def needs_pairs(self):
        """Whether training batches must hold synthetic pairs (``data["paired"]``)."""
        return bool(self.lambda_attention_map or self.lambda_paired)

    def _generator(self, name):
        if self.backbone == "unet":
            return unet_attention_generator(self.image_size, filters=self.filters, max_filters=self.max_filters,
                                            normalization=self.normalization, dropout=self.dropout,
                                            fused=fused_upsampling(self.upsampling), name=name)
        return attention_generator(self.image_size, scheme=self.aggan_scheme, masks=self.attention_masks,
                                   filters=self.filters, blocks=self.resnet_blocks,
                                   fused=fused_upsampling(self.upsampling), name=name)

    @property
    def discriminators(self):
        """D_A and D_B, and the attention-guided pair where ``lambda_attention_gan`` > 0."""
        attention = (self.attention_discriminator_a, self.attention_discriminator_b)
        return super().discriminators + (attention if self.lambda_attention_gan else ())

    def export_generator(self, mask_closing=0):
        """The A -> B generator reduced to {"unmasked": composed image, "mask": its foreground
        attention} (what serving needs: the photo path blends where the mask is). The U-Net
        backbone composes with one map, which ``mask_closing`` may close as Pix2Pix's does; the
        ResNet schemes compose from several masks inside the generator (a radius is refused)."""
        check_mask_closing(mask_closing, has_map=self.backbone == "unet")
        if self.backbone == "unet":
            return composite_export(self.generator_ab, mask_closing, name="generator_ab_image")
        outputs = self.generator_ab.output
        return keras.Model(self.generator_ab.input,
                           {"unmasked": outputs["image"], "mask": Foreground(name="mask")(outputs["attention"])},
                           name="generator_ab_image")

    def _translate(self, generator, images, training):
        return generator(images, training=training)

    def _sample_grids(self, d, x, fake):
        """CycleGAN's columns, plus the direction's masks (grey) and content images."""
        grids = super()._sample_grids(d, x, fake)
        name = f"{d.source}_to_{d.target}"
        masks = as_columns(fake["attention"], 1)
        grids[f"{name}_attention"] = {("background" if i == len(masks) - 1 else f"mask {i + 1}"): 2.0 * m - 1.0
                                      for i, m in enumerate(masks)}
        grids[f"{name}_content"] = {f"content {i + 1}": c for i, c in enumerate(as_columns(fake["content"], 3))}
        return grids

    def loss_weights(self):
        g, d = super().loss_weights()
        g.update(pixel=self.lambda_pixel, tv=self.lambda_tv)
        if self.lambda_attention_gan:
            g["g_attention"] = self.lambda_attention_gan
            d.update(d_attention_real=0.5, d_attention_fake=0.5)
        if self.lambda_attention_map:
            g["attention_map"] = self.lambda_attention_map
        if self._unmasked_weight:
            g["attention_unmasked"] = self._unmasked_weight
        if self.lambda_paired:
            g["paired"] = self.lambda_paired
        return g, d

    def _attended(self, mask, images):
        """What D^att sees: the image times the gradient-stopped mask ("product"), times that mask
        dilated ("context"), or [mask, image] with the mask's gradient kept ("concat")."""
        if self.attention_discriminator == "concat":
            return tf.concat([tf.cast(mask, images.dtype), images], axis=-1)
        if self.attention_discriminator == "context":
            mask = tf.nn.max_pool2d(mask, 2 * (self.image_size // CONTEXT_FRACTION) + 1, 1, "SAME")
        return tf.stop_gradient(tf.cast(mask, images.dtype)) * images

    def _loss_terms(self, data, training):
        """CycleGAN's and the attention terms over both directions, plus the guidance terms of
        G_AB on the synthetic pairs when their weights are on."""
        terms = super()._loss_terms(data, training)
        if not self.needs_pairs:
            return terms
        data = self.unpack(data)
        if "paired" not in data:
            raise ValueError("lambda_attention_map and lambda_paired need synthetic pairs in every batch "
                             '(data["paired"]: train with --paired_data)')
        terms.update(self._pair_terms(data["paired"], training))
        return terms

    def _pair_terms(self, pairs, training):
        """The attention-map and paired terms of G_AB on a batch of synthetic pairs."""
        guided = self._translate(self.generator_ab, pairs["masked"], training)
        return {"attention_map": losses.bce(pairs["mask_map"], foreground(guided["attention"])),
                "paired": losses.l1(pairs["target"], guided["image"])}

    @property
    def _unmasked_weight(self):
        """Weight of the BCE of G_AB's attention on real unmasked faces against 0."""
        return self.lambda_attention_map * self.unmasked_attention_weight

    @staticmethod
    def _unattended(same):
        """BCE of G_AB's foreground attention on a real unmasked face against 0."""
        attention = foreground(same["attention"])
        return losses.bce(tf.zeros_like(attention), attention)

    def begin_epoch(self, epoch):
        phase = ("pairs" if epoch < self.warmup_epochs else
                 "discriminators" if epoch < self.discriminator_warmup_epochs else "full")
        changed, self.phase = phase != self.phase, phase
        return changed

    def _warmup_terms(self, data, training):
        """The guide terms a warm-up step trains, and their weights in the generator objective."""
        data = self.unpack(data)
        terms = self._pair_terms(data["paired"], training=training)
        if self._unmasked_weight:
            terms["attention_unmasked"] = self._unattended(self._translate(self.generator_ab, data["b"], training))
        return terms, {name: weight for name, weight in self.loss_weights()[0].items() if name in terms}

    def train_step(self, data):
        """The full objective's step; in a warm-up epoch G_AB's step on the guide terms, or the
        discriminators' step alone."""
        if self.phase == "discriminators":
            with tf.GradientTape() as tape:
                terms = self._loss_terms(data, training=True)
                scaled = self.d_optimizer.scale_loss(self._objective(terms, self.loss_weights()[1]))
            self.step(self.d_optimizer, tape, scaled, self.discriminator_variables)
            self.g_optimizer.iterations.assign_add(1)
            return self._report(terms)
        if self.phase == "full":
            return super().train_step(data)
        with tf.GradientTape() as tape:
            terms, weights = self._warmup_terms(data, training=True)
            scaled = self.g_optimizer.scale_loss(self._objective(terms, weights))
        self.step(self.g_optimizer, tape, scaled, self.generator_ab.trainable_variables)
        self.d_optimizer.iterations.assign_add(1)
        return self._report(terms, {"g_loss": weights})

    def test_step(self, data):
        """Validation scores what the current phase trains: in the warm-up, the guide terms."""
        if self.phase != "pairs":
            return super().test_step(data)
        terms, weights = self._warmup_terms(data, training=False)
        return self._report(terms, {"g_loss": weights})

    def _direction_terms(self, d, data, training):
        terms, fake, same = super()._direction_terms(d, data, training)
        x, y = data[d.source], data[d.target]
        if d.source == "a" and self._unmasked_weight:  # G_AB on a real unmasked face: attend nowhere
            same = same or self._translate(d.generator, y, training)
            terms["attention_unmasked"] = self._unattended(same)
        terms.update(pixel=losses.l1(x, fake["image"]), tv=losses.total_variation(fake["attention"]))
        if self.lambda_attention_gan:  # at weight 0 the attention-guided pair is not even built
            judge = getattr(self, f"attention_discriminator_{d.target}")
            mask = foreground(fake["attention"])
            fake_scores = judge(self._attended(mask, fake["image"]), training=training)
            terms.update(
                g_attention=losses.lsgan_real(fake_scores),
                d_attention_real=losses.lsgan_real(judge(self._attended(tf.stop_gradient(mask), y),
                                                         training=training)),
                d_attention_fake=losses.lsgan_fake(fake_scores),
            )
        return terms, fake, same
