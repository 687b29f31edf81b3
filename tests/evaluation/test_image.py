"""PSNR, SSIM and L1, whole image and mask region, against known values and tf.image."""
import numpy as np
import pytest
import tensorflow as tf

from tfunmask.evaluation import image

SIZE = 32


def _random(rng, count=3):
    return rng.integers(0, 256, (count, SIZE, SIZE, 3), dtype=np.uint8)


def _lower_half_mask(count=3):
    mask = np.zeros((count, SIZE, SIZE), np.uint8)
    mask[:, SIZE // 2:] = 255
    return mask


def test_psnr_and_l1_known_values():
    a = np.full((2, SIZE, SIZE, 3), 100, np.uint8)
    b = a.copy()
    b[0] += 10
    b[1] += 51
    np.testing.assert_allclose(image.psnr(a, b), 20 * np.log10(255 / np.array([10.0, 51.0])), rtol=1e-5)
    np.testing.assert_allclose(image.l1(a, b), [10 / 255, 51 / 255])
    assert image.psnr(a, a)[0] == np.inf


def test_ssim_known_values():
    """Flat images have no contrast term: SSIM is the luminance term (2ab + c1) / (a^2 + b^2 + c1)."""
    a, b = np.full((1, SIZE, SIZE, 3), 80, np.uint8), np.full((1, SIZE, SIZE, 3), 160, np.uint8)
    c1 = (0.01 * 255) ** 2
    assert image.ssim(a, b)[0] == pytest.approx((2 * 80 * 160 + c1) / (80 ** 2 + 160 ** 2 + c1), rel=1e-4)  # float32
    noise = _random(np.random.default_rng(0))
    np.testing.assert_allclose(image.ssim(noise, noise), 1.0, rtol=1e-6)


def test_masked_metrics_with_full_mask_equal_whole_image_metrics():
    rng = np.random.default_rng(1)
    a, b = _random(rng), _random(rng)
    full = np.full((3, SIZE, SIZE, 1), 255, np.uint8)
    np.testing.assert_allclose(image.masked_psnr(a, b, full), image.psnr(a, b), rtol=1e-5)
    np.testing.assert_allclose(image.masked_ssim(a, b, full), tf.image.ssim(a.astype(np.float32),
                               b.astype(np.float32), 255.0).numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(image.masked_l1(a, b, full), image.l1(a, b))


def test_masked_metrics_ignore_pixels_outside_the_mask():
    rng = np.random.default_rng(2)
    a, b = _random(rng), _random(rng)
    mask = _lower_half_mask()
    changed = b.copy()
    changed[:, : SIZE // 2 - image.SSIM_WINDOW] = _random(rng)[:, : SIZE // 2 - image.SSIM_WINDOW]
    for metric in (image.masked_psnr, image.masked_ssim, image.masked_l1):
        np.testing.assert_allclose(metric(a, changed, mask), metric(a, b, mask))
    outside_only = a.copy()
    outside_only[:, : SIZE // 2] = 0
    np.testing.assert_allclose(image.masked_l1(a, outside_only, mask), 0.0)
    assert (image.masked_psnr(a, outside_only, mask) == np.inf).all()


def test_masked_values_on_a_known_case():
    a = np.full((1, SIZE, SIZE, 3), 100, np.uint8)
    b = a.copy()
    b[:, SIZE // 2:] = 120
    b[:, : SIZE // 2] = 0
    mask = _lower_half_mask(1)
    assert image.masked_l1(a, b, mask)[0] == pytest.approx(20 / 255)
    assert image.masked_psnr(a, b, mask)[0] == pytest.approx(20 * np.log10(255 / 20))


def test_empty_mask_gives_nan():
    rng = np.random.default_rng(3)
    a, b = _random(rng, 1), _random(rng, 1)
    empty = np.zeros((1, SIZE, SIZE), np.uint8)
    for metric in (image.masked_psnr, image.masked_ssim, image.masked_l1):
        assert np.isnan(metric(a, b, empty)[0])
