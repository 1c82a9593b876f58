"""The EntroPIC actuator: how α becomes per-token loss weights.

Written with plain array operators only, so the same functions run on numpy arrays (the
bandit simulator) and torch tensors (the trainer, with autograd through ``ratio``).

The rule (paper, Fig. 1 of the official repo): on tokens whose *current* probability
π > τ, a positive-advantage token gets weight (1 + α) and a negative-advantage token
(1 − α); all other tokens keep weight 1. For α > 0 (entropy above target) confident
positives are pushed up and entropy falls; for α < 0 confident negatives dominate and
entropy rises (Lemma B: for the argmax token the entropy change has the sign of −A).

As a loss term added to a token-mean policy-gradient loss::

    L = L_PG + α · Σ_{t: π_t > τ} (−ratio_t · |A_t|) / D

The denominator D is the normalisation choice:

- ``"all_tokens"`` (default, the paper's form): D = N, the number of valid tokens the
  base loss is averaged over. The gradient of L is then exactly that of the PG loss with
  weights 1 ± α — `entropic_weights`.
- ``"high_prob_tokens"`` (the official code): D = N_h, the number of high-probability
  tokens. The effective weight becomes 1 ± α·N/N_h, which exceeds the paper's and, for
  |α|·N/N_h > 1, flips the sign of a negative token's gradient. Use it to reproduce the
  official runs; `effective_weights` shows the multiplier.

Everything is derived from one per-token function, `entropic_coefficient`::

    c_t = −α · |A_t| · 1[π_t > τ] · m_t · N/D          (N/D = `normalization_scale`)

so that the term is Σ_t c_t·r_t / N: the trainer's lever adds c_t·r_t to its token loss
(`pic.levers.entropic`), `entropic_adjustment` sums it (the verl / TRL plug-ins), and the
on-policy weights are w_t = 1 − sign(A_t)·c_t(|A| = 1) = 1 + α·sign(A_t)·1[π_t > τ]·N/D
(`entropic_weights`, the bandit plant).
"""

from __future__ import annotations

from typing import Any

from .params import NORMALIZATIONS
from .validation import need

__all__ = [
    "NORMALIZATIONS",
    "advantage_sign",
    "effective_weights",
    "entropic_adjustment",
    "entropic_coefficient",
    "entropic_weights",
    "high_prob_mask",
    "normalization_scale",
]

Array = Any  # numpy.ndarray or torch.Tensor


def high_prob_mask(prob: Array, tau: float = 0.95) -> Array:
    """1.0 where π > τ, else 0.0 (same type as ``prob``; no gradient flows through it)."""
    need(0.0 < tau < 1.0, "tau", "in (0, 1)", tau)
    return (prob > tau) * 1.0


def advantage_sign(adv: Array) -> Array:
    """sign(A) as floats: +1, −1, or 0 for A = 0."""
    return (adv > 0) * 1.0 - (adv < 0) * 1.0


def normalization_scale(normalization: str, n_tokens: Array | float, n_high: Array | float) -> Array | float:
    """N/D, the factor by which the EntroPIC term's denominator D differs from the base loss's N.

    ``"all_tokens"``: D = N, so 1.0. ``"high_prob_tokens"``: D = N_h, so N/N_h (N/1 when N_h = 0,
    where the term is empty anyway). ``n_tokens`` = N and ``n_high`` = N_h are counts, or any
    proportional pair (e.g. 1 and the expected share of confident tokens).
    """
    need(normalization in NORMALIZATIONS, "normalization", f"one of {NORMALIZATIONS}", normalization)
    if normalization == "all_tokens":
        return 1.0
    return n_tokens / (n_high + (n_high == 0))


def entropic_coefficient(
    prob: Array,
    adv: Array,
    alpha: Array | float,
    *,
    tau: float = 0.95,
    mask: Array | None = None,
    scale: Array | float = 1.0,
) -> Array:
    """The per-token EntroPIC coefficient c_t = −α·|A_t|·1[π_t > τ]·m_t·scale, the one actuator formula.

    ``prob`` (current-policy probability of the sampled token, detached), ``adv``, ``mask``
    (valid tokens, ``None`` = all) and ``alpha`` broadcast; ``scale`` = N/D from
    `normalization_scale`. Added to a token-mean loss as Σ_t c_t·r_t / N (r_t the raw ratio),
    it is the term α·Σ_{m ∧ π>τ}(−r·|A|)/D.
    """
    high = high_prob_mask(prob, tau)
    if mask is not None:
        high = high * mask
    return -alpha * abs(adv) * high * scale


