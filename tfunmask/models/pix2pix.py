"""Pix2Pix for paired unmasking: a U-Net generator against a 70x70 PatchGAN.

The generator maps a masked face to the unmasked face; the discriminator sees
the masked input together with either the true or the generated face. The
generator's reconstruction loss is selectable:

* ``l1``: mean absolute error (lambda = 100 as in the Pix2Pix paper);
* ``cosine_mean`` / ``cosine_sum``: per image ``1 - x.y / max(|x| |y|, eps)``
  over the flattened image, then averaged or summed over the *global* batch.

``lambda_feature_matching`` > 0 adds pix2pixHD's discriminator feature-matching
term (``losses.feature_matching`` over the PatchGAN's four activations).
``lambda_ssim`` > 0 adds ``1 - SSIM`` of the output against the true face
(``losses.ssim_distance``), over the mask map where the data has one, else the
whole image: the structure term of Zhao et al.'s L1 + MS-SSIM mix for image
restoration, aimed at the mask-region SSIM the evaluation reports.

With ``composite=True`` the generator also predicts where the mask is (a
sigmoid map supervised by the overlay tool's mask maps) and returns
``content * mask + input * (1 - mask)``: pixels outside the predicted mask
are the input's own, so the face, hair and background stay exact. With
``segmenter_filters`` as well, it works in two stages, as GANMasker and M2UNet
do: a separate, narrower U-Net predicts the map, and the inpainting U-Net sees
the input with the map's region blanked out plus the map itself, so the content
it paints does not read the mask's pixels inside the map (which differ from one
mask family to the next; docs/results.md measures what it gains).

Inference is deterministic: dropout is active only with ``training=True`` and
batch normalisation uses its moving statistics at inference (the TensorFlow
tutorial's ``training=True`` at test time is deliberately not copied).
"""

import keras
import tensorflow as tf
from keras import layers

from tfunmask.models import losses
from tfunmask.models.gan import GAN, check_choice, check_mask_closing, check_positive, check_size
from tfunmask.models.layers import (
    INIT,
    NORMALIZATIONS,
    Composite,
    Erased,
    MapClosing,
    conv3x3,
    down,
    fused_upsampling,
    patch_discriminator,
    to_image,
    up,
    upsample,
)

RECONSTRUCTION = {
    "l1": (losses.l1, "mean"),
    "cosine_mean": (losses.cosine_distance, "mean"),
    "cosine_sum": (losses.cosine_distance, "sum"),
}
MAP_HEAD = "mask_conv"  # the mask map's head: only a composite U-Net has it (warm_start reads the name)


def unet_depth(image_size, max_depth=8):
    """Number of stride-2 steps: down to 1x1 for sizes up to 256, capped at ``max_depth``."""
    depth = 0
    while image_size % 2 == 0 and image_size > 1 and depth < max_depth:
        image_size //= 2
        depth += 1
    if depth < 4:
        raise ValueError(f"image size must be divisible by 16 (got {image_size * 2 ** depth})")
    return depth


def unet_features(x, widths, *, dropout, normalization, fused, prefix=""):
    """The U-Net body: one encoder step per width, the mirrored decoder with skip connections and
    the last x2 upsample, ready for 3x3 output heads (``to_image``, ``conv3x3``).

    The outermost and the innermost encoder steps are not normalised, as in the reference
    ``UnetSkipConnectionBlock``: the innermost map is 1x1 up to 256 px, and instance norm (or
    batch norm at batch 1) over a 1x1 map makes it a constant, so a normalised bottleneck would
    pass nothing on. The three innermost decoder steps use dropout during training, as in Pix2Pix.
    """
    depth, skips = len(widths), []
    for i, width in enumerate(widths):
        outer_or_inner = i in (0, depth - 1)
        x = down(x, width, normalization="none" if outer_or_inner else normalization, name=f"{prefix}down{i}")
        skips.append(x)
    for i in reversed(range(depth - 1)):
        x = up(x, widths[i], normalization=normalization, fused=fused,
               dropout=dropout if i >= depth - 4 else 0.0, name=f"{prefix}up{i}")
        x = layers.Concatenate(name=f"{prefix}skip{i}")([x, skips[i]])
    return upsample(x, fused=fused, name=f"{prefix}out_resize")


