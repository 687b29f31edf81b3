"""Random variation of a synthetic training pair, so a model learns masks rather than a renderer.

A model trained on one renderer's masks learns that renderer's colours, shading and edges (#16:
2.9 dB worse on a mask family it never saw). Each training pair (masked, target, mask map) is
varied, with a given probability, in two independent ways:

* the mask itself, on the masked image inside the mask map only: recoloured (a random colour
  plus its own shading scaled by a random gain whose sign may invert it, so light masks become
  dark ones), and sometimes overprinted with stripes or checks of a random period, angle and
  colour;
* the photo, on masked and target alike (so the pixels outside the mask still agree): brightness
  and contrast, a Gaussian blur and sensor noise, as in real photos of other cameras.

With ``extras`` (a second probability, 0 by default) a recoloured mask may also lose its own
shading to a random smooth texture (so no renderer's folds and light are left to learn), get a
hem-like band along its edge or a print of dots, and the photo may be JPEG-compressed and
downscaled, as photos from the web are. These are generic properties of real masks and photos,
not drawings of the held-out family (no straps, cut-outs or warped pictures are drawn), so that
family stays an honest held-out test. Randomness is stateless, keyed by the element's key like
the crop.

With ``bare`` (a third probability) the pair is replaced by the bare face: the (varied) target
as both images and an empty mask map, so a model that predicts where the mask is learns to
predict nothing on a face without one (v5's map averaged 0.18 on bare faces, and the photo path
repainted part of every unmasked lower face). ``Variation`` holds the three probabilities.
"""
from __future__ import annotations

import dataclasses
import math

import tensorflow as tf

_PRINT_PROBABILITY = 0.5
_BLUR_SIGMA = 1.2  # largest blur at 128 px, scaled with the crop
_NOISE_SIGMA = 0.04  # largest noise standard deviation in [-1, 1] units
_HEM_WIDTHS = (1, 2, 3)  # band widths along the mask's edge at 128 px, scaled with the crop
_JPEG_QUALITY = (20, 90)  # drawn from [20, 90)
_SMALLEST_SCALE = 0.35  # downscaled to between this fraction of the crop and all of it, then back up


def _keys(key, count: int) -> list:
    """``count`` independent stateless RNG keys derived from ``key``."""
    return tf.unstack(tf.random.experimental.stateless_split(key, count))


def _extra_keys(key) -> list:
    """Two keys for the extras, derived apart from ``_keys(key, n)`` so that with extras off the
    other draws are exactly what they were before extras existed."""
    return _keys(tf.random.experimental.stateless_fold_in(key, 1), 2)


def _uniform(key, low, high, shape=()):
    return tf.random.stateless_uniform(shape, key, low, high)


def _print(size: int, key) -> tf.Tensor:
    """Stripes or checks (size, size, 3) in [-1, 1] times a random colour, half of the time;
    else zeros (and then nothing is drawn)."""
    k = _keys(key, 6)
    return tf.cond(_uniform(k[4], 0.0, 1.0) < _PRINT_PROBABILITY, lambda: _pattern(size, k),
                   lambda: tf.zeros([size, size, 3]))


def _pattern(size: int, k) -> tf.Tensor:
    """The print itself, from the keys ``k`` of ``_print``."""
    coords = (tf.range(size, dtype=tf.float32) + 0.5) / size
    y, x = tf.meshgrid(coords, coords, indexing="ij")
    angle = _uniform(k[0], 0.0, math.pi)
    period = _uniform(k[1], 0.04, 0.25)
    along = (x * tf.cos(angle) + y * tf.sin(angle)) / period
    across = (-x * tf.sin(angle) + y * tf.cos(angle)) / period
    stripes = tf.sign(tf.sin(2 * math.pi * along))
    checks = stripes * tf.sign(tf.sin(2 * math.pi * across))
    pattern = tf.where(_uniform(k[2], 0.0, 1.0) < 0.5, stripes, checks)[..., None]
    return pattern * _uniform(k[3], -0.6, 0.6, [3])


def _recoloured(masked, mask, key, extras: float):
    """The mask's pixels with a random base colour (mostly greys, some tints) and their own
    shading, gained and maybe inverted; a print on top half of the time. With probability
    ``extras`` the shading is a random texture instead, with a hem band or dots half the time each."""
    k = _keys(key, 4)
    colour = _uniform(k[1], -0.9, 0.9) + _uniform(k[2], -0.35, 0.35, [3])  # a grey level, a tint

    def plain():
        area = tf.maximum(tf.reduce_sum(mask), 1.0)
        mean = tf.reduce_sum(masked * mask, axis=[0, 1]) / area
        shading = tf.reduce_mean(masked - mean, axis=-1, keepdims=True)
        return colour + _uniform(k[0], -1.5, 1.5) * shading + _print(masked.shape[0], k[3])

    if extras <= 0:
        return plain()
    e = _extra_keys(key)  # the branch not drawn is not computed (this runs in the tf.data map)
    return tf.cond(_uniform(e[0], 0.0, 1.0) < extras, lambda: _decorated(colour, mask, e[1]), plain)


