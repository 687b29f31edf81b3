"""Every loss term of the three models, as per-example values.

Each function returns one value per example (shape ``(batch,)``) in float32.
Reducing over the batch is left to the model's ``reduce`` step, which knows
the *global* batch size under a distribution strategy: a per-replica mean
would otherwise be averaged a second time by the gradient all-reduce, and a
"sum over the batch" would silently become a sum over the local batch.
"""

import tensorflow as tf

EPSILON = 1e-8
SSIM_WINDOW = 11  # tf.image.ssim's default filter size: its local map is smaller by SSIM_WINDOW - 1


def _flat(x):
    return tf.reshape(tf.cast(x, tf.float32), [tf.shape(x)[0], -1])


def _weighted_mean(values, weights):
    """Per-example mean of ``values``, or weighted mean when ``weights`` has their shape."""
    values = _flat(values)
    if weights is None:
        return tf.reduce_mean(values, axis=1)
    weights = _flat(weights)
    return tf.reduce_sum(values * weights, axis=1) / tf.maximum(tf.reduce_sum(weights, axis=1), EPSILON)


def l1(target, output, weights=None):
    """Mean absolute error per example; ``weights`` (broadcastable) weights pixels."""
    diff = tf.abs(tf.cast(target, tf.float32) - tf.cast(output, tf.float32))
    if weights is not None:
        weights = tf.broadcast_to(tf.cast(weights, tf.float32), tf.shape(diff))
    return _weighted_mean(diff, weights)


def cosine_distance(target, output, weights=None):
    """1 - x.y / max(|x| |y|, eps) over each flattened image.

    With ``weights`` both images are scaled by sqrt(weights) first, which
    weights each pixel's contribution to the dot product and the norms.
    """
    x, y = tf.cast(target, tf.float32), tf.cast(output, tf.float32)
    if weights is not None:
        root = tf.sqrt(tf.broadcast_to(tf.cast(weights, tf.float32), tf.shape(x)))
        x, y = x * root, y * root
    x, y = _flat(x), _flat(y)
    dot = tf.reduce_sum(x * y, axis=1)
    norms = tf.norm(x, axis=1) * tf.norm(y, axis=1)
    return 1.0 - dot / tf.maximum(norms, EPSILON)


def ssim_distance(target, output, weights=None):
    """1 - mean local SSIM per example, on images in [-1, 1].

    The local map is tf.image.ssim's (11x11 Gaussian window, sigma 1.5) of both images taken to
    [0, 1], which is what the evaluation's SSIM scores (SSIM is not shift-invariant, so the
    scale matters). With ``weights`` (N, H, W, 1), e.g. the mask map, it is their weighted mean
    over the window centres (the weights cropped by half a window on each side to line up), so
    the term is the mask region's SSIM, as ``evaluation.image.masked_ssim`` reports it.
    """
    x = (tf.cast(target, tf.float32) + 1.0) / 2.0
    y = (tf.cast(output, tf.float32) + 1.0) / 2.0
    local = tf.image.ssim(x, y, max_val=1.0, filter_size=SSIM_WINDOW, return_index_map=True)
    if weights is not None:
        half = SSIM_WINDOW // 2
        weights = tf.cast(weights, tf.float32)[:, half:-half, half:-half, 0]
    return _weighted_mean(1.0 - local, weights)


def bce(target, probability):
    """Binary cross-entropy of predicted probabilities against {0, 1} targets, per example."""
    p = tf.clip_by_value(_flat(probability), 1e-7, 1.0 - 1e-7)
    y = _flat(target)
    return -tf.reduce_mean(y * tf.math.log(p) + (1.0 - y) * tf.math.log(1.0 - p), axis=1)


def bce_real(logits):
    """Non-saturating GAN loss for logits that should say "real" (per example)."""
    logits = _flat(logits)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(logits), logits), axis=1)


def bce_fake(logits):
    """GAN loss for logits that should say "fake" (per example)."""
    logits = _flat(logits)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.zeros_like(logits), logits), axis=1)


def lsgan_real(scores):
    """Least-squares GAN loss towards 1 (per example)."""
    return tf.reduce_mean(tf.square(_flat(scores) - 1.0), axis=1)


def lsgan_fake(scores):
    """Least-squares GAN loss towards 0 (per example)."""
    return tf.reduce_mean(tf.square(_flat(scores)), axis=1)


def total_variation(maps):
    """Mean absolute difference between neighbouring pixels, per example.

    Regularises attention masks towards smooth regions so they do not
    saturate into salt-and-pepper patterns.
    """
    maps = tf.cast(maps, tf.float32)
    dy = tf.abs(maps[:, 1:, :, :] - maps[:, :-1, :, :])
    dx = tf.abs(maps[:, :, 1:, :] - maps[:, :, :-1, :])
    return tf.reduce_mean(_flat(dy), axis=1) + tf.reduce_mean(_flat(dx), axis=1)


def feature_matching(real_features, fake_features):
    """pix2pixHD's discriminator feature matching, per example: the mean over layers of the
    mean absolute difference between the discriminator's activations on the real and on the
    generated image. The real side is a constant (no gradient reaches the discriminator through
    it); the generator is pulled towards the real image's statistics at every depth, which
    sharpens without a pretrained network."""
    return tf.add_n([tf.reduce_mean(tf.abs(_flat(tf.stop_gradient(real)) - _flat(fake)), axis=1)
                     for real, fake in zip(real_features, fake_features)]) / len(real_features)