def entropic_weights(
    prob: Array, adv: Array, alpha: Array | float, tau: float = 0.95, *, scale: Array | float = 1.0
) -> Array:
    """Per-token policy-gradient weights w = 1 + α·scale·sign(A)·1[π > τ] (scale = N/D, 1 for the paper).

    The on-policy gradient of the PG loss plus the term: w = 1 − sign(A)·c(|A| = 1) with c
    `entropic_coefficient`. ``prob``, ``adv`` and ``alpha`` broadcast; ``prob`` is the
    current-policy probability of the sampled token (at the sampling temperature).
    """
    sign = advantage_sign(adv)
    return 1.0 - sign * entropic_coefficient(prob, sign, alpha, tau=tau, scale=scale)


def entropic_adjustment(
    ratio: Array,
    adv: Array,
    prob: Array,
    alpha: Array | float,
    *,
    mask: Array | None = None,
    tau: float = 0.95,
    normalization: str = "all_tokens",
    num_tokens: Array | float | None = None,
    axis: int | tuple[int, ...] | None = None,
) -> Array:
    """The loss term α · Σ_{mask ∧ π>τ} (−ratio·|A|) / D = α · Σ_t c_t(α = 1)·ratio_t / D.

    Parameters
    ----------
    ratio : π_θ / sg(π_old) per token, shape (..., T). Gradient flows through it. The raw
        (unclipped) ratio, as in the official code.
    adv : advantages broadcast to tokens, same shape.
    prob : current-policy probability of each token (detached), same shape.
    alpha : scalar α, or an array broadcasting against the reduced result (one α per
        independent loop when ``axis`` leaves a batch axis).
    mask : valid-token mask (1 for response tokens); ``None`` means all valid.
    normalization : "all_tokens" (D = N valid tokens) or "high_prob_tokens" (D = N_h).
    num_tokens : override D, e.g. the global token count when the loss is summed over
        micro-batches or ranks. ``None`` counts D from this batch.
    axis : axes to reduce over (default: all). Works for numpy and torch alike.

    Returns
    -------
    The scalar term to add to a token-mean PG loss.
    """
    need(normalization in NORMALIZATIONS, "normalization", f"one of {NORMALIZATIONS}", normalization)
    unit = entropic_coefficient(prob, adv, 1.0, tau=tau, mask=mask)  # c_t at α = 1, D = N
    total = _sum(unit * ratio, axis)
    if num_tokens is None:
        if normalization == "all_tokens":
            num_tokens = _sum(mask if mask is not None else prob * 0.0 + 1.0, axis)
        else:
            high = high_prob_mask(prob, tau)
            num_tokens = _sum(high * mask if mask is not None else high, axis)
    # an empty selection contributes 0, not 0/0
    denom = num_tokens + (num_tokens == 0)
    return alpha * total / denom


def _sum(x: Array, axis: int | tuple[int, ...] | None) -> Array:
    return x.sum() if axis is None else x.sum(axis=axis)


def effective_weights(
    prob: Array,
    adv: Array,
    alpha: Array | float,
    *,
    tau: float = 0.95,
    normalization: str = "all_tokens",
    n_tokens: Array | float = 1.0,
    n_high: Array | float = 1.0,
) -> Array:
    """Per-token weights implied by a token-mean PG loss plus `entropic_adjustment`.

    w = 1 + α·(N / D)·sign(A)·1[π > τ] with D = N ("all_tokens") or N_h
    ("high_prob_tokens"); ``n_tokens`` = N and ``n_high`` = N_h. For "all_tokens" this is
    `entropic_weights`; for "high_prob_tokens" the gain is α·N/N_h.
    """
    scale = normalization_scale(normalization, n_tokens, n_high)
    return entropic_weights(prob, adv, alpha, tau, scale=scale)
