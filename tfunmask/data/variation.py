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

Nothing here knows the other mask family (no outlines, straps or pictures), so it stays an
honest held-out test. Randomness is stateless, keyed by the element's key like the crop.
"""
from __future__ import annotations

import math

import tensorflow as tf

_PRINT_PROBABILITY = 0.5
_BLUR_SIGMA = 1.2  # largest blur at 128 px, scaled with the crop
_NOISE_SIGMA = 0.04  # largest noise standard deviation in [-1, 1] units


def _uniform(key, low, high, shape=()):
    return tf.random.stateless_uniform(shape, key, low, high)


def _print(size: int, key) -> tf.Tensor:
    """Stripes or checks (size, size, 3) in [-1, 1] times a random colour, half of the time;
    else zeros (and then nothing is drawn)."""
    k = tf.unstack(tf.random.experimental.stateless_split(key, 6))
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


def _recoloured(masked, mask, key):
    """The mask's pixels with a random base colour (mostly greys, some tints) and their own
    shading, gained and maybe inverted; a print on top half of the time."""
    area = tf.maximum(tf.reduce_sum(mask), 1.0)
    mean = tf.reduce_sum(masked * mask, axis=[0, 1]) / area
    shading = tf.reduce_mean(masked - mean, axis=-1, keepdims=True)
    k = tf.unstack(tf.random.experimental.stateless_split(key, 4))
    gain = _uniform(k[0], -1.5, 1.5)
    colour = _uniform(k[1], -0.9, 0.9) + _uniform(k[2], -0.35, 0.35, [3])  # a grey level, a tint
    return colour + gain * shading + _print(masked.shape[0], k[3])


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
    k = tf.unstack(tf.random.experimental.stateless_split(key, 5))
    size = stacked.shape[0]
    contrast = _uniform(k[0], 0.75, 1.25)
    brightness = _uniform(k[1], -0.15, 0.15)
    sigma = _uniform(k[2], 0.0, _BLUR_SIGMA * size / 128)
    noise = _uniform(k[3], 0.0, _NOISE_SIGMA) * tf.random.stateless_normal([size, size, 1], k[4])
    channels = stacked.shape[-1]
    varied = _blurred(stacked * contrast + brightness, sigma) + tf.tile(noise, [1, 1, channels])
    return tf.clip_by_value(varied, -1.0, 1.0)


def vary(masked: tf.Tensor, target: tf.Tensor, mask: tf.Tensor, key: tf.Tensor,
         probability: float) -> tuple[tf.Tensor, tf.Tensor]:
    """(masked, target) of one pair, (S, S, 3) in [-1, 1], varied with ``probability`` each way.

    ``mask`` is the pair's mask map (S, S, 1) in {0, 1}; ``key`` a stateless RNG key. The mask's
    new look replaces the masked image inside the map; the photo changes apply to both images.
    """
    if probability <= 0:
        return masked, target
    k = tf.unstack(tf.random.experimental.stateless_split(key, 4))
    # tf.cond, not tf.where: in the tf.data map a variation is computed only when it is drawn.
    def recoloured():
        return masked * (1.0 - mask) + tf.clip_by_value(_recoloured(masked, mask, k[1]), -1.0, 1.0) * mask

    masked = tf.cond(_uniform(k[0], 0.0, 1.0) < probability, recoloured, lambda: masked)
    both = tf.concat([masked, target], axis=-1)
    both = tf.cond(_uniform(k[2], 0.0, 1.0) < probability, lambda: _photo(both, k[3]), lambda: both)
    return both[..., :3], both[..., 3:]
