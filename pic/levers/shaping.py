"""Levers that reshape the policy-gradient term per token: sample-sign weights and entropy shaping.

All three act on the PG term only, through ``LossModifiers.pg_weight`` or ``grad_mask``, so they
work on-policy (r ≡ 1) as well as off-policy and keep the plant's clip.

- `SampleReinforce` (Zhu et al., arXiv 2506.01347, "The Surprising Effectiveness of Negative
  Reinforcement in LLM Reasoning"): L = λ·L_PSR + L_NSR. Registered as ``nsr`` (λ = 0, negative
  samples only) and ``w_reinforce`` (λ = 0.1). The authors' verl estimator
  (``compute_psr_nsr_outcome_advantage``) uses REINFORCE advantages with no baseline and no
  normalisation: A = λ on a correct response, A = −1 on a wrong one. A lever sees only the
  plant's GRPO advantage, whose sign tells correct (A > 0) from wrong (A < 0) inside a group with
  both outcomes; ``advantage="unit"`` (default) replaces A by λ·1 / −1 there
  (pg_weight = λ/|A| or 1/|A|), ``advantage="grpo"`` keeps GRPO's magnitudes (pg_weight = λ or 1).
  Groups with one outcome only have A = 0 and stay out, unlike the authors' runs.
- `EntropyAdvantage` (Cheng et al., arXiv 2506.14758): A' = A + min(α·sg(H_t), |A|/κ), α 0.4, κ 2.
  With κ > 1 the shift is below |A|/κ < |A| and A' keeps the sign of A, so the PPO loss of A' is
  the PPO loss of A times w = A'/A > 0 (clip and dual clip select the same branches): pg_weight = w.
- `TopEntropyTokens` (Wang et al., arXiv 2506.01939, "Beyond the 80/20 Rule"; TRL
  ``top_entropy_quantile``): the PG term only on tokens with H_t ≥ q, q the (1 − ρ)-quantile of
  the valid tokens' entropies of the micro-batch (linear interpolation, as ``torch.quantile``;
  TRL's ``get_high_entropy_mask``), ρ = 0.2.
"""

from __future__ import annotations

from typing import Any

from .._array import detach, namespace, sort_last, take_last
from ..validation import is_finite_number, need
from .base import Lever, LossModifiers, TokenBatch
from .registry import register_lever

__all__ = ["ADVANTAGE_MODES", "EntropyAdvantage", "SampleReinforce", "TopEntropyTokens", "masked_quantile"]

ADVANTAGE_MODES = ("unit", "grpo")


@register_lever("w_reinforce", preset={"positive_weight": 0.1})
@register_lever("nsr", preset={"positive_weight": 0.0})
class SampleReinforce(Lever):
    """Positive/negative sample reinforcement: PG weight λ on A > 0 tokens, 1 on A < 0 tokens.

    Parameters
    ----------
    positive_weight : λ, the weight of the positive-sample (PSR) term; 0 is NSR, 0.1 W-REINFORCE.
    advantage : "unit" (the authors' REINFORCE magnitudes: A → λ / −1 by sign) or "grpo" (keep |A|).
    """

    name = "sample_reinforce"

    def __init__(self, positive_weight: float = 0.1, *, advantage: str = "unit", loops: int = 1) -> None:
        super().__init__(loops)
        n = self.name
        need(
            is_finite_number(positive_weight) and positive_weight >= 0,
            f"{n}.positive_weight",
            "a finite number >= 0",
            positive_weight,
        )
        need(advantage in ADVANTAGE_MODES, f"{n}.advantage", f"one of {ADVANTAGE_MODES}", advantage)
        self.positive_weight, self.advantage = float(positive_weight), advantage

    def config(self) -> dict[str, Any]:
        return {"positive_weight": self.positive_weight, "advantage": self.advantage}

    def modify(self, tok: TokenBatch) -> LossModifiers:
        xp, adv = tok.xp, tok.adv
        one = 1.0 + 0.0 * adv  # in A's dtype (a bool tensor times a float would be float32 in torch)
        weight = (adv > 0) * (self.positive_weight * one) + (adv < 0) * one  # (L, N); 0 where A = 0
        if self.advantage == "unit":  # w·A = ±weight: |A| → 1
            size = xp.abs(adv)
            weight = weight / (size + (size == 0))
        return LossModifiers(pg_weight=weight)

    def metrics(self) -> dict[str, float]:
        return {"positive_weight": self.positive_weight}