def unet_generator(image_size, *, filters=64, max_filters=512, dropout=0.5, normalization="batch",
                   composite=False, segmenter_filters=0, fused=False, name="generator"):
    """U-Net: ``unet_depth`` encoder steps of widths ``filters * 2**i`` capped at ``max_filters``.

    The output layer is named "unmasked"; with ``composite`` the model returns a dict
    {"unmasked", "content", "mask"}. With ``segmenter_filters`` (composite only) the mask comes
    from a second U-Net of that first width (layers named "seg_..."), and the main U-Net paints
    the content from ``Erased``: the input blanked where the map is, and the map.
    """
    depth = unet_depth(image_size)

    def widths(first):
        return [min(first * 2 ** i, max_filters) for i in range(depth)]

    def body(x, first, prefix=""):
        return unet_features(x, widths(first), dropout=dropout, normalization=normalization, fused=fused,
                             prefix=prefix)

    def mask_head(x):
        mask = conv3x3(1, fused=fused, kernel_initializer=INIT, name=MAP_HEAD)(x)
        return layers.Activation("sigmoid", dtype="float32", name="mask")(mask)

    inputs = keras.Input((image_size, image_size, 3), name="masked")
    if segmenter_filters:
        mask = mask_head(body(inputs, segmenter_filters, prefix="seg_"))
        content = to_image(body(Erased(name="erased")([inputs, mask]), filters), fused=fused, name="content")
    else:
        x = body(inputs, filters)
        if not composite:
            return keras.Model(inputs, to_image(x, fused=fused, name="unmasked"), name=name)
        content = to_image(x, fused=fused, name="content")
        mask = mask_head(x)
    unmasked = Composite(name="unmasked")([content, mask, inputs])
    return keras.Model(inputs, {"unmasked": unmasked, "content": content, "mask": mask}, name=name)


def composite_export(generator, mask_closing, name):
    """A composite U-Net ``generator`` reduced to {"unmasked", "mask"} (the content image stays
    inside); ``mask_closing`` > 0 closes the predicted map with a square of that radius in pixels
    (``layers.MapClosing``) and composites the content by the closed map."""
    outputs = {key: generator.get_layer(key).output for key in ("unmasked", "mask")}
    if mask_closing:
        mask = MapClosing(mask_closing, name="closed_mask")(outputs["mask"])
        content = generator.get_layer("content").output
        outputs = {"unmasked": Composite(name="closed_unmasked")([content, mask, generator.input]), "mask": mask}
    return keras.Model(generator.input, outputs, name=name)


