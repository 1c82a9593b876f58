"""BAPO: Balanced Policy Optimization with Adaptive Clipping (Xi et al., arXiv 2510.18927).

BAPO moves the PPO clip bounds of each policy update so that positive-advantage tokens keep
at least a share ρ₀ of the policy-gradient contribution. The bounds are *ratio* bounds
[c_low, c_high] (r is clipped to them), searched afresh for every update from their starts
(a⁻, a⁺), following the authors' released loss (WooooDyy/BAPO@7287044,
``recipe/bapo/policy_loss.py``)::

    r̄_t = min(r_t, c_high) if A_t ≥ 0 else max(r_t, c_low)          (the clipped ratio)
    P = Σ_t max(r̄_t·A_t, 0)·m_t,   N = Σ_t max(−r̄_t·A_t, 0)·m_t,   ρ = P / (P + N)
    c_low ← a⁻;  while ρ < ρ₀ and c_low < b⁻:  c_low ← min(c_low + δ⁻, b⁻)
    c_high ← a⁺; while ρ < ρ₀ and c_high < b⁺: c_high ← min(c_high + δ⁺, b⁺)

then the dual-clip PPO loss with r clipped to [c_low, c_high] (ε_low = 1 − c_low,
ε_high = c_high − 1). The released code compares the ratio P/N with its
``adv_ratio_target``; ρ ≥ ρ₀ is the same test with P/N ≥ ρ₀/(1 − ρ₀) (its config default 1.0
is ρ₀ = ½). With ``measure = "clipped_value"`` (the code) a clipped token counts at its
clipped value, so raising c_low never raises ρ; ``"unclipped_tokens"`` counts only the tokens
that keep a gradient (A ≥ 0 with r ≤ c_high, A < 0 with r ≥ c_low) — the README's reading,
"filtering excessive low-probability negative tokens" — an assumption, not the released code.

On policy r ≡ 1: no token is clipped whatever the bounds, so BAPO acts only off-policy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._array import detach, like, namespace
from ..validation import is_finite_number, need
from .base import Lever, LossModifiers, TokenBatch
from .registry import register_lever

__all__ = ["BAPO", "positive_share"]

MEASURES = ("clipped_value", "unclipped_tokens")


def positive_share(ratio, adv, mask, c_low, c_high, measure: str = "clipped_value"):
    """ρ = P/(P + N) per loop, shape (L, 1) (1 where P + N = 0), at ratio bounds (L, 1) or scalars."""
    xp = namespace(ratio)
    pos = adv >= 0
    clipped = xp.where(pos, xp.minimum(ratio, c_high + 0.0 * ratio), xp.maximum(ratio, c_low + 0.0 * ratio))
    contrib = clipped * adv * mask
    if measure == "unclipped_tokens":
        contrib = contrib * xp.where(pos, ratio <= c_high, ratio >= c_low)
    p = (contrib * (contrib > 0)).sum(axis=-1, keepdims=True)
    n = (-contrib * (contrib < 0)).sum(axis=-1, keepdims=True)
    total = p + n
    return xp.where(total > 0, p / (total + (total == 0)), 1.0 + 0.0 * total)


@register_lever("bapo")
class BAPO(Lever):
    """Adaptive ratio bounds keeping the positive tokens' share of the PG contribution ≥ ρ₀.

    Parameters (defaults: the authors' README, "as used in the paper"; steps: their example script)
    ----------
    rho_0 : target share ρ₀ ∈ (0, 1) of the positive tokens; 0.5.
    lower_start, lower_max : a⁻, b⁻, movable range of c_low; 0.6, 0.9.
    upper_start, upper_max : a⁺, b⁺, movable range of c_high; 1.2, 3.0.
    lower_step, upper_step : δ⁻, δ⁺ (> 0); 0.05, 0.1.
    measure : "clipped_value" (released code) or "unclipped_tokens" (see the module docstring).
    """

    name = "bapo"
    applied_metrics = ("clip_low", "clip_high")
    acts_through_ratio = True

    def __init__(
        self,
        rho_0: float = 0.5,
        *,
        lower_start: float = 0.6,
        lower_max: float = 0.9,
        lower_step: float = 0.05,
        upper_start: float = 1.2,
        upper_max: float = 3.0,
        upper_step: float = 0.1,
        measure: str = "clipped_value",
        loops: int = 1,
    ) -> None:
        super().__init__(loops)
        n = self.name
        need(is_finite_number(rho_0) and 0 < rho_0 < 1, f"{n}.rho_0", "in (0, 1)", rho_0)
        need(is_finite_number(lower_start) and 0 < lower_start <= 1, f"{n}.lower_start", "in (0, 1]", lower_start)
        need(
            is_finite_number(lower_max) and lower_start <= lower_max <= 1,
            f"{n}.lower_max",
            f"in [lower_start={lower_start}, 1]",
            lower_max,
        )
        need(is_finite_number(upper_start) and upper_start >= 1, f"{n}.upper_start", ">= 1", upper_start)
        need(
            is_finite_number(upper_max) and upper_max >= upper_start,
            f"{n}.upper_max",
            f">= upper_start={upper_start}",
            upper_max,
        )
        need(is_finite_number(lower_step) and lower_step > 0, f"{n}.lower_step", "> 0", lower_step)
        need(is_finite_number(upper_step) and upper_step > 0, f"{n}.upper_step", "> 0", upper_step)
        need(measure in MEASURES, f"{n}.measure", f"one of {MEASURES}", measure)
        self.rho_0, self.measure = float(rho_0), measure
        self.lower = (float(lower_start), float(lower_max), float(lower_step))
        self.upper = (float(upper_start), float(upper_max), float(upper_step))
        self._last = {"clip_low": np.full(self.loops, self.lower[0]), "clip_high": np.full(self.loops, self.upper[0])}
        self._last["share"] = np.zeros(self.loops)  # ρ of the last update (0 before the first)

    def config(self) -> dict[str, Any]:
        (a_lo, b_lo, d_lo), (a_hi, b_hi, d_hi) = self.lower, self.upper
        return {
            "rho_0": self.rho_0,
            "lower_start": a_lo,
            "lower_max": b_lo,
            "lower_step": d_lo,
            "upper_start": a_hi,
            "upper_max": b_hi,
            "upper_step": d_hi,
            "measure": self.measure,
        }

    @staticmethod
    def _ladder(start: float, stop: float, step: float) -> list[float]:
        """start, start + δ, …, stop (the last step clamped to stop), as the released loop visits them."""
        values = [start]
        while values[-1] < stop:
            values.append(min(values[-1] + step, stop))
        return values

    def bounds(self, ratio, adv, mask):
        """(c_low, c_high, ρ), each (L,) numpy, from detached (L, N) ratios, advantages and mask."""
        share = lambda lo, hi: np.asarray(positive_share(ratio, adv, mask, lo, hi, self.measure)).reshape(-1)  # noqa: E731
        lo = np.full(self.loops, self.lower[0])
        hi = np.full(self.loops, self.upper[0])
        rho = share(lo[:, None], hi[:, None])
        for which, ladder in ((0, self._ladder(*self.lower)[1:]), (1, self._ladder(*self.upper)[1:])):
            for value in ladder:
                short = rho < self.rho_0
                if not short.any():
                    break
                if which == 0:
                    lo = np.where(short, value, lo)
                else:
                    hi = np.where(short, value, hi)
                rho = np.where(short, share(lo[:, None], hi[:, None]), rho)
        return lo, hi, rho

    def modify(self, tok: TokenBatch) -> LossModifiers:
        logp, old = detach(tok.logp), tok.old_logp
        xp = namespace(logp)
        ratio = xp.exp(xp.clip(logp - old, -20.0, 20.0))
        to_np = lambda x: np.asarray(x.cpu() if hasattr(x, "cpu") else x, dtype=float)  # noqa: E731
        lo, hi, rho = self.bounds(to_np(ratio), to_np(tok.adv), to_np(tok.mask))
        self._last = {"clip_low": lo, "clip_high": hi, "share": rho}
        return LossModifiers(eps_low=like((1.0 - lo)[:, None], logp), eps_high=like((hi - 1.0)[:, None], logp))

    def metrics(self) -> dict[str, float]:
        return {key: float(np.mean(value)) for key, value in self._last.items()}