@register_lever("entropy_advantage")
class EntropyAdvantage(Lever):
    """Entropy-based advantage shaping: A' = A + min(α·sg(H_t), |A|/κ), applied as pg_weight = A'/A.

    ``H_t`` is the full-vocabulary entropy of the current policy at the token's position (nats),
    detached. Defaults α 0.4, κ 2 (the paper's); κ must exceed 1 so that A' keeps A's sign.
    """

    name = "entropy_advantage"
    needs_entropy = True
    entropy_grad = False

    def __init__(self, alpha: float = 0.4, kappa: float = 2.0, *, loops: int = 1) -> None:
        super().__init__(loops)
        need(is_finite_number(alpha) and alpha >= 0, f"{self.name}.alpha", "a finite number >= 0", alpha)
        need(
            is_finite_number(kappa) and kappa > 1,
            f"{self.name}.kappa",
            "a finite number > 1 (the shift must not flip the sign of A)",
            kappa,
        )
        self.alpha, self.kappa = float(alpha), float(kappa)
        self._last_shift = 0.0

    def config(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "kappa": self.kappa}

    def shift(self, tok: TokenBatch):
        """ψ_t = min(α·sg(H_t), |A_t|/κ) ≥ 0, shape (L, N)."""
        if tok.entropy is None:
            raise ValueError(f"lever {self.name!r} needs TokenBatch.entropy (per-token entropies)")
        xp = tok.xp
        return xp.minimum(self.alpha * detach(tok.entropy), xp.abs(tok.adv) / self.kappa)

    def modify(self, tok: TokenBatch) -> LossModifiers:
        adv = tok.adv
        psi = self.shift(tok)
        nonzero = adv != 0
        weight = 1.0 + nonzero * psi / (adv + (adv == 0))  # A'/A; A = 0 gives A' = 0 (ψ = 0)
        n = tok.mask.sum()
        self._last_shift = float((psi * tok.mask).sum() / (n + (n == 0)))
        return LossModifiers(pg_weight=weight)

    def metrics(self) -> dict[str, float]:
        return {"adv_shift": self._last_shift}


def masked_quantile(x, mask, q: float):
    """The q-quantile of each row's valid entries (mask > 0), shape (L, 1); linear interpolation.

    Matches ``torch.quantile`` / ``numpy.quantile`` (default method) on ``x[mask > 0]``: with the n
    valid values sorted, v(q) = v_⌊p⌋ + (p − ⌊p⌋)(v_⌊p⌋+1 − v_⌊p⌋), p = q·(n − 1). A row with
    no valid entry gives its largest value (no token passes a ``>`` test against it).
    """
    xp = namespace(x)
    big = detach(x).max() + 1.0
    keyed = xp.where(mask > 0, x, big + 0.0 * x)  # invalid entries sort last
    ordered = sort_last(keyed)
    n = mask.sum(axis=-1, keepdims=True)
    pos = q * xp.maximum(n - 1.0, 0.0 * n)
    lo = xp.floor(pos)
    hi = xp.minimum(lo + 1.0, xp.maximum(n - 1.0, 0.0 * n))
    v_lo, v_hi = take_last(ordered, lo), take_last(ordered, hi)
    return v_lo + (pos - lo) * (v_hi - v_lo)


@register_lever("top_entropy_tokens")
class TopEntropyTokens(Lever):
    """Policy gradient on the top-ρ entropy tokens of each micro-batch only (grad_mask = 1[H_t ≥ q_{1−ρ}]).

    ``H_t`` is the full-vocabulary entropy of the current policy (detached); q the (1 − ρ)-quantile
    of the micro-batch's valid tokens' entropies (`masked_quantile`). ρ = 1 keeps every token.
    """

    name = "top_entropy_tokens"
    needs_entropy = True
    entropy_grad = False

    def __init__(self, fraction: float = 0.2, *, loops: int = 1) -> None:
        super().__init__(loops)
        need(is_finite_number(fraction) and 0 < fraction <= 1, f"{self.name}.fraction", "in (0, 1]", fraction)
        self.fraction = float(fraction)
        self._kept = 0.0

    def config(self) -> dict[str, Any]:
        return {"fraction": self.fraction}

    def selection(self, tok: TokenBatch):
        """1.0 on the valid tokens with H_t ≥ the (1 − ρ)-quantile, else 0.0; shape (L, N)."""
        if tok.entropy is None:
            raise ValueError(f"lever {self.name!r} needs TokenBatch.entropy (per-token entropies)")
        ent = detach(tok.entropy)
        threshold = masked_quantile(ent, tok.mask, 1.0 - self.fraction)
        return (ent >= threshold) * (tok.mask > 0) * (1.0 + 0.0 * ent)

    def modify(self, tok: TokenBatch) -> LossModifiers:
        keep = self.selection(tok)
        n = tok.mask.sum()
        self._kept = float(keep.sum() / (n + (n == 0)))
        return LossModifiers(grad_mask=keep)

    def metrics(self) -> dict[str, float]:
        return {"entropy_kept": self._kept}
