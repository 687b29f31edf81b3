"""Fréchet distance and KID against independent NumPy/SciPy computations and known cases."""
import itertools

import numpy as np
import pytest
import scipy.linalg

from tfunmask.evaluation import frechet


def _scipy_frechet(a, b, eps=1e-6):
    """The usual reference (pytorch-fid): scipy.linalg.sqrtm of the product, offset if singular."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s_a @ s_b)
    if not np.isfinite(root).all():
        offset = np.eye(len(s_a)) * eps
        root = scipy.linalg.sqrtm((s_a + offset) @ (s_b + offset))
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(root.real))


def _nuclear_frechet(a, b):
    """Exact for any rank: with S_a = A'A and S_b = B'B, Tr (S_a S_b)^(1/2) = nuclear norm of A B'."""
    centred_a = (a - a.mean(0)) / np.sqrt(len(a) - 1)
    centred_b = (b - b.mean(0)) / np.sqrt(len(b) - 1)
    trace_root = np.linalg.svd(centred_a @ centred_b.T, compute_uv=False).sum()
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + (centred_a ** 2).sum() + (centred_b ** 2).sum()
                 - 2 * trace_root)


def test_frechet_matches_scipy_on_random_activations():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 24))
    b = rng.normal(0.3, 1.2, size=(300, 24)) @ rng.normal(size=(24, 24)) / 5
    expected = _scipy_frechet(a, b)
    assert frechet.frechet_distance_of(a, b) == pytest.approx(expected, rel=1e-8)
    assert frechet.frechet_distance_of(a, b) == pytest.approx(_nuclear_frechet(a, b), rel=1e-8)


@pytest.mark.parametrize("n_a, n_b, dims", [(20, 30, 64), (64, 64, 64), (10, 200, 32)])
def test_frechet_is_exact_with_singular_covariances(n_a, n_b, dims):
    """Fewer samples than dimensions (rank-deficient covariances), as with small test sets."""
    rng = np.random.default_rng(n_a)
    a = rng.normal(size=(n_a, dims)) * np.linspace(0.1, 2, dims)
    b = rng.normal(0.1, 1.0, size=(n_b, dims))
    assert frechet.frechet_distance_of(a, b) == pytest.approx(_nuclear_frechet(a, b), rel=1e-7)
    assert frechet.frechet_distance_of(a, b) == pytest.approx(_scipy_frechet(a, b), rel=1e-3)


def test_frechet_with_near_singular_covariances():
    """Features on a low-dimensional subspace plus tiny noise: eigenvalues down to ~1e-16."""
    rng = np.random.default_rng(1)
    basis = rng.normal(size=(3, 40))
    a = rng.normal(size=(500, 3)) @ basis + 1e-8 * rng.normal(size=(500, 40))
    b = rng.normal(0.5, 1.0, size=(500, 3)) @ basis + 1e-8 * rng.normal(size=(500, 40))
    distance = frechet.frechet_distance_of(a, b)
    assert np.isfinite(distance)
    assert distance == pytest.approx(_nuclear_frechet(a, b), rel=1e-7)


@pytest.mark.parametrize("n, dims", [(300, 16), (12, 128)])
def test_frechet_of_a_set_with_itself_is_zero(n, dims):
    rng = np.random.default_rng(2)
    features = rng.normal(size=(n, dims)) * 10
    scale = np.trace(np.cov(features, rowvar=False))
    assert frechet.frechet_distance_of(features, features) == pytest.approx(0.0, abs=1e-9 * scale)


def test_frechet_of_known_gaussians():
    """Diagonal covariances: d = |mu_a - mu_b|^2 + sum (sqrt(s_a) - sqrt(s_b))^2."""
    s_a, s_b = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 4.0, 1.0])
    expected = 3.0 + (1 - 2) ** 2 + 0 + (3 - 1) ** 2
    assert frechet.frechet_distance(np.zeros(3), s_a, np.ones(3), s_b) == pytest.approx(expected)


def _biased_mmd2(x, y):
    k = frechet._polynomial_kernel
    return k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()


def test_mmd2_matches_the_definition():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(4, 3))

    def k(u, v):
        return (u @ v / 3 + 1) ** 3

    within_x = np.mean([k(x[i], x[j]) for i, j in itertools.permutations(range(5), 2)])
    within_y = np.mean([k(y[i], y[j]) for i, j in itertools.permutations(range(4), 2)])
    across = np.mean([k(u, v) for u in x for v in y])
    assert frechet.mmd2_unbiased(x, y) == pytest.approx(within_x + within_y - 2 * across)


def test_kid_of_point_masses_is_the_kernel_distance():
    a, b = np.full((6, 2), 1.0), np.full((8, 2), -0.5)
    k_aa, k_bb, k_ab = (1 + 1) ** 3, (0.25 + 1) ** 3, (-0.5 + 1) ** 3
    mean, std = frechet.kernel_inception_distance(a, b, subsets=5, subset_size=4)
    assert mean == pytest.approx(k_aa + k_bb - 2 * k_ab)
    assert std == pytest.approx(0.0)


def test_kid_is_unbiased_on_discrete_distributions():
    """Averaged over many small samples, the estimate meets the population MMD^2 (enumerated
    exactly), where the biased V-statistic stays clearly above it; same for equal distributions."""
    support_p = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    support_q = np.array([[1.0, 0.0], [0.5, -1.0]])
    k = frechet._polynomial_kernel
    population = k(support_p, support_p).mean() + k(support_q, support_q).mean() - 2 * k(support_p, support_q).mean()
    rng = np.random.default_rng(4)
    for q_support, truth in ((support_q, population), (support_p, 0.0)):
        draws = [(support_p[rng.integers(3, size=4)], q_support[rng.integers(len(q_support), size=4)])
                 for _ in range(4000)]
        unbiased = np.array([frechet.mmd2_unbiased(x, y) for x, y in draws])
        biased = np.array([_biased_mmd2(x, y) for x, y in draws])
        error = 4 * unbiased.std() / np.sqrt(len(draws))
        assert abs(unbiased.mean() - truth) < error
        assert biased.mean() - truth > 3 * error


def test_statistics_rejects_too_few_samples():
    with pytest.raises(ValueError, match="n >= 2"):
        frechet.statistics(np.zeros((1, 4)))