@keras.saving.register_keras_serializable("tfunmask")
class Pix2Pix(GAN):
    """Conditional GAN trained on (masked, target, mask_map) batches."""

    LOSS_NAMES = ("g_loss", "g_gan", "g_rec", "d_loss", "d_real", "d_fake")
    PROGRESS_NAMES = ("g_loss", "g_rec", "d_loss")
    DATA = "paired"

    def __init__(self, image_size, *, filters=64, max_filters=512, dropout=0.5, normalization="batch",
                 loss="l1", lambda_l1=100.0, mask_weight=1.0, composite=False, lambda_mask=10.0,
                 segmenter_filters=0, lambda_feature_matching=0.0, lambda_ssim=0.0, upsampling="auto", **kwargs):
        check_size(image_size)
        check_choice("loss", loss, RECONSTRUCTION)
        check_choice("normalization", normalization, NORMALIZATIONS)
        fused = fused_upsampling(upsampling)
        check_positive(filters=filters, max_filters=max_filters)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1) (got {dropout})")
        if segmenter_filters < 0:
            raise ValueError(f"segmenter_filters must be 0 (one network) or positive (got {segmenter_filters})")
        if segmenter_filters and not composite:
            raise ValueError("segmenter_filters needs composite=True: the segmenter predicts the mask map")
        for name, value in (("lambda_feature_matching", lambda_feature_matching), ("lambda_ssim", lambda_ssim)):
            if value < 0:
                raise ValueError(f"{name} must be 0 (off) or positive (got {value})")
        super().__init__(loss_names=self.LOSS_NAMES + (("g_mask",) if composite else ())
                         + (("g_fm",) if lambda_feature_matching else ())
                         + (("g_ssim",) if lambda_ssim else ()), **kwargs)
        self.image_size = image_size
        self.filters = filters
        self.max_filters = max_filters
        self.dropout = dropout
        self.normalization = normalization
        self.reconstruction = loss
        self.lambda_l1 = lambda_l1
        self.mask_weight = mask_weight
        self.composite = composite
        self.lambda_mask = lambda_mask
        self.segmenter_filters = segmenter_filters
        self.lambda_feature_matching = lambda_feature_matching
        self.lambda_ssim = lambda_ssim
        self.upsampling = upsampling
        with self.policy_scope():
            self.generator = unet_generator(image_size, filters=filters, max_filters=max_filters, dropout=dropout,
                                            normalization=normalization, composite=composite,
                                            segmenter_filters=segmenter_filters, fused=fused)
            self.discriminator = patch_discriminator(image_size, 6, filters=filters,
                                                     normalization=normalization, name="discriminator")

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "filters": self.filters,
                "max_filters": self.max_filters, "dropout": self.dropout, "normalization": self.normalization,
                "loss": self.reconstruction, "lambda_l1": self.lambda_l1, "mask_weight": self.mask_weight,
                "composite": self.composite, "lambda_mask": self.lambda_mask,
                "segmenter_filters": self.segmenter_filters,
                "lambda_feature_matching": self.lambda_feature_matching, "lambda_ssim": self.lambda_ssim,
                "upsampling": self.upsampling}

    @property
    def generator_variables(self):
        return self.generator.trainable_variables

    @property
    def discriminators(self):
        return (self.discriminator,)

    @property
    def discriminator_variables(self):
        return self.discriminator.trainable_variables

    @property
    def unmasker(self):
        return self.generator

    def export_generator(self, mask_closing=0):
        """The generator; with ``composite``, reduced to {"unmasked", "mask"} (the content image
        stays inside). ``mask_closing`` > 0 (composite only) closes the predicted map with a
        square of that radius in pixels (``layers.MapClosing``) and composites the content by
        the closed map: a deployment choice that fills cracks the map leaves inside a mask."""
        check_mask_closing(mask_closing, self.composite)
        if not self.composite:
            return self.generator
        return composite_export(self.generator, mask_closing, name="generator")

    def generate(self, masked, training=False):
        """(unmasked image, predicted mask map or None)."""
        out = self.generator(masked, training=training)
        return (out["unmasked"], out["mask"]) if self.composite else (out, None)

    def call(self, masked, training=False):
        return self.generate(masked, training)[0]

    def sample_images(self, batch):
        """Columns for the TensorBoard grid: input | output | target (| predicted mask)."""
        output, mask = self.generate(batch["masked"])
        columns = {"input": batch["masked"], "output": output, "target": batch["target"]}
        if mask is not None:
            columns["mask"] = mask * 2.0 - 1.0
        return {"input_output_target": columns}

    def _pixel_weights(self, mask_map):
        """1 outside the mask, ``mask_weight`` inside it; None when weighting is off."""
        if self.mask_weight == 1.0:
            return None
        return 1.0 + (self.mask_weight - 1.0) * tf.cast(mask_map, tf.float32)

    def _loss_terms(self, data, training):
        """Forward pass and every loss term, per example."""
        data = self.unpack(data)
        masked, target = data["masked"], data["target"]
        output, mask = self.generate(masked, training)
        real_logits, real_features = self._discriminate(tf.concat([masked, target], -1), training)
        fake_logits, fake_features = self._discriminate(tf.concat([masked, output], -1), training)
        rec_fn, _ = RECONSTRUCTION[self.reconstruction]
        terms = {
            "g_gan": losses.bce_real(fake_logits),
            "g_rec": rec_fn(target, output, self._pixel_weights(data.get("mask_map"))),
            "d_real": losses.bce_real(real_logits),
            "d_fake": losses.bce_fake(fake_logits),
        }
        if self.composite:
            terms["g_mask"] = losses.bce(data["mask_map"], mask)
        if self.lambda_feature_matching:
            terms["g_fm"] = losses.feature_matching(real_features, fake_features)
        if self.lambda_ssim:
            terms["g_ssim"] = losses.ssim_distance(target, output, data.get("mask_map"))
        return terms

    def _discriminate(self, pair, training):
        """(logits, the PatchGAN's activations): with feature matching on, the layers run one by
        one (the discriminator is a chain) so that each activation is kept; otherwise one call."""
        if not self.lambda_feature_matching:
            return self.discriminator(pair, training=training), ()
        x, features = pair, []
        for layer in self.discriminator.layers[1:]:
            x = layer(x, training=training)
            if layer.name.endswith("_act"):
                features.append(x)
        return x, features

    def loss_weights(self):
        g = {"g_gan": 1.0, "g_rec": self.lambda_l1}
        if self.composite:
            g["g_mask"] = self.lambda_mask
        if self.lambda_feature_matching:
            g["g_fm"] = self.lambda_feature_matching
        if self.lambda_ssim:
            g["g_ssim"] = self.lambda_ssim
        return g, {"d_real": 0.5, "d_fake": 0.5}

    def reduction(self, term):
        """The reconstruction term follows ``loss`` ("cosine_sum" sums over the global batch)."""
        return RECONSTRUCTION[self.reconstruction][1] if term == "g_rec" else "mean"
