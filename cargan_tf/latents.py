"""Seeds to latent vectors: the one function every part of the package uses for it.

The CLI, notebooks, sample grids, the Lambda handler, the server and exported models all call
seed_to_latent, so a seed names the same car everywhere.
"""

from __future__ import annotations

import numpy as np


def seed_to_latent(seed: int, n: int, latent_dim: int) -> np.ndarray:
    """z: float32 (n, latent_dim), standard normal, a pure function of (seed, n, latent_dim).

    Row i depends only on (seed, i), so the first image of a seed is the same whatever n is.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rows = [np.random.default_rng([int(seed), i]).standard_normal(latent_dim, dtype=np.float32)
            for i in range(n)]
    return np.stack(rows) if rows else np.zeros((0, latent_dim), np.float32)


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation between latent rows a and b (latent_dim,) at fractions t (T,).

    Gaussian latents live near a sphere; slerp stays on it where a straight line cuts inside.
    """
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = np.dot(a64, b64) / (np.linalg.norm(a64) * np.linalg.norm(b64))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    t = np.asarray(t, np.float64)[:, None]
    if omega < 1e-6:  # (anti)parallel: the line is as good as the arc
        return ((1 - t) * a64 + t * b64).astype(np.float32)
    out = (np.sin((1 - t) * omega) * a64 + np.sin(t * omega) * b64) / np.sin(omega)
    return out.astype(np.float32)


def interpolation_latents(seed_a: int, seed_b: int, steps: int, latent_dim: int) -> np.ndarray:
    """z: float32 (steps, latent_dim) walking from seed_a's first latent to seed_b's (slerp)."""
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    a = seed_to_latent(seed_a, 1, latent_dim)[0]
    b = seed_to_latent(seed_b, 1, latent_dim)[0]
    return slerp(a, b, np.linspace(0.0, 1.0, steps))


def step_noise(seed: int, step: int, n: int, latent_dim: int) -> np.ndarray:
    """Training noise for global step `step`: float32 (n, latent_dim), reproducible on resume."""
    return np.random.default_rng([int(seed), 7, int(step)]).standard_normal(
        (n, latent_dim), dtype=np.float32)


def step_classes(seed: int, step: int, n: int, n_classes: int) -> np.ndarray:
    """Classes of a conditional run's fakes in global step `step`: int64 (n,), uniform over
    0..n_classes-1, reproducible on resume."""
    return np.random.default_rng([int(seed), 17, int(step)]).integers(0, n_classes, n)


def step_labels(seed: int, step: int, stream: int, n: int, low: float, high: float) -> np.ndarray:
    """Noisy labels for global step `step`: float32 (n, 1) uniform in [low, high].

    `stream` tells the label sets of one step apart (0: real batch, 1: fake batch).
    """
    rng = np.random.default_rng([int(seed), 11, int(step), int(stream)])
    return rng.uniform(low, high, size=(n, 1)).astype(np.float32)


# ---- design controls: classes and directions (numpy only: the LiteRT server uses them) -------

def one_hot(classes: np.ndarray, n_classes: int) -> np.ndarray:
    """float32 (N, n_classes): row i is 1 at classes[i] (ints in 0..n_classes-1), else 0."""
    classes = np.asarray(classes, np.int64).reshape(-1)
    if len(classes) and (classes.min() < 0 or classes.max() >= n_classes):
        raise ValueError(f"class ids must be in 0..{n_classes - 1}, got {classes.min()}.."
                         f"{classes.max()}")
    out = np.zeros((len(classes), n_classes), np.float32)
    out[np.arange(len(classes)), classes] = 1.0
    return out


def balanced_classes(n: int, n_classes: int) -> np.ndarray:
    """int64 (n,): 0, 1, ..., K-1, 0, 1, ...: the classes of n samples of a conditional model
    when none is asked for (every class as often as the next, whatever the seed)."""
    return np.arange(n, dtype=np.int64) % max(1, n_classes)


def steer(z: np.ndarray, directions: np.ndarray, amounts: dict[int, float]) -> np.ndarray:
    """z moved along latent directions: z + sum_k amounts[k] * directions[k].

    z: float32 (N, latent_dim); directions: (D, latent_dim), unit rows (SeFa's, directions.py);
    amounts: {direction index: distance}, in units of z (whose rows have norm ~ sqrt(latent_dim)).
    """
    z = np.array(z, np.float32, copy=True)
    for k, amount in amounts.items():
        if not 0 <= k < len(directions):
            raise ValueError(f"direction {k} does not exist: there are {len(directions)} (0.."
                             f"{len(directions) - 1})")
        z += np.float32(amount) * np.asarray(directions[k], np.float32)
    return z
