"""Sample-quality maths on feature vectors: FID, KID, precision/recall, diversity, mode coverage,
memorisation.

Pure numpy (no TensorFlow, no scipy). Every function takes features as float arrays (N, D) from
one extractor (cargan_tf.features); numbers from different extractors are not comparable.
"""

from __future__ import annotations

import numpy as np

# Rows of the pairwise-distance matrices computed at a time: bounds memory at N x 1024 floats.
_CHUNK = 1024


def _as_features(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"{name}: expected features of shape (N, D) with N >= 1, got {x.shape}")
    return x


# ---- Fréchet distance ------------------------------------------------------------------------

def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of features (N, D), float64 (unbiased covariance, N-1)."""
    x = _as_features(features, "features")
    if len(x) < 2:
        raise ValueError("a covariance needs at least 2 feature vectors")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix.

    Via the eigendecomposition, with the round-off negatives among the eigenvalues clipped to 0:
    stable for the singular covariances that small sample sets and ReLU features give.
    """
    sym = (np.asarray(matrix, np.float64) + np.asarray(matrix, np.float64).T) / 2
    values, vectors = np.linalg.eigh(sym)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance_from_stats(mu_a: np.ndarray, sigma_a: np.ndarray,
                                mu_b: np.ndarray, sigma_b: np.ndarray) -> float:
    """Fréchet distance between N(mu_a, sigma_a) and N(mu_b, sigma_b).

    d^2 = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2)). The last trace equals
    tr((sqrt(S_a) S_b sqrt(S_a))^(1/2)), the trace of the square root of a *symmetric* PSD
    matrix: the sum of the square roots of its eigenvalues. That avoids the complex round-off
    of a general matrix square root of the non-symmetric product S_a S_b.
    """
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    sigma_a, sigma_b = np.asarray(sigma_a, np.float64), np.asarray(sigma_b, np.float64)
    root_a = sqrtm_psd(sigma_a)
    middle = root_a @ sigma_b @ root_a
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_root = float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())
    diff = mu_a - mu_b
    value = float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * trace_root)
    return max(value, 0.0)  # round-off can leave identical sets a hair below zero


def frechet_distance(feat_a: np.ndarray, feat_b: np.ndarray) -> float:
    """FID-style Fréchet distance between Gaussian fits of two feature sets (N, D) and (M, D).

    Biased upwards at small N (the covariance estimates are noisy): compare values computed
    with the same N and the same extractor only.
    """
    return frechet_distance_from_stats(*gaussian_stats(feat_a), *gaussian_stats(feat_b))


# ---- KID -----------------------------------------------------------------------------------

def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x.y / d + 1)^3 for rows of x (N, d) and y (M, d) -> (N, M)."""
    k = x @ y.T / x.shape[1] + 1.0
    return k * k * k  # not ** 3: numpy's float power is many times slower than two products


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between samples x (m, d) and y (n, d) under the cubic polynomial kernel.

    mean over i != j of k(x_i, x_j) + mean over i != j of k(y_i, y_j) - 2 mean of k(x_i, y_j).
    """
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError("unbiased MMD needs at least 2 samples on each side")
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(xx + yy - 2.0 * k_xy.mean())


