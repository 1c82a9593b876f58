"""Plant identification: the linearised entropy loop of a bandit plant.

Around a state z the plant is H_{t+1} − H_t ≈ b − k·α (per rollout). Because the exact
mode is deterministic, k and b come from three one-rollout runs from the *same* state::

    b = ΔH(α = 0),      k = −(ΔH(+δ) − ΔH(−δ)) / (2δ)

(central difference; the curvature in α is O(δ²)). A sampled-mode plant is identified
through its exact twin, whose update is its expectation.

Along a trajectory this gives k(H) and b(H) as functions of the operating point, and with
them the *reachable band*: a target H* can be held only where the drift fits inside the
actuator's authority, |b(H*)| ≤ k(H*)·α_max. Elsewhere α saturates and the integral winds up.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .bandit import Bandit
from .plant import BanditPlant, PlantConfig

__all__ = ["PlantMap", "lemma_b_gain", "local_linearisation", "map_along_trajectory"]


def local_linearisation(
    bandit: Bandit, logits: np.ndarray, config: PlantConfig, *, delta: float = 0.02, alpha0: float | np.ndarray = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """(k, b) of the plant at each state in ``logits`` (shape (S, K) or (B, S, K)).

    The tangent of ΔH(α) at ``alpha0``: ΔH ≈ b − k·α with k = −dΔH/dα (central difference)
    and b = ΔH(α0) + k·α0, so at ``alpha0 = 0`` b is the open-loop drift ΔH(0).
    """
    z = np.asarray(logits, dtype=float)
    if z.ndim == 2:
        z = z[None]
    exact = dataclasses.replace(config, mode="exact")
    n = z.shape[0]
    plant = BanditPlant(bandit, np.concatenate([z, z, z]), config=exact)
    h0 = plant.entropy()[:n]
    a0 = np.broadcast_to(np.asarray(alpha0, dtype=float), (n,))
    plant.step(np.concatenate([a0, a0 + delta, a0 - delta]))
    h = plant.entropy()
    k = -(h[n : 2 * n] - h[2 * n :]) / (2 * delta)
    b = h[:n] - h0 + k * a0
    return k, b


@dataclass(frozen=True)
class PlantMap:
    """k and b along a trajectory, sorted by entropy; arrays of equal length."""

    entropy: np.ndarray
    k: np.ndarray
    b: np.ndarray
    alpha_max: float = 1.0

    def at(self, entropy: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(k, b) interpolated at the given operating point(s)."""
        return np.interp(entropy, self.entropy, self.k), np.interp(entropy, self.entropy, self.b)

    def authority_margin(self) -> np.ndarray:
        """k·α_max − |b|: > 0 where a target can be held."""
        return self.k * self.alpha_max - np.abs(self.b)

    def reachable(self, target: float | np.ndarray) -> np.ndarray:
        k, b = self.at(target)
        inside = (np.asarray(target) >= self.entropy[0]) & (np.asarray(target) <= self.entropy[-1])
        return inside & (k * self.alpha_max >= np.abs(b)) & (k > 0)

    def band(self) -> tuple[float, float] | None:
        """The widest contiguous entropy interval where the target is reachable (None if none)."""
        ok = self.authority_margin() > 0
        if not ok.any():
            return None
        best, start, cur = (0, 0), None, None
        for i, flag in enumerate(ok):
            if flag and start is None:
                start = i
            if (not flag or i == len(ok) - 1) and start is not None:
                cur = (start, i if flag else i - 1)
                if cur[1] - cur[0] >= best[1] - best[0]:
                    best = cur
                start = None
        return float(self.entropy[best[0]]), float(self.entropy[best[1]])

    def equilibrium_alpha(self, target: float) -> float:
        """α* = b/k that holds ``target`` (|α*| ≤ α_max inside the band)."""
        k, b = self.at(target)
        return float(b / k)


def map_along_trajectory(
    bandit: Bandit,
    logits: np.ndarray,
    config: PlantConfig,
    *,
    steps: int,
    alpha: float = 0.0,
    every: int = 1,
    delta: float = 0.02,
    alpha_max: float = 1.0,
) -> PlantMap:
    """Run the exact plant from ``logits`` with constant α and identify (k, b) every ``every`` steps."""
    exact = dataclasses.replace(config, mode="exact")
    plant = BanditPlant(bandit, logits, config=exact)
    states, hs = [], []
    for t in range(steps):
        if t % every == 0:
            states.append(plant.logits()[0])
            hs.append(plant.entropy()[0])
        plant.step(alpha)
    k, b = local_linearisation(bandit, np.stack(states), config, delta=delta)
    order = np.argsort(hs)
    return PlantMap(np.asarray(hs)[order], k[order], b[order], alpha_max)


def lemma_b_gain(bandit: Bandit, logits: np.ndarray, config: PlantConfig) -> np.ndarray:
    """The plant gain predicted by Lemma B, without running the plant; shape (B,).

    The actuator adds α·sign(A)·1[π_a > τ] to the weight of every sample; by Lemma B a
    sample of arm a then changes H by −η·α·|A|·B(a) to first order. Averaged over the
    rollout (expected |A| of arm a: p_a·P₁(μ) for a success, (1 − p_a)·|N₀(μ)| for a failure)
    and over contexts::

        k = η · mean_s Σ_{a: π_a > τ} π_a (p_a P₁ + (1 − p_a)|N₀|) · B(a)

    (per policy update; times M = epochs × minibatches updates per rollout, which is exact
    only to first order off-policy). ``logits``: (S, K) or (B, S, K) log-probabilities.
    """
    from .plant import BernsteinMoments, advantage_table

    z = np.asarray(logits, dtype=float)
    if z.ndim == 2:
        z = z[None]
    z = z - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)) - z.max(-1, keepdims=True)
    pi = np.exp(z)
    p = bandit.success
    table = advantage_table(config.group_size, eps=config.adv_eps, scale_by_std=config.scale_by_std)
    p1, n0 = BernsteinMoments(table)((pi * p).sum(-1, keepdims=True))
    abs_adv = p * p1 + (1.0 - p) * np.abs(n0)
    c = z - (pi * z).sum(-1, keepdims=True)  # log π + H
    b_coef = pi * c - (pi * pi * c).sum(-1, keepdims=True)  # Lemma B's B(a)
    confident = pi > config.tau
    per_context = (confident * pi * abs_adv * b_coef).sum(-1)
    return config.lr * config.updates_per_rollout * per_context.mean(-1)