def _texture(size: int, key) -> tf.Tensor:
    """Smooth random shading (size, size, 1) of unit spread: coarse and fine noise grids enlarged,
    mixed at a random ratio, so the mask shows folds and light no renderer made."""
    k = _keys(key, 3)
    coarse = tf.image.resize(tf.random.stateless_normal([1, 4, 4, 1], k[0]), [size, size], "bicubic")
    fine = tf.image.resize(tf.random.stateless_normal([1, 16, 16, 1], k[1]), [size, size], "bicubic")
    mix = _uniform(k[2], 0.0, 1.0)
    texture = (mix * coarse + (1.0 - mix) * fine)[0]
    return texture / (tf.math.reduce_std(texture) + 1e-6)


def hem(mask: tf.Tensor, width: int) -> tf.Tensor:
    """The band (S, S, 1) of a {0, 1} mask map's pixels within ``width`` pixels of its edge:
    the map minus its erosion by a (2 width + 1) square."""
    eroded = -tf.nn.max_pool2d(-mask[None], 2 * width + 1, 1, "SAME")[0]
    return mask - eroded


def _dots(size: int, key) -> tf.Tensor:
    """A polka-dot print (size, size, 1) in {0, 1} of random period and dot size."""
    k = _keys(key, 3)
    coords = (tf.range(size, dtype=tf.float32) + 0.5) / size
    y, x = tf.meshgrid(coords, coords, indexing="ij")
    period = _uniform(k[0], 0.05, 0.2)
    phase = _uniform(k[1], 0.0, 1.0, [2])
    wave = tf.sin(2 * math.pi * (x / period + phase[0])) * tf.sin(2 * math.pi * (y / period + phase[1]))
    return tf.cast(wave > _uniform(k[2], 0.3, 0.8), tf.float32)[..., None]


def _decorated(colour, mask, key):
    """A recoloured mask whose shading is a random texture, with a hem band of another colour
    half of the time and a print of dots half of the time."""
    size = mask.shape[0]
    k = _keys(key, 8)
    look = colour + _uniform(k[0], 0.0, 0.35) * _texture(size, k[1])
    widths = [max(1, round(w * size / 128)) for w in _HEM_WIDTHS]
    band = tf.switch_case(tf.random.stateless_uniform([], k[2], 0, len(widths), tf.int32),
                          [lambda w=w: hem(mask, w) for w in widths])
    band *= tf.cast(_uniform(k[3], 0.0, 1.0) < 0.5, tf.float32)
    dots = _dots(size, k[4]) * tf.cast(_uniform(k[5], 0.0, 1.0) < 0.5, tf.float32)
    look = look * (1.0 - dots) + _uniform(k[6], -0.9, 0.9, [3]) * dots
    return look * (1.0 - band) + _uniform(k[7], -0.9, 0.9, [3]) * band


