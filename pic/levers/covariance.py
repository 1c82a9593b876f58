"""Clip-Cov and KL-Cov (Cui et al., arXiv 2505.22617): act on the tokens that drive entropy down.

The covariance law says one PG step lowers the entropy by about Cov(log π, π·A). Its
per-token summand, over the valid tokens of a micro-batch,

    cov_t = (A_t − mean A)·(log π_t − mean log π)           (log π current, detached)

is large for confident tokens with above-average advantage. Removing a few of those from
the gradient (Clip-Cov) or tying them to the behaviour policy with β·|log π − log π_old|
(KL-Cov) removes the entropy-lowering part of the step.

- `ClipCov`: among tokens with lb < cov < ub that the PPO clip has not already clipped, pick
  n = max(⌊ratio·N_valid⌋, 1) uniformly at random and drop their PG term (value and
  gradient). Works on-policy. Authors' defaults: ratio 2e-4, lb 1, ub 5, ε_low = ε_high = 1,
  no dual clip.
- `KLCov`: loss −A·r with no clip, plus β·|log r| on the k = max(⌊fraction·N_valid⌋, 1) tokens
  of largest cov. Inert on-policy (|log r| ≡ 0, zero gradient at 0). ``fraction`` is a
  fraction (PRIME-RL's ``k_percent`` 0.2 means 0.002); defaults fraction 0.002, β 1 (PRIME-RL
  7B scripts and the verl recipe; verl's built-in defaults are 2e-4 and 0.1).

Both compute cov and their selection per micro-batch, as the authors do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._array import detach, like, namespace
from ..validation import is_finite_number, need
from .base import Lever, LossModifiers, TokenBatch
from .loss import clip_mask
from .registry import register_lever

__all__ = ["ClipCov", "KLCov", "token_covariance", "top_n_mask"]


def token_covariance(tok: TokenBatch):
    """cov_t per token, shape (L, N); 0 on masked tokens. Means over each loop's valid tokens."""
    logp = detach(tok.logp)
    n = tok.mask.sum(axis=-1, keepdims=True)
    n = n + (n == 0)
    mean_a = (tok.adv * tok.mask).sum(axis=-1, keepdims=True) / n
    mean_lp = (logp * tok.mask).sum(axis=-1, keepdims=True) / n
    return (tok.adv - mean_a) * (logp - mean_lp) * tok.mask


def top_n_mask(scores, eligible, n):
    """1.0 on the ``n`` (per loop, (L, 1)) highest-scoring eligible entries of each row, else 0.0."""
    xp = namespace(scores)
    low = scores.min() - 1.0
    keyed = xp.where(eligible > 0, scores, low + 0.0 * scores)
    order = xp.argsort(-keyed, -1)
    rank = xp.argsort(order, -1)
    return ((rank < n) * (eligible > 0)) * 1.0


def _valid_count(mask, fraction: float):
    """max(⌊fraction·N_valid⌋, 1) per loop, shape (L, 1)."""
    xp = namespace(mask)
    n_valid = mask.sum(axis=-1, keepdims=True)
    return xp.maximum(xp.floor(n_valid * fraction), 1.0 + 0.0 * n_valid)


@register_lever("clip_cov")
class ClipCov(Lever):
    """Clip-Cov: detach a random few high-covariance tokens from the PG loss."""

    name = "clip_cov"

    def __init__(
        self,
        ratio: float = 2e-4,
        lower: float = 1.0,
        upper: float = 5.0,
        *,
        eps_low: float = 1.0,
        eps_high: float = 1.0,
        seed: int = 0,
        loops: int = 1,
    ) -> None:
        super().__init__(loops)
        n = self.name
        need(is_finite_number(ratio) and 0 < ratio <= 1, f"{n}.ratio", "a fraction in (0, 1]", ratio)
        need(is_finite_number(lower), f"{n}.lower", "a finite number", lower)
        need(is_finite_number(upper) and lower < upper, f"{n}.upper", f"a finite number > lower={lower}", upper)
        need(is_finite_number(eps_low) and 0 <= eps_low <= 1, f"{n}.eps_low", "in [0, 1]", eps_low)
        need(is_finite_number(eps_high) and eps_high >= 0, f"{n}.eps_high", ">= 0", eps_high)
        self.ratio, self.lower, self.upper = float(ratio), float(lower), float(upper)
        self.eps_low, self.eps_high, self.seed = float(eps_low), float(eps_high), int(seed)
        # one stream per loop, so loop i's selections depend only on (seed, i)
        self.rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(self.seed).spawn(self.loops)]
        self._last_selected = 0.0

    def config(self) -> dict[str, Any]:
        return {
            "ratio": self.ratio,
            "lower": self.lower,
            "upper": self.upper,
            "eps_low": self.eps_low,
            "eps_high": self.eps_high,
            "seed": self.seed,
        }

    def modify(self, tok: TokenBatch) -> LossModifiers:
        xp = tok.xp
        cov = token_covariance(tok)
        ratio = xp.exp(detach(tok.logp) - tok.old_logp)
        clipped = clip_mask(ratio, tok.adv, self.eps_low, self.eps_high, "ppo", None)
        eligible = (cov > self.lower) * (cov < self.upper) * (1.0 - clipped) * tok.mask
        keys = like(np.stack([r.random(int(tok.logp.shape[-1])) for r in self.rngs]), detach(tok.logp))
        chosen = top_n_mask(keys, eligible, _valid_count(tok.mask, self.ratio))
        self._last_selected = float(chosen.sum()) / max(int(chosen.shape[0]), 1)
        return LossModifiers(grad_mask=1.0 - chosen, eps_low=self.eps_low, eps_high=self.eps_high, dual_clip=0.0)

    def metrics(self) -> dict[str, float]:
        return {"cov_selected": self._last_selected}

    def state_dict(self) -> dict[str, Any]:
        return {"rngs": [r.bit_generator.state for r in self.rngs]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["rngs"]) != self.loops:
            raise ValueError(f"clip_cov state has {len(state['rngs'])} loops, expected {self.loops}")
        for r, s in zip(self.rngs, state["rngs"], strict=True):
            r.bit_generator.state = s


@register_lever("kl_cov")
class KLCov(Lever):
    """KL-Cov: an unclipped surrogate plus β·|log π − log π_old| on the top-k covariance tokens."""

    name = "kl_cov"
    acts_through_ratio = True

    def __init__(self, fraction: float = 2e-3, beta: float = 1.0, *, loops: int = 1) -> None:
        super().__init__(loops)
        need(
            is_finite_number(fraction) and 0 < fraction <= 1,
            f"{self.name}.fraction",
            "a fraction in (0, 1] (not a percent)",
            fraction,
        )
        need(is_finite_number(beta) and beta > 0, f"{self.name}.beta", "a finite number > 0", beta)
        self.fraction, self.beta = float(fraction), float(beta)
        self._last_selected = 0.0

    def config(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "beta": self.beta}

    def modify(self, tok: TokenBatch) -> LossModifiers:
        cov = token_covariance(tok)
        chosen = top_n_mask(cov, tok.mask, _valid_count(tok.mask, self.fraction))
        self._last_selected = float(chosen.sum()) / max(int(chosen.shape[0]), 1)
        return LossModifiers(clip="none", dual_clip=0.0, abs_log_ratio_coef=self.beta * chosen)

    def metrics(self) -> dict[str, float]:
        return {"cov_selected": self._last_selected}
