"""Pixel fidelity of unmasked faces against their true faces: PSNR, SSIM and L1, over the whole
image and over the mask region alone.

Whole-image PSNR and SSIM are `tf.image.psnr` and `tf.image.ssim` (Gaussian window 11x11,
sigma 1.5, k1 0.01, k2 0.03). The masked variants exist because most of an unmasked face is a
copy of its input: whole-image scores are dominated by pixels no model has to invent. Masked
PSNR and L1 average the squared and absolute errors over mask pixels only; masked SSIM is the
mean of tf.image.ssim's local SSIM map (`return_index_map=True`) over the window centres inside
the mask. All functions take uint8 RGB batches (N, H, W, 3) and masks (N, H, W) or
(N, H, W, 1) whose non-zero pixels are the mask, and return one value per image (N,); L1 is on
the [0, 1] scale. An image with an empty mask gets NaN from the masked variants.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfunmask.models.losses import SSIM_WINDOW  # the training term's window: they score alike

MAX_VAL = 255.0


def _float(images: np.ndarray) -> tf.Tensor:
    return tf.cast(tf.convert_to_tensor(images), tf.float32)


def _weights(mask: np.ndarray) -> np.ndarray:
    """(N, H, W) float64 in {0, 1} from any mask layout."""
    mask = np.asarray(mask)
    return (mask.reshape(mask.shape[:3]) > 0).astype(np.float64)


def _masked_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-image mean of (N, H, W) values where weights are 1; NaN for an empty mask."""
    total = weights.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (values * weights).sum(axis=(1, 2)) / total, np.nan)


def _pixel_errors(a: np.ndarray, b: np.ndarray, power: int) -> np.ndarray:
    """|a - b|^power averaged over channels: (N, H, W) float64."""
    return (np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** power).mean(axis=-1)


def _psnr_from_mse(mse: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 10 * np.log10(MAX_VAL ** 2 / mse)


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Peak signal-to-noise ratio in dB per image (inf for identical images)."""
    return tf.image.psnr(_float(a), _float(b), MAX_VAL).numpy().astype(np.float64)


def masked_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """PSNR in dB of the mask region alone: from the mean squared error over mask pixels."""
    return _psnr_from_mse(_masked_mean(_pixel_errors(a, b, 2), _weights(mask)))


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Structural similarity per image (1 for identical images)."""
    return tf.image.ssim(_float(a), _float(b), MAX_VAL, filter_size=SSIM_WINDOW).numpy().astype(np.float64)


def masked_ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of the local SSIM map over the windows centred inside the mask.

    The map is tf.image.ssim's, computed on valid windows only, so the mask is cropped by
    half a window on every side to line up with the window centres.
    """
    local = tf.image.ssim(_float(a), _float(b), MAX_VAL, filter_size=SSIM_WINDOW,
                          return_index_map=True).numpy().astype(np.float64)
    half = SSIM_WINDOW // 2
    return _masked_mean(local, _weights(mask)[:, half:-half, half:-half])


def l1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute error per image on the [0, 1] scale."""
    return _pixel_errors(a, b, 1).mean(axis=(1, 2)) / MAX_VAL


def masked_l1(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean absolute error over the mask pixels, on the [0, 1] scale."""
    return _masked_mean(_pixel_errors(a, b, 1), _weights(mask)) / MAX_VAL
