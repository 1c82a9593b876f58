"""Levers that act through the PPO clip: DAPO clip-higher, CE-GPPO, and flexible dynamic clipping.

All of them change only how tokens with r = π_θ/π_old outside [1 − ε_low, 1 + ε_high] are
treated, so they are inert on-policy (r ≡ 1): plants refuse them with one update per rollout.

Why they move entropy (per-token sign rule, Lemma B and arXiv 2602.09782): a positive
low-probability token (r > 1 + ε_high once pushed up) raises the entropy, a negative
low-probability token lowers it. Loosening the upper bound (DAPO's ε_high 0.28, FlexEC's
H(p)) lets more of the former through; loosening the lower bound for low-p negatives
(FlexEC's M(p)) lets more of the latter through. CE-GPPO keeps both gradients, scaled by β₂
(entropy up) and β₁ (entropy down).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._array import clip as _clip
from .._array import detach
from ..validation import is_finite_number, need
from ._common import check_signal, column, measured
from .base import Lever, LossModifiers, StepStats, TokenBatch
from .registry import register_lever

__all__ = ["CEGPPO", "FLEXEC_STRATEGIES", "ClipHigher", "FlexEC"]


@register_lever("clip_higher")
class ClipHigher(Lever):
    """DAPO clip-higher (arXiv 2503.14476): decoupled ε_low = 0.2, ε_high = 0.28."""

    name = "clip_higher"
    acts_through_ratio = True

    def __init__(self, eps_low: float = 0.2, eps_high: float = 0.28, *, loops: int = 1) -> None:
        super().__init__(loops)
        need(is_finite_number(eps_low) and 0 <= eps_low < 1, f"{self.name}.eps_low", "in [0, 1)", eps_low)
        need(is_finite_number(eps_high) and eps_high >= 0, f"{self.name}.eps_high", ">= 0", eps_high)
        self.eps_low, self.eps_high = float(eps_low), float(eps_high)

    def config(self) -> dict[str, Any]:
        return {"eps_low": self.eps_low, "eps_high": self.eps_high}

    def modify(self, tok: TokenBatch) -> LossModifiers:
        return LossModifiers(eps_low=self.eps_low, eps_high=self.eps_high)


@register_lever("ce_gppo")
class CEGPPO(Lever):
    """CE-GPPO (arXiv 2509.20712): gradient-preserving clipping with coefficients β₁, β₂.

    Tokens beyond the clip keep a bounded gradient −β·(1 ∓ ε)·A·∇log π (see
    `pic.levers.loss`); β₁ = β₂ = 1 is GPPO. Defaults: β₁ 0.75 (the authors' loss function and
    7B script), β₂ 1; ε_low/ε_high default to the plant's (the authors ran 0.2/0.2).
    """

    name = "ce_gppo"
    acts_through_ratio = True

    def __init__(
        self,
        beta_low: float = 0.75,
        beta_high: float = 1.0,
        *,
        eps_low: float | None = None,
        eps_high: float | None = None,
        loops: int = 1,
    ) -> None:
        super().__init__(loops)
        need(is_finite_number(beta_low) and beta_low >= 0, f"{self.name}.beta_low", "a finite number >= 0", beta_low)
        need(
            is_finite_number(beta_high) and beta_high >= 0, f"{self.name}.beta_high", "a finite number >= 0", beta_high
        )
        n = self.name
        need(
            eps_low is None or (is_finite_number(eps_low) and 0 <= eps_low < 1),
            f"{n}.eps_low",
            "in [0, 1) or None",
            eps_low,
        )
        need(
            eps_high is None or (is_finite_number(eps_high) and eps_high >= 0),
            f"{n}.eps_high",
            ">= 0 or None",
            eps_high,
        )
        self.beta_low, self.beta_high, self.eps_low, self.eps_high = (
            float(beta_low),
            float(beta_high),
            eps_low,
            eps_high,
        )

    def config(self) -> dict[str, Any]:
        return {
            "beta_low": self.beta_low,
            "beta_high": self.beta_high,
            "eps_low": self.eps_low,
            "eps_high": self.eps_high,
        }

    def modify(self, tok: TokenBatch) -> LossModifiers:
        return LossModifiers(
            clip="gradient_preserving",
            beta_low=self.beta_low,
            beta_high=self.beta_high,
            eps_low=self.eps_low,
            eps_high=self.eps_high,
        )


FLEXEC_STRATEGIES = ("id", "did", "od", "static")


class FlexEC(Lever):
    """Flexible entropy control by dynamic clip bounds (Chen et al., arXiv 2602.09782).

    Probability-dependent bounds from the detached current probability p of each token::

        H(p) = clamp(a⁺·p + b⁺, lo, hi)    upper width for A > 0 (a⁺ < 0: loose for low p → entropy ↑)
        M(p) = clamp(a⁻·p + b⁻, lo, hi)    lower width for A < 0 (tight for high-p negatives)

    Strategies, with k the step, T the total, s the phase split and λ = 1 − k/(sT) in the first
    phase (1 → 0), λ = −(k − sT)/((1 − s)T) in the second (0 → −1); (ε⁺, ε⁻) =

    - ``id`` (increase-then-decrease): (λH + (1−λ)ε_std, ε_std), then (ε_std, (1+λ)M − λε_std).
    - ``did`` (decrease-increase-decrease): (λε_std + (1−λ)H, ε_std), then (H, (1+λ)M − λε_std).
    - ``od`` (oscillatory decay): hysteresis on the measured entropy with τ_low = r·H_init and
      τ_high(k) = τ_low + (H_init − τ_low)(1 − k/T): s ← 1 if H ≤ τ_low, s ← 0 if H > τ_high, else
      kept; s = 1 → (H, ε_std) (raise), s = 0 → (ε_std, M) (lower). H_init = the first measurement
      unless given.
    - ``static``: (H, M) throughout.

    Defaults are the third-party ones (Tencent IterSynth scripts): a⁺ −0.25, b⁺ 0.5, a⁻ −0.13,
    b⁻ 0.3, clamp [0.05, 0.6], split 0.5, r 0.2; ε_std 0.2.
    """

    name = "flexec"
    acts_through_ratio = True

    def __init__(
        self,
        strategy: str = "id",
        *,
        eps_std: float = 0.2,
        upper_slope: float = -0.25,
        upper_intercept: float = 0.5,
        lower_slope: float = -0.13,
        lower_intercept: float = 0.3,
        bound_min: float = 0.05,
        bound_max: float = 0.6,
        phase_split: float = 0.5,
        h_init: float | None = None,
        h_min_ratio: float = 0.2,
        signal: str = "entropy",
        loops: int = 1,
    ) -> None:
        super().__init__(loops)
        n = self.name
        need(strategy in FLEXEC_STRATEGIES, f"{n}.strategy", f"one of {FLEXEC_STRATEGIES}", strategy)
        need(is_finite_number(eps_std) and 0 <= eps_std < 1, f"{n}.eps_std", "in [0, 1)", eps_std)
        need(is_finite_number(bound_min) and bound_min >= 0, f"{n}.bound_min", ">= 0", bound_min)
        need(
            is_finite_number(bound_max) and bound_min <= bound_max < 1,
            f"{n}.bound_max",
            f"in [bound_min={bound_min}, 1)",
            bound_max,
        )
        need(is_finite_number(phase_split) and 0 < phase_split < 1, f"{n}.phase_split", "in (0, 1)", phase_split)
        need(h_init is None or (is_finite_number(h_init) and h_init > 0), f"{n}.h_init", "> 0 nats or None", h_init)
        need(is_finite_number(h_min_ratio) and 0 < h_min_ratio < 1, f"{n}.h_min_ratio", "in (0, 1)", h_min_ratio)
        for field, v in (("upper_slope", upper_slope), ("upper_intercept", upper_intercept)):
            need(is_finite_number(v), f"{n}.{field}", "a finite number", v)
        for field, v in (("lower_slope", lower_slope), ("lower_intercept", lower_intercept)):
            need(is_finite_number(v), f"{n}.{field}", "a finite number", v)
        check_signal(n, signal)
        self.strategy, self.eps_std = strategy, float(eps_std)
        self.upper = (float(upper_slope), float(upper_intercept))
        self.lower = (float(lower_slope), float(lower_intercept))
        self.bounds = (float(bound_min), float(bound_max))
        self.phase_split, self.h_min_ratio, self.signal = float(phase_split), float(h_min_ratio), signal
        self._h_init_cfg = h_init
        self._h_init = np.full(self.loops, np.nan if h_init is None else float(h_init))
        self._state = np.zeros(self.loops)  # OD: 1 = raising, 0 = lowering
        self._k, self._t = 0, 1

    def config(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "eps_std": self.eps_std,
            "upper": self.upper,
            "lower": self.lower,
            "bounds": self.bounds,
            "phase_split": self.phase_split,
            "h_init": self._h_init_cfg,
            "h_min_ratio": self.h_min_ratio,
        }

    def _lambda(self) -> tuple[int, float]:
        """(phase, λ) at the current step."""
        s, k, t = self.phase_split, self._k, max(self._t, 1)
        if k <= s * t:
            return 1, 1.0 - k / (s * t)
        return 2, -(k - s * t) / ((1.0 - s) * t)

    def update(self, stats: StepStats) -> None:
        self._k, self._t = int(stats.step), int(stats.total_steps)
        if self.strategy != "od":
            return
        h = self._per_loop(measured(stats, self.signal))
        self._h_init = np.where(np.isnan(self._h_init), h, self._h_init)
        low = self.h_min_ratio * self._h_init
        high = low + (self._h_init - low) * (1.0 - min(self._k / max(self._t, 1), 1.0))
        self._state = np.where(h <= low, 1.0, np.where(h > high, 0.0, self._state))

    def _bound(self, p, slope_intercept):
        a, b = slope_intercept
        return _clip(a * p + b, *self.bounds)

    def modify(self, tok: TokenBatch) -> LossModifiers:
        p = tok.xp.exp(detach(tok.logp))
        up, down, std = self._bound(p, self.upper), self._bound(p, self.lower), self.eps_std
        if self.strategy == "static":
            return LossModifiers(eps_high=up, eps_low=down)
        if self.strategy == "od":
            s = column(self._state, tok.logp)
            return LossModifiers(eps_high=s * up + (1 - s) * std, eps_low=s * std + (1 - s) * down)
        phase, lam = self._lambda()
        if phase == 1:
            high = lam * up + (1 - lam) * std if self.strategy == "id" else lam * std + (1 - lam) * up
            return LossModifiers(eps_high=high, eps_low=std + 0.0 * p)
        high = std + 0.0 * p if self.strategy == "id" else up
        return LossModifiers(eps_high=high, eps_low=(1 + lam) * down - lam * std)

    def metrics(self) -> dict[str, float]:
        out = {"flexec_lambda": self._lambda()[1]}
        if self.strategy == "od":
            out["flexec_raising"] = float(np.mean(self._state))
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "h_init": [None if np.isnan(v) else float(v) for v in self._h_init],
            "state": [float(v) for v in self._state],
            "k": self._k,
            "t": self._t,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._h_init = self._per_loop([np.nan if v is None else v for v in state["h_init"]])
        self._state = self._per_loop(state["state"])
        self._k, self._t = int(state["k"]), int(state["t"])


for _strategy in FLEXEC_STRATEGIES:  # flexec_static holds fixed bounds: not in the default comparison
    register_lever(f"flexec_{_strategy}", preset={"strategy": _strategy}, compared=_strategy != "static")(FlexEC)