def kid(feat_a: np.ndarray, feat_b: np.ndarray, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance (Binkowski et al. 2018): (mean, std) of MMD^2 over subsets.

    Each of `subsets` rounds draws min(subset_size, N, M) rows from each set without
    replacement (seeded: same inputs, same answer) and computes the unbiased MMD^2. Unbiased,
    so it can be slightly negative, and unlike FID it does not depend on N on average.
    """
    a, b = _as_features(feat_a, "feat_a"), _as_features(feat_b, "feat_b")
    size = min(subset_size, len(a), len(b))
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(max(1, subsets)):
        ia = rng.choice(len(a), size, replace=False)
        ib = rng.choice(len(b), size, replace=False)
        values.append(mmd2_unbiased(a[ia], b[ib]))
    return float(np.mean(values)), float(np.std(values))


# ---- precision / recall -----------------------------------------------------------------------

def _pairwise_sq_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(x), len(y)), clipped at 0 against round-off."""
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    return np.maximum(d, 0.0)


def knn_radii(features: np.ndarray, k: int = 3) -> np.ndarray:
    """Squared distance of each row to its k-th nearest other row (the radius of its k-NN ball)."""
    x = _as_features(features, "features")
    if not 1 <= k < len(x):
        raise ValueError(f"k={k} needs more than k feature vectors (got {len(x)})")
    radii = np.empty(len(x))
    for start in range(0, len(x), _CHUNK):
        d = _pairwise_sq_distances(x[start:start + _CHUNK], x)
        # the k+1-th smallest: the row itself (distance 0) comes first
        radii[start:start + _CHUNK] = np.partition(d, k, axis=1)[:, k]
    return radii


def _fraction_inside(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> float:
    """Fraction of points inside at least one ball (centre, squared radius)."""
    inside = 0
    for start in range(0, len(points), _CHUNK):
        d = _pairwise_sq_distances(points[start:start + _CHUNK], centres)
        inside += int((d <= radii[None, :]).any(axis=1).sum())
    return inside / len(points)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of fake vs real features.

    Each set's manifold is the union of balls around its points reaching the k-th nearest
    neighbour. precision = fraction of fake points inside the real manifold (are samples
    realistic?); recall = fraction of real points inside the fake manifold (is the data
    covered?). Both in [0, 1]; use the same N for both sets when comparing runs.
    """
    real, fake = _as_features(real, "real"), _as_features(fake, "fake")
    precision = _fraction_inside(fake, real, knn_radii(real, k))
    recall = _fraction_inside(real, fake, knn_radii(fake, k))
    return precision, recall


# ---- diversity and mode coverage ---------------------------------------------------------------

def mean_pairwise_distance(features: np.ndarray, max_samples: int = 2000, seed: int = 0) -> float:
    """Mean Euclidean distance over all pairs i < j (of a seeded subset of max_samples rows)."""
    x = _as_features(features, "features")
    if len(x) < 2:
        raise ValueError("a pairwise distance needs at least 2 feature vectors")
    if len(x) > max_samples:
        x = x[np.random.default_rng(seed).choice(len(x), max_samples, replace=False)]
    total = 0.0
    for start in range(0, len(x), _CHUNK):
        d = np.sqrt(_pairwise_sq_distances(x[start:start + _CHUNK], x))
        d[np.arange(len(d)), np.arange(start, start + len(d))] = 0.0  # exact zeros on the diagonal
        total += float(d.sum())
    return total / (len(x) * (len(x) - 1))  # every pair counted twice, the diagonal is 0


def diversity_ratio(fake: np.ndarray, real: np.ndarray, max_samples: int = 2000) -> float:
    """Mean pairwise feature distance of samples / of real images (same extractor).

    About 1 for a generator as varied as the data; well below 1 flags mode collapse (a
    generator repeating one image scores 0). Above 1 means samples are more spread than the
    data (often noise), so read it together with precision.
    """
    real_spread = mean_pairwise_distance(real, max_samples)
    if real_spread == 0.0:
        raise ValueError("the real features are all identical: diversity ratio is undefined")
    return mean_pairwise_distance(fake, max_samples) / real_spread


def class_histogram(classes: np.ndarray, n_classes: int, smoothing: float = 0.0) -> np.ndarray:
    """Normalised histogram (n_classes,) of integer class ids, with `smoothing` added per class."""
    counts = np.bincount(np.asarray(classes, np.int64).ravel(), minlength=n_classes)[:n_classes]
    counts = counts.astype(np.float64) + smoothing
    return counts / counts.sum()


def mode_coverage(pred_classes_fake: np.ndarray, classes_real: np.ndarray, n_classes: int,
                  smoothing: float = 0.5) -> dict[str, float | int | list[float]]:
    """How well samples cover the data's classes, under a classifier's predictions.

    Returns classes_hit (classes predicted for at least one sample), n_classes, and
    kl = KL(p_data || p_samples) in nats. `smoothing` (Jeffreys: 0.5 per class) is added to the
    sample counts so a missing class gives a large but finite KL; about 0 for matching histograms.
    Also the two histograms, for plots and reports.
    """
    fake = np.asarray(pred_classes_fake, np.int64).ravel()
    p_data = class_histogram(classes_real, n_classes)
    p_fake = class_histogram(fake, n_classes, smoothing)
    present = p_data > 0
    kl = float(np.sum(p_data[present] * np.log(p_data[present] / p_fake[present])))
    hit = int(np.count_nonzero(np.bincount(fake, minlength=n_classes)[:n_classes]))
    return {
        "classes_hit": hit,
        "n_classes": int(n_classes),
        "kl": max(kl, 0.0),
        "hist_data": p_data.round(6).tolist(),
        "hist_samples": class_histogram(fake, n_classes).round(6).tolist(),
    }


# ---- memorisation ------------------------------------------------------------------------------

def nearest_neighbours(queries: np.ndarray, references: np.ndarray,
                       exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance (N,) from each query row to its nearest reference row, and that
    row's index (N,). exclude_self: queries *are* the references (same order); each row's own
    match is skipped (leave-one-out)."""
    q, r = _as_features(queries, "queries"), _as_features(references, "references")
    if exclude_self and (len(q) != len(r) or len(r) < 2):
        raise ValueError("exclude_self needs the same set twice, with at least 2 rows")
    distances, indices = np.empty(len(q)), np.empty(len(q), np.int64)
    for start in range(0, len(q), _CHUNK):
        d = _pairwise_sq_distances(q[start:start + _CHUNK], r)
        if exclude_self:
            rows = np.arange(len(d))
            d[rows, start + rows] = np.inf
        indices[start:start + _CHUNK] = d.argmin(axis=1)
        distances[start:start + _CHUNK] = np.sqrt(d[np.arange(len(d)), indices[start:start + _CHUNK]])
    return distances, indices


def memorisation(fake: np.ndarray, train: np.ndarray, held_out: np.ndarray | None = None) -> dict:
    """Are samples closer to the training set than new real images are? (a copy check)

    Features are standardised by the training set's per-dimension std. ratio = median
    distance from a sample to its nearest training image / the same median for real images
    the generator did not train on (held_out; without them, each training image's distance
    to its nearest *other* training image, which has the same distribution for an i.i.d.
    split). About 1: samples are as far from the training set as new photos (no copying);
    far below 1: samples sit on top of training images. Returns ratio, both medians, the
    reference used, and per-sample distances / nearest indices (for the closest-pairs picture).
    """
    train = _as_features(train, "train")
    scale = train.std(axis=0) + 1e-6
    f, t = _as_features(fake, "fake") / scale, train / scale
    d_fake, nearest = nearest_neighbours(f, t)
    if held_out is not None and len(held_out):
        d_ref, _ = nearest_neighbours(_as_features(held_out, "held_out") / scale, t)
        reference = "held-out"
    else:
        d_ref, _ = nearest_neighbours(t, t, exclude_self=True)
        reference = "leave-one-out"
    ref_median = float(np.median(d_ref))
    return {"ratio": float(np.median(d_fake)) / ref_median if ref_median > 0 else float("nan"),
            "median_fake": float(np.median(d_fake)), "median_reference": ref_median,
            "reference": reference, "n_reference": int(len(d_ref)),
            "distances": d_fake, "nearest": nearest}


__all__ = [
    "gaussian_stats", "sqrtm_psd", "frechet_distance_from_stats", "frechet_distance",
    "polynomial_kernel", "mmd2_unbiased", "kid", "knn_radii", "precision_recall",
    "mean_pairwise_distance", "diversity_ratio", "class_histogram", "mode_coverage",
    "nearest_neighbours", "memorisation",
]
