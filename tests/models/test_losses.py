"""Every loss term against a NumPy reference on random tensors."""

import numpy as np
import pytest
import tensorflow as tf

from tfunmask.evaluation import image
from tfunmask.models import losses

RNG = np.random.default_rng(0)
TARGET = RNG.uniform(-1, 1, (3, 8, 8, 3)).astype(np.float32)
OUTPUT = RNG.uniform(-1, 1, (3, 8, 8, 3)).astype(np.float32)
LOGITS = RNG.normal(size=(3, 4, 4, 1)).astype(np.float32)


def np_cosine(x, y):
    x, y = x.reshape(len(x), -1).astype(np.float64), y.reshape(len(y), -1).astype(np.float64)
    return 1 - (x * y).sum(1) / np.maximum(np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1), 1e-8)


def np_softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def test_l1_matches_numpy():
    expected = np.abs(TARGET - OUTPUT).reshape(3, -1).mean(1)
    np.testing.assert_allclose(losses.l1(TARGET, OUTPUT).numpy(), expected, rtol=1e-6)


def test_weighted_l1_is_mean_over_weighted_pixels():
    weights = (RNG.uniform(size=(3, 8, 8, 1)) > 0.5).astype(np.float32)
    diff = np.abs(TARGET - OUTPUT) * weights
    expected = diff.reshape(3, -1).sum(1) / (np.broadcast_to(weights, diff.shape).reshape(3, -1).sum(1))
    np.testing.assert_allclose(losses.l1(TARGET, OUTPUT, weights).numpy(), expected, rtol=1e-5)


def test_cosine_distance_matches_numpy():
    np.testing.assert_allclose(losses.cosine_distance(TARGET, OUTPUT).numpy(),
                               np_cosine(TARGET, OUTPUT), rtol=1e-5, atol=1e-6)


def test_cosine_distance_range_and_fixed_points():
    assert np.allclose(losses.cosine_distance(TARGET, TARGET).numpy(), 0, atol=1e-6)
    assert np.allclose(losses.cosine_distance(TARGET, -TARGET).numpy(), 2, atol=1e-6)
    assert np.allclose(losses.cosine_distance(TARGET, 3 * TARGET).numpy(), 0, atol=1e-6)
    zeros = np.zeros_like(TARGET)
    assert np.all(np.isfinite(losses.cosine_distance(zeros, zeros).numpy()))  # eps guards 0/0


def test_weighted_cosine_uses_sqrt_weights():
    weights = RNG.uniform(0.5, 2, (3, 8, 8, 1)).astype(np.float32)
    root = np.sqrt(weights)
    np.testing.assert_allclose(losses.cosine_distance(TARGET, OUTPUT, weights).numpy(),
                               np_cosine(TARGET * root, OUTPUT * root), rtol=1e-5, atol=1e-6)


def test_bce_matches_numpy():
    np.testing.assert_allclose(losses.bce_real(LOGITS).numpy(),
                               np_softplus(-LOGITS).reshape(3, -1).mean(1), rtol=1e-5)
    np.testing.assert_allclose(losses.bce_fake(LOGITS).numpy(),
                               np_softplus(LOGITS).reshape(3, -1).mean(1), rtol=1e-5)


def test_lsgan_matches_numpy():
    np.testing.assert_allclose(losses.lsgan_real(LOGITS).numpy(),
                               ((LOGITS - 1) ** 2).reshape(3, -1).mean(1), rtol=1e-6)
    np.testing.assert_allclose(losses.lsgan_fake(LOGITS).numpy(),
                               (LOGITS ** 2).reshape(3, -1).mean(1), rtol=1e-6)


def test_total_variation_matches_numpy():
    maps = RNG.uniform(size=(3, 8, 8, 1)).astype(np.float32)
    dy = np.abs(np.diff(maps, axis=1)).reshape(3, -1).mean(1)
    dx = np.abs(np.diff(maps, axis=2)).reshape(3, -1).mean(1)
    np.testing.assert_allclose(losses.total_variation(maps).numpy(), dx + dy, rtol=1e-6)
    assert np.allclose(losses.total_variation(np.ones((2, 4, 4, 1), np.float32)).numpy(), 0)


