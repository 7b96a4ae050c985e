"""The metric maths against closed forms, hand computations and direct double loops."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cargan_tf import metrics


def _random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def _sqrtm_denman_beavers(a: np.ndarray, steps: int = 60) -> np.ndarray:
    """An independent square root of a (not necessarily symmetric) matrix with positive
    eigenvalues: the Denman-Beavers iteration, Y -> sqrt(A), Z -> sqrt(A)^-1."""
    y, z = a.copy(), np.eye(len(a))
    for _ in range(steps):
        y, z = (y + np.linalg.inv(z)) / 2, (z + np.linalg.inv(y)) / 2
    return y


# ---- Fréchet distance ---------------------------------------------------------------------------

def test_frechet_diagonal_covariances_match_closed_form():
    # For diagonal covariances: d^2 = |mu_a - mu_b|^2 + sum_i (a_i + b_i - 2 sqrt(a_i b_i)).
    mu_a, mu_b = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    var_a, var_b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = (1 + 0 + 6.25) + (1 + 9 - 2 * 3) + (4 + 1 - 2 * 2) + (0.25 + 0.25 - 2 * 0.25)
    got = metrics.frechet_distance_from_stats(mu_a, np.diag(var_a), mu_b, np.diag(var_b))
    assert got == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(12.25)


def test_frechet_commuting_covariances_in_a_rotated_basis():
    # Same eigenvectors: the distance equals the diagonal formula on the eigenvalues.
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    da, db = rng.uniform(0.1, 3.0, 5), rng.uniform(0.1, 3.0, 5)
    mu_a, mu_b = rng.normal(size=5), rng.normal(size=5)
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum(da + db - 2 * np.sqrt(da * db))
    got = metrics.frechet_distance_from_stats(mu_a, q @ np.diag(da) @ q.T, mu_b,
                                              q @ np.diag(db) @ q.T)
    assert got == pytest.approx(expected, rel=1e-9)


def test_frechet_general_covariances_match_an_independent_square_root():
    rng = np.random.default_rng(1)
    sa, sb = _random_spd(rng, 6), _random_spd(rng, 6)
    mu_a, mu_b = rng.normal(size=6), rng.normal(size=6)
    # the textbook form with a general matrix square root of the non-symmetric product
    expected = (np.sum((mu_a - mu_b) ** 2) + np.trace(sa) + np.trace(sb)
                - 2 * np.trace(_sqrtm_denman_beavers(sa @ sb)))
    assert metrics.frechet_distance_from_stats(mu_a, sa, mu_b, sb) == pytest.approx(expected,
                                                                                    rel=1e-8)


def test_sqrtm_psd_squares_back_even_when_singular():
    rng = np.random.default_rng(2)
    a = _random_spd(rng, 4)
    root = metrics.sqrtm_psd(a)
    np.testing.assert_allclose(root @ root, a, atol=1e-10)
    v = rng.normal(size=(4, 2))
    singular = v @ v.T  # rank 2
    root = metrics.sqrtm_psd(singular)
    np.testing.assert_allclose(root @ root, singular, atol=1e-10)
    assert np.isfinite(root).all()


def test_fid_of_identical_sets_is_zero_and_of_shifted_sets_is_the_shift():
    x = np.random.default_rng(3).normal(size=(500, 8))
    assert metrics.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    # a pure translation leaves the covariance alone: FID = |shift|^2
    shift = np.array([1.0, -2.0, 0, 0, 0, 0, 0, 0.5])
    assert metrics.frechet_distance(x, x + shift) == pytest.approx(5.25, rel=1e-9)


def test_fid_of_samples_approaches_the_closed_form():
    rng = np.random.default_rng(4)
    a = rng.normal(0.0, 1.0, size=(20000, 3))
    b = rng.normal(1.0, 2.0, size=(20000, 3))
    expected = 3 * 1.0 + 3 * (1 + 4 - 2 * 2)  # means 1 apart per dim; sds 1 and 2
    assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=0.05)


# ---- KID ------------------------------------------------------------------------------------

def _mmd2_double_loop(x: np.ndarray, y: np.ndarray) -> float:
    d = len(x[0])
    k = lambda u, v: (sum(ui * vi for ui, vi in zip(u, v)) / d + 1.0) ** 3
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_matches_a_direct_double_loop():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(7, 3)), rng.normal(0.5, 1.5, size=(7, 3))
    expected = _mmd2_double_loop(x.tolist(), y.tolist())
    assert metrics.mmd2_unbiased(x, y) == pytest.approx(expected, rel=1e-10)
    # one subset of the whole set is a permutation of it: the same number, std 0
    mean, std = metrics.kid(x, y, subsets=1, subset_size=7)
    assert mean == pytest.approx(expected, rel=1e-10)
    assert std == 0.0
    assert metrics.mmd2_unbiased(x[:5], y) == pytest.approx(_mmd2_double_loop(x[:5], y), rel=1e-10)


def test_kid_is_about_zero_for_one_distribution_and_large_for_two():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    same, same_std = metrics.kid(a, b, subsets=20, subset_size=200)
    assert abs(same) < 3 * same_std + 1e-3
    different, _ = metrics.kid(a, b + 1.0, subsets=20, subset_size=200)
    assert different > 50 * abs(same) and different > 0.5
    # identical sets: subsets drawn from one set share points, so not exactly 0, but tiny
    # next to a real difference
    assert abs(metrics.kid(a, a, subsets=20, subset_size=200)[0]) < 0.05 * different


def test_kid_is_seeded():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(60, 4))
    assert metrics.kid(a, b, 5, 20) == metrics.kid(a, b, 5, 20)


# ---- precision / recall ------------------------------------------------------------------------

def test_precision_recall_by_hand():
    real = np.array([[0.0], [1.0], [2.0], [3.0]])  # k=1 balls: radius 1 around each
    fake = np.array([[0.5], [10.0]])  # 0.5 is inside, 10 is not: precision 1/2
    # fake balls (k=1): radius 9.5 around 0.5 and 10 -> every real point is covered
    assert metrics.precision_recall(real, fake, k=1) == (0.5, 1.0)
    # k must leave a k-th neighbour in both sets: the fake set has only 2 points
    with pytest.raises(ValueError):
        metrics.precision_recall(real, fake, k=2)


def test_precision_recall_identical_sets_and_collapse():
    x = np.random.default_rng(8).normal(size=(300, 5))
    assert metrics.precision_recall(x, x, k=3) == (1.0, 1.0)
    collapsed = np.repeat(x[:1], 300, axis=0)  # a real point, repeated
    precision, recall = metrics.precision_recall(x, collapsed, k=3)
    assert precision == 1.0  # realistic...
    assert recall < 0.05     # ...but covers nothing


def test_knn_radii_chunking_matches_brute_force():
    x = np.random.default_rng(9).normal(size=(1500, 3))  # more rows than one chunk
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    expected = np.sort(d, axis=1)[:, 3] ** 2
    np.testing.assert_allclose(metrics.knn_radii(x, 3), expected, rtol=1e-9, atol=1e-12)


# ---- diversity and coverage ---------------------------------------------------------------------

def test_mean_pairwise_distance_by_hand():
    assert metrics.mean_pairwise_distance(np.array([[0.0], [1.0], [3.0]])) == pytest.approx(2.0)
    points = np.array([[0.0, 0.0], [3.0, 4.0]])
    assert metrics.mean_pairwise_distance(points) == pytest.approx(5.0)


def test_diversity_ratio_flags_collapse():
    x = np.random.default_rng(10).normal(size=(200, 6))
    assert metrics.diversity_ratio(x, x) == pytest.approx(1.0)
    assert metrics.diversity_ratio(np.repeat(x[:1], 200, axis=0), x) == 0.0
    assert metrics.diversity_ratio(2 * x, x) == pytest.approx(2.0)


def test_mode_coverage_by_hand():
    real = np.array([0, 0, 1, 1])
    fake = np.array([0, 0, 0, 0])
    out = metrics.mode_coverage(fake, real, n_classes=2, smoothing=0.5)
    # p_data = (.5, .5); p_samples = (4.5, 0.5) / 5 = (.9, .1)
    expected = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    assert out["classes_hit"] == 1 and out["n_classes"] == 2
    assert out["kl"] == pytest.approx(expected)
    assert out["hist_samples"] == [1.0, 0.0]
    matched = metrics.mode_coverage(np.array([0, 1] * 50), np.array([1, 0] * 20), 2)
    assert matched["classes_hit"] == 2 and matched["kl"] == pytest.approx(0.0, abs=1e-12)
    # a class the data never shows does not count against the samples
    assert metrics.mode_coverage(np.array([0, 1, 2]), np.array([0, 1]), 3)["classes_hit"] == 3
