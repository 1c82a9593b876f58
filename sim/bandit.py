"""Softmax-bandit problems: success probabilities and starting policies.

A problem has S contexts (the analogue of prompts / token positions) with K arms each; arm
a of context s succeeds with probability p[s, a] (binary, verifiable reward). Success is
*stochastic*: even the best arm fails sometimes, so a confident arm also collects negative
advantages and α < 0 has something to push on (with deterministic rewards a solved context
gives zero GRPO advantages and no control at all).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from pic.validation import need

__all__ = ["Bandit", "draw_groups", "entropy_of_logits", "logits_with_entropy", "standard_problem"]


@dataclass(frozen=True)
class Bandit:
    """``success[s, a]`` ∈ [0, 1]: success probability of arm a in context s; shape (S, K)."""

    success: np.ndarray

    def __post_init__(self):
        p = np.asarray(self.success, dtype=float)
        need(p.ndim == 2 and p.shape[1] >= 2, "success", "of shape (contexts, arms >= 2)", p.shape)
        need(bool(np.all((p >= 0) & (p <= 1))), "success probabilities", "in [0, 1]", p)
        object.__setattr__(self, "success", p)

    @property
    def contexts(self) -> int:
        return self.success.shape[0]

    @property
    def arms(self) -> int:
        return self.success.shape[1]

    @classmethod
    def random(
        cls,
        contexts: int,
        arms: int,
        rng: np.random.Generator,
        best: tuple[float, float] = (0.6, 0.8),
        others: tuple[float, float] = (0.05, 0.5),
    ) -> Bandit:
        """One good arm per context with success in ``best``, the rest in ``others``."""
        p = rng.uniform(*others, size=(contexts, arms))
        good = rng.integers(arms, size=contexts)
        p[np.arange(contexts), good] = rng.uniform(*best, size=contexts)
        return cls(p)


def draw_groups(pi: np.ndarray, success: np.ndarray, rngs, group_size: int) -> tuple[np.ndarray, np.ndarray]:
    """A group of G arms per context and their binary rewards: (arms, rewards), each (B, S, G).

    ``pi`` (B, S, K) probabilities, ``success`` (S, K); loop b draws from ``rngs[b]``: G uniforms per
    context, arm = first whose cumulative probability exceeds u (inverse CDF), then G more uniforms,
    reward = 1 when below the arm's success probability.
    """
    b, s, k = pi.shape
    cdf = np.cumsum(pi, axis=-1)
    u = np.stack([r.random((s, group_size)) for r in rngs]) * cdf[..., -1:]
    arms = np.minimum((u[..., None] > cdf[:, :, None, :]).sum(-1), k - 1)
    p_arm = np.take_along_axis(np.broadcast_to(success, (b, s, k)), arms, axis=-1)
    rewards = (np.stack([r.random((s, group_size)) for r in rngs]) < p_arm) * 1.0
    return arms, rewards


def entropy_of_logits(z: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of softmax(z) over the last axis."""
    z = z - z.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return -(np.exp(logp) * logp).sum(axis=-1)


def logits_with_entropy(bandit: Bandit, entropy: float, rng: np.random.Generator) -> np.ndarray:
    """Random logits of shape (S, K) whose mean per-context entropy is ``entropy`` nats.

    Draws a direction z₀ ~ N(0, 1) per context and scales it by a common β found by root
    finding (entropy falls monotonically in β). The best arm is not favoured: learning has to
    find it.
    """
    hmax = np.log(bandit.arms)
    need(0 < entropy < hmax, "entropy", f"in (0, log K = {hmax:.4g}) nats", entropy)
    z0 = rng.standard_normal((bandit.contexts, bandit.arms))
    # a clear winner per context keeps low entropies reachable by scaling
    z0[np.arange(bandit.contexts), z0.argmax(axis=1)] += 1.0

    def gap(log_beta: float) -> float:
        return float(entropy_of_logits(np.exp(log_beta) * z0).mean()) - entropy

    log_beta = brentq(gap, -20.0, 20.0, xtol=1e-14)
    z = np.exp(log_beta) * z0
    return z - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)) - z.max(1, keepdims=True)


def standard_problem(
    seed: int = 1, *, contexts: int = 1, arms: int = 100, start_entropy: float = 2.5
) -> tuple[Bandit, np.ndarray]:
    """The bandit used by the CLI, the benchmark and the figures, and a starting policy.

    One best arm per context succeeds with probability 0.7, the others with 0.05–0.6, so
    even the best arm fails 30 % of the time and confident arms collect both signs of
    advantage. The start is a high-entropy random policy (``start_entropy`` nats).
    """
    rng = np.random.default_rng(seed)
    bandit = Bandit.random(contexts, arms, rng, best=(0.7, 0.7), others=(0.05, 0.6))
    return bandit, logits_with_entropy(bandit, start_entropy, rng)
