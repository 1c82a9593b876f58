"""Numeric softmax helpers for the numeric twins (numpy, float64, last axis = arms).

π_b = exp(z_b) / Σ_a exp(z_a),   log π_b = z_b − logsumexp(z),   H = −Σ_b π_b log π_b (nats).
"""

from __future__ import annotations

import numpy as np

__all__ = ["entropy", "log_softmax", "random_distributions", "softmax"]


def log_softmax(z: np.ndarray) -> np.ndarray:
    """log π over the last axis, computed stably."""
    z = np.asarray(z, dtype=float)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def softmax(z: np.ndarray) -> np.ndarray:
    """π = softmax(z) over the last axis."""
    return np.exp(log_softmax(z))


def entropy(z: np.ndarray) -> np.ndarray:
    """H(softmax(z)) in nats over the last axis."""
    logp = log_softmax(z)
    return -(np.exp(logp) * logp).sum(axis=-1)


def random_distributions(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """``n`` strictly positive distributions over ``k`` arms, shape (n, k).

    Mixes Dirichlet draws of several concentrations (flat to very peaked) so that both
    near-uniform and confident policies are covered.
    """
    conc = rng.choice([0.05, 0.2, 1.0, 5.0], size=n)
    p = rng.gamma(conc[:, None], size=(n, k))
    p = np.maximum(p, 1e-300) + 1e-12  # keep log π finite
    return p / p.sum(axis=1, keepdims=True)