@pytest.mark.parametrize("fn", [losses.l1, losses.cosine_distance])
def test_losses_accept_bfloat16(fn):
    value = fn(tf.cast(TARGET, tf.bfloat16), tf.cast(OUTPUT, tf.bfloat16))
    assert value.dtype == tf.float32 and value.shape == (3,)


def test_bce_of_probabilities_matches_numpy():
    target = (RNG.uniform(size=(3, 8, 8, 1)) > 0.5).astype(np.float32)
    prob = RNG.uniform(0.01, 0.99, (3, 8, 8, 1)).astype(np.float32)
    expected = -(target * np.log(prob) + (1 - target) * np.log(1 - prob)).reshape(3, -1).mean(1)
    np.testing.assert_allclose(losses.bce(target, prob).numpy(), expected, rtol=1e-5)


def test_feature_matching_is_the_mean_over_layers_of_the_mean_absolute_difference():
    real = [tf.ones((2, 4, 4, 3)), tf.zeros((2, 2, 2, 5))]
    fake = [tf.zeros((2, 4, 4, 3)), tf.fill((2, 2, 2, 5), 3.0)]
    np.testing.assert_allclose(losses.feature_matching(real, fake).numpy(), [2.0, 2.0])
    np.testing.assert_array_equal(losses.feature_matching(real, real).numpy(), [0.0, 0.0])
    real_var = tf.Variable(tf.ones((2, 4, 4, 3)))
    fake_var = tf.Variable(tf.zeros((2, 4, 4, 3)))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(losses.feature_matching([real_var], [fake_var]))
    grad_real, grad_fake = tape.gradient(loss, [real_var, fake_var])
    assert grad_real is None and float(tf.reduce_sum(tf.abs(grad_fake))) > 0


def test_ssim_distance_is_one_minus_the_evaluations_ssim():
    """The training term scores what the evaluation reports: 1 - tf.image.ssim on [0, 255]
    images, whole or over the mask's window centres. Same op in float32 at another scale, so
    they agree to float32 rounding of the window sums (atol 1e-4 on values of order 1)."""
    rng = np.random.default_rng(1)
    target = rng.uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    output = np.clip(target + rng.normal(0, 0.3, target.shape), -1, 1).astype(np.float32)
    weights = np.zeros((3, 32, 32, 1), np.float32)
    weights[:, 12:] = 1
    pixels = [(x + 1) * 127.5 for x in (target, output)]
    np.testing.assert_allclose(losses.ssim_distance(target, output).numpy(), 1 - image.ssim(*pixels), atol=1e-4)
    np.testing.assert_allclose(losses.ssim_distance(target, output, weights).numpy(),
                               1 - image.masked_ssim(*pixels, weights), atol=1e-4)
    np.testing.assert_allclose(losses.ssim_distance(target, target).numpy(), 0.0, atol=1e-5)
    # Only windows centred on weights count: equal images under them (half a window beyond the
    # weights) give 0 whatever the rest holds.
    same_below = target.copy()
    same_below[:, :12 - losses.SSIM_WINDOW // 2] = output[:, :12 - losses.SSIM_WINDOW // 2]
    np.testing.assert_allclose(losses.ssim_distance(target, same_below, weights).numpy(), 0.0, atol=1e-5)
    assert (losses.ssim_distance(target, same_below).numpy() > 1e-3).all()  # 100x the tolerance


def test_ssim_distance_has_a_gradient_towards_the_target():
    target = tf.constant(np.random.default_rng(2).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32))
    output = tf.Variable(tf.zeros_like(target))
    for _ in range(20):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(losses.ssim_distance(target, output))
        grad = tape.gradient(loss, output)
        assert bool(tf.reduce_all(tf.math.is_finite(grad)))
        output.assign_sub(20.0 * grad)
    assert float(tf.reduce_sum(losses.ssim_distance(target, output))) < 0.5 * float(
        tf.reduce_sum(losses.ssim_distance(target, tf.zeros_like(target))))
