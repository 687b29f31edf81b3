"""A 2-D thin-plate spline: the smoothest map that takes given points (nearly) to given points.

The mask-image family (``mask_images``) draws a mask flat in its own template space and warps it
onto a face through the anchor pairs it reads off the landmarks; a thin-plate spline bends the
template as little as the anchors allow, so a drawn rectangle follows the jaw's curve without
folding. Only the inverse map (image pixel -> template pixel) is needed: ``cv2.remap`` samples
the template at it.
"""
from __future__ import annotations

import numpy as np


def _kernel(r2: np.ndarray) -> np.ndarray:
    """U(r) = r^2 log r^2, with U(0) = 0."""
    return np.where(r2 > 0, r2 * np.log(np.maximum(r2, 1e-12)), 0.0)


class ThinPlateSpline:
    """Maps points in R^2 to R^2; fitted to ``source`` -> ``target`` pairs (K, 2).

    ``smoothing`` (relative to the mean kernel value) trades exact interpolation for less bending;
    a least-squares solve keeps degenerate anchor sets (all on a line) from raising.
    """

    def __init__(self, source: np.ndarray, target: np.ndarray, smoothing: float = 0.0):
        source = np.asarray(source, np.float64)
        target = np.asarray(target, np.float64)
        if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 2 or len(source) < 3:
            raise ValueError("a thin-plate spline needs two (K, 2) point sets, K >= 3")
        self.centre = source.mean(axis=0)
        self.scale = max(float(np.abs(source - self.centre).max()), 1e-6)
        self.source = (source - self.centre) / self.scale  # well conditioned whatever the pixel size
        k = len(source)
        kernel = _kernel(((self.source[:, None] - self.source[None]) ** 2).sum(-1))
        kernel += np.eye(k) * smoothing * max(float(np.abs(kernel).mean()), 1e-6)
        affine = np.hstack([np.ones((k, 1)), self.source])
        system = np.block([[kernel, affine], [affine.T, np.zeros((3, 3))]])
        rhs = np.vstack([target, np.zeros((3, 2))])
        self.coefficients = np.linalg.lstsq(system, rhs, rcond=None)[0]

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """The map at ``points`` (..., 2)."""
        points = np.asarray(points, np.float64)
        flat = (points.reshape(-1, 2) - self.centre) / self.scale
        kernel = _kernel(((flat[:, None] - self.source[None]) ** 2).sum(-1))
        k = len(self.source)
        out = kernel @ self.coefficients[:k] + self.coefficients[k] + flat @ self.coefficients[k + 1:]
        return out.reshape(points.shape)
