"""Fréchet distance and Kernel Inception Distance between two sets of feature vectors.

Hand-written because no maintained library computes them for TF 2.21 (tensorflow-gan no
longer imports). The Fréchet distance is that of Gaussians fitted to the features (FID when
the features are InceptionV3 pool activations):

    ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)).

The trace of the matrix square root is the sum of the singular values of S_a^(1/2) S_b^(1/2)
(their squares are the eigenvalues of S_a^(1/2) S_b S_a^(1/2), which has the spectrum of
S_a S_b), with each symmetric root from an eigen-decomposition. Unlike
`scipy.linalg.sqrtm(S_a @ S_b)` this never leaves the reals, so it stays exact when the
covariances are singular (fewer samples than dimensions, the usual case for small test sets);
taking singular values of the product of roots, rather than square roots of eigenvalues of
S_a^(1/2) S_b S_a^(1/2), keeps round-off in the null space from being amplified by the root.

KID is the unbiased estimate of the squared MMD with the cubic polynomial kernel
k(x, y) = (x.y / d + 1)^3, averaged over random subsets (Bińkowski et al., 2018). It is
unbiased, so it can be slightly negative when the two sets come from one distribution, and
it is trustworthy on a few hundred samples, where FID is strongly biased upwards.
"""
from __future__ import annotations

import numpy as np


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and covariance (d, d) of (n, d) features, in float64; needs n >= 2."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need an (n >= 2, d) array of features, got shape {features.shape}")
    return features.mean(0), np.cov(features, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (negative round-off eigenvalues -> 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu_a: np.ndarray, sigma_a: np.ndarray, mu_b: np.ndarray, sigma_b: np.ndarray) -> float:
    """Fréchet distance between N(mu_a, sigma_a) and N(mu_b, sigma_b); >= 0 up to round-off."""
    root_a, root_b = _psd_sqrt(np.asarray(sigma_a, np.float64)), _psd_sqrt(np.asarray(sigma_b, np.float64))
    trace_root = np.linalg.svd(root_a @ root_b, compute_uv=False).sum()
    diff = np.asarray(mu_a, np.float64) - np.asarray(mu_b, np.float64)
    distance = diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2 * trace_root
    return float(max(distance, 0.0))


def frechet_distance_of(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two (n, d) feature sets."""
    return frechet_distance(*statistics(features_a), *statistics(features_b))


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased squared MMD of two samples (m, d) and (n, d) with the cubic polynomial kernel."""
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"unbiased MMD needs at least 2 samples per set, got {m} and {n}")
    k_xx, k_yy, k_xy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2 * k_xy.mean())


def kernel_inception_distance(features_a: np.ndarray, features_b: np.ndarray, *, subsets: int = 100,
                              subset_size: int = 1000, rng: np.random.Generator | None = None
                              ) -> tuple[float, float]:
    """KID: mean and standard deviation of `mmd2_unbiased` over random subsets of both sets.

    Subsets have `min(subset_size, len(a), len(b))` members drawn without replacement; when
    that covers both sets entirely, one subset is enough (every draw would be the same).
    """
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    rng = rng if rng is not None else np.random.default_rng(0)
    size = min(subset_size, len(a), len(b))
    if size == len(a) == len(b):
        subsets = 1
    values = [mmd2_unbiased(a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)])
              for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))
