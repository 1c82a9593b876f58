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
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "NORMALIZATIONS",
    "advantage_sign",
    "effective_weights",
    "entropic_adjustment",
    "entropic_weights",
    "high_prob_mask",
]

from .params import NORMALIZATIONS

Array = Any  # numpy.ndarray or torch.Tensor


def _check_tau(tau: float) -> None:
    if not 0.0 < tau < 1.0:
        raise ValueError(f"tau must be in (0, 1), got {tau!r}")


def high_prob_mask(prob: Array, tau: float = 0.95) -> Array:
    """1.0 where π > τ, else 0.0 (same type as ``prob``; no gradient flows through it)."""
    _check_tau(tau)
    return (prob > tau) * 1.0


def advantage_sign(adv: Array) -> Array:
    """sign(A) as floats: +1, −1, or 0 for A = 0."""
    return (adv > 0) * 1.0 - (adv < 0) * 1.0


def entropic_weights(prob: Array, adv: Array, alpha: Array | float, tau: float = 0.95) -> Array:
    """Per-token policy-gradient weights w = 1 + α·sign(A)·1[π > τ].

    ``prob``, ``adv`` and ``alpha`` broadcast; ``prob`` is the current-policy probability
    of the sampled token (at the sampling temperature).
    """
    return 1.0 + alpha * advantage_sign(adv) * high_prob_mask(prob, tau)


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
    """The loss term α · Σ_{mask ∧ π>τ} (−ratio·|A|) / D.

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
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    high = high_prob_mask(prob, tau)
    if mask is not None:
        high = high * mask
    total = _sum(-ratio * abs(adv) * high, axis)
    if num_tokens is None:
        if normalization == "all_tokens":
            num_tokens = _sum(mask if mask is not None else high * 0.0 + 1.0, axis)
        else:
            num_tokens = _sum(high, axis)
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

    w = 1 + α·(D_N / D)·sign(A)·1[π > τ] with D = N ("all_tokens") or N_h
    ("high_prob_tokens"); ``n_tokens`` = N and ``n_high`` = N_h. For "all_tokens" this is
    `entropic_weights`; for "high_prob_tokens" the gain is α·N/N_h.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    gain = alpha if normalization == "all_tokens" else alpha * n_tokens / (n_high + (n_high == 0))
    return 1.0 + gain * advantage_sign(adv) * high_prob_mask(prob, tau)