def _blurred(images, sigma):
    """Gaussian blur of (S, S, C) images with a 7-tap separable kernel (sigma in pixels)."""
    taps = tf.range(-3.0, 4.0)
    kernel = tf.exp(-0.5 * tf.square(taps / tf.maximum(sigma, 1e-3)))
    kernel /= tf.reduce_sum(kernel)
    channels = images.shape[-1]
    rows = tf.tile(tf.reshape(kernel, [7, 1, 1, 1]), [1, 1, channels, 1])
    cols = tf.tile(tf.reshape(kernel, [1, 7, 1, 1]), [1, 1, channels, 1])
    padded = tf.pad(images[None], [[0, 0], [3, 3], [3, 3], [0, 0]], mode="REFLECT")
    out = tf.nn.depthwise_conv2d(padded, rows, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(out, cols, [1, 1, 1, 1], "VALID")[0]


def _photo(stacked, key):
    """Brightness, contrast, blur and noise applied identically to every stacked image."""
    k = _keys(key, 5)
    size = stacked.shape[0]
    contrast = _uniform(k[0], 0.75, 1.25)
    brightness = _uniform(k[1], -0.15, 0.15)
    sigma = _uniform(k[2], 0.0, _BLUR_SIGMA * size / 128)
    noise = _uniform(k[3], 0.0, _NOISE_SIGMA) * tf.random.stateless_normal([size, size, 1], k[4])
    channels = stacked.shape[-1]
    varied = _blurred(stacked * contrast + brightness, sigma) + tf.tile(noise, [1, 1, channels])
    return tf.clip_by_value(varied, -1.0, 1.0)


def _degraded(masked, target, mask, key):
    """Both images downscaled by a random factor and back, then JPEG-compressed at a random
    quality; outside the mask map the masked image takes the target's compressed pixels, so the
    two still agree there."""
    k = _keys(key, 2)
    size = masked.shape[0]
    small = tf.cast(tf.round(size * _uniform(k[0], _SMALLEST_SCALE, 1.0)), tf.int32)
    both = tf.image.resize(tf.image.resize(tf.concat([masked, target], -1), [small, small], "area"),
                           [size, size], "bilinear")
    quality = tf.random.stateless_uniform([], k[1], *_JPEG_QUALITY, tf.int32)
    masked, target = (tf.image.adjust_jpeg_quality(tf.clip_by_value(x * 0.5 + 0.5, 0.0, 1.0), quality) * 2.0 - 1.0
                      for x in (both[..., :3], both[..., 3:]))
    masked = tf.reshape(masked, [size, size, 3])
    target = tf.reshape(target, [size, size, 3])
    return masked * mask + target * (1.0 - mask), target


def vary(masked: tf.Tensor, target: tf.Tensor, mask: tf.Tensor, key: tf.Tensor,
         probability: float, extras: float = 0.0, new_look: bool = True) -> tuple[tf.Tensor, tf.Tensor]:
    """(masked, target) of one pair, (S, S, 3) in [-1, 1], varied with ``probability`` each way.

    ``mask`` is the pair's mask map (S, S, 1) in {0, 1}; ``key`` a stateless RNG key. The mask's
    new look replaces the masked image inside the map; the photo changes apply to both images.
    ``extras``: probability that a new look is a textured one (hem, dots) and, independently,
    that the photo is downscaled and JPEG-compressed; 0 leaves the variation as it was.
    ``new_look=False`` varies the photo alone (the same draws, so the target is the same).
    """
    if probability <= 0:
        return masked, target
    k = _keys(key, 4)
    # tf.cond, not tf.where: in the tf.data map a variation is computed only when it is drawn.
    def recoloured():
        look = _recoloured(masked, mask, k[1], extras)
        return masked * (1.0 - mask) + tf.clip_by_value(look, -1.0, 1.0) * mask

    if new_look:
        masked = tf.cond(_uniform(k[0], 0.0, 1.0) < probability, recoloured, lambda: masked)
    both = tf.concat([masked, target], axis=-1)
    both = tf.cond(_uniform(k[2], 0.0, 1.0) < probability, lambda: _photo(both, k[3]), lambda: both)
    masked, target = both[..., :3], both[..., 3:]
    if extras <= 0:
        return masked, target
    e = _extra_keys(key)
    return tf.cond(_uniform(e[0], 0.0, 1.0) < extras, lambda: _degraded(masked, target, mask, e[1]),
                   lambda: (masked, target))


@dataclasses.dataclass(frozen=True)
class Variation:
    """How training pairs are varied: ``probability`` of a new mask look and of photo changes
    (``--mask_variation``), ``extras`` of a textured look and of compression on top
    (``--variation_extras``, needs ``probability``), ``bare`` of the pair becoming the bare face
    (``--bare_faces``). All 0 (the default): pairs as written."""

    probability: float = 0.0
    extras: float = 0.0
    bare: float = 0.0

    def __post_init__(self):
        for name, value in (("mask_variation", self.probability), ("variation_extras", self.extras),
                            ("bare_faces", self.bare)):
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1] (got {value})")
        if self.extras and not self.probability:
            raise ValueError("variation_extras adds to mask_variation: give mask_variation too")

    def __bool__(self):
        return bool(self.probability or self.bare)

    def apply(self, masked: tf.Tensor, target: tf.Tensor, mask: tf.Tensor,
              key: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(masked, target, mask map) of one pair varied (``vary``), or with probability ``bare``
        (target, target, zeros) with the target varied as it would have been; keys as ``vary``'s,
        the bare draw apart. A bare pair's mask is not given a new look only to be dropped."""
        if self.bare <= 0:
            return (*vary(masked, target, mask, key, self.probability, self.extras), mask)

        def bare():
            face = vary(target, target, mask, key, self.probability, self.extras, new_look=False)[1]
            return face, face, tf.zeros_like(mask)

        def masked_pair():
            return (*vary(masked, target, mask, key, self.probability, self.extras), mask)

        draw = _uniform(tf.random.experimental.stateless_fold_in(key, 2), 0.0, 1.0)
        return tf.cond(draw < self.bare, bare, masked_pair)
