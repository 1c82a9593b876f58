"""The per-token policy loss every lever modifies, and its exact derivative.

With r = exp(log π_θ − log π_old) (log-ratio clamped to ±20) and A the advantage, the loss
of one token (minimised) is::

    ℓ = m · w · PG(r) + c·r + β·|log r| + κ·k3,        k3 = e^{δ} − δ − 1,  δ = log π_ref − log π_θ

with m = ``grad_mask``, w = ``pg_weight``, c = ``ratio_coef``, β = ``abs_log_ratio_coef``,
κ = ``kl_coef`` (`LossModifiers`), and the PG term by ``clip`` mode:

- ``"ppo"``:   PG = max(−A·r, −A·clip(r, 1 − ε_low, 1 + ε_high)); for A < 0 also min(·, −A·c_dual).
- ``"gradient_preserving"`` (CE-GPPO, arXiv 2509.20712): outside the clip range the value is
  PPO's but the gradient is kept, scaled: PG = −β₁(1 − ε_low)·(r/sg r)·A where r < 1 − ε_low
  and A < 0; −β₂(1 + ε_high)·(r/sg r)·A where r > 1 + ε_high and A > 0; −A·r elsewhere;
  dual clip as in PPO.
- ``"none"``:  PG = −A·r (KL-Cov's unclipped surrogate).

k3 is clamped to [−10, 10] and δ to [−20, 20] (verl's ``low_var_kl``). The batch loss is
Σ ℓ·mask / N − entropy_coef·Σ H_t·mask / N (N = ``TokenBatch.num_tokens``).

`token_loss` is what the trainer differentiates with autograd; `token_loss_grad` is the
closed-form ∂ℓ/∂log π_θ the bandit simulator uses (no autograd there). The tests check one
against the other, so the two plants cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from .._array import clip as _clip
from .._array import detach, namespace
from ..validation import need
from .base import LossModifiers, TokenBatch

__all__ = ["CLIP_MODES", "PolicyDefaults", "clip_mask", "resolve", "token_loss", "token_loss_grad"]

CLIP_MODES = ("ppo", "gradient_preserving", "none")
_LOG_RATIO_LIMIT = 20.0
_K3_LIMIT = 10.0


class PolicyDefaults:
    """The plant's own clip settings, used wherever a lever leaves a field as ``None``."""

    def __init__(self, eps_low: float = 0.2, eps_high: float = 0.2, dual_clip: float | None = 3.0) -> None:
        self.eps_low, self.eps_high, self.dual_clip = eps_low, eps_high, dual_clip


def resolve(mods: LossModifiers, defaults: PolicyDefaults) -> dict[str, Any]:
    """The effective (eps_low, eps_high, clip, dual_clip) after a lever's overrides."""
    dual = defaults.dual_clip if mods.dual_clip is None else mods.dual_clip
    clip = mods.clip or "ppo"
    need(clip in CLIP_MODES, "LossModifiers.clip", f"one of {CLIP_MODES}", clip)
    return {
        "eps_low": defaults.eps_low if mods.eps_low is None else mods.eps_low,
        "eps_high": defaults.eps_high if mods.eps_high is None else mods.eps_high,
        "clip": clip,
        "dual_clip": dual if dual else None,
    }


def _ratio(tok: TokenBatch):
    xp = namespace(tok.logp)
    log_ratio = _clip(tok.logp - tok.old_logp, -_LOG_RATIO_LIMIT, _LOG_RATIO_LIMIT)
    return xp.exp(log_ratio), log_ratio


def clip_mask(ratio, adv, eps_low, eps_high, clip: str, dual_clip: float | None):
    """1.0 where the PG term of a token has no gradient (clipped), else 0.0 (detached).

    Hard clip: A > 0 and r > 1 + ε_high, or A < 0 and r < 1 − ε_low; dual clip: A < 0 and
    r > c. Gradient-preserving and unclipped modes only clip by the dual bound.
    """
    r = detach(ratio)
    out = (adv < 0) * (r > dual_clip) * 1.0 if dual_clip else r * 0.0
    if clip == "ppo":
        out = out + (adv > 0) * (r > 1.0 + eps_high) * 1.0 + (adv < 0) * (r < 1.0 - eps_low) * 1.0
    return (out > 0) * 1.0


def _pg_value(ratio, adv, eps_low, eps_high, clip: str, dual_clip: float | None, beta_low, beta_high):
    xp = namespace(ratio)
    if clip == "none":
        pg = -adv * ratio
    elif clip == "ppo":
        pg = xp.maximum(-adv * ratio, -adv * _clip(ratio, 1.0 - eps_low, 1.0 + eps_high))
    else:  # gradient_preserving
        unit = ratio / detach(ratio)  # value 1, gradient that of r / r = ∇log π
        low = (ratio < 1.0 - eps_low) & (adv < 0)
        high = (ratio > 1.0 + eps_high) & (adv > 0)
        pg = xp.where(
            low,
            -beta_low * (1.0 - eps_low) * unit * adv,
            xp.where(high, -beta_high * (1.0 + eps_high) * unit * adv, -adv * ratio),
        )
    if dual_clip:
        pg = xp.where(adv < 0, xp.minimum(pg, -adv * dual_clip), pg)
    return pg


def _k3(tok: TokenBatch):
    xp = namespace(tok.logp)
    delta = _clip(tok.ref_logp - tok.logp, -_LOG_RATIO_LIMIT, _LOG_RATIO_LIMIT)
    k3 = xp.exp(delta) - delta - 1.0
    return _clip(k3, -_K3_LIMIT, _K3_LIMIT), delta, k3


def token_loss(tok: TokenBatch, mods: LossModifiers, defaults: PolicyDefaults):
    """ℓ per token, shape (L, N), unmasked (multiply by ``tok.mask`` and divide by N to aggregate)."""
    eff = resolve(mods, defaults)
    ratio, log_ratio = _ratio(tok)
    xp = namespace(ratio)
    pg = _pg_value(
        ratio, tok.adv, eff["eps_low"], eff["eps_high"], eff["clip"], eff["dual_clip"], mods.beta_low, mods.beta_high
    )
    if mods.pg_weight is not None:
        pg = pg * mods.pg_weight
    if mods.grad_mask is not None:
        pg = pg * mods.grad_mask
    loss = pg
    if mods.ratio_coef is not None:
        loss = loss + mods.ratio_coef * ratio
    if mods.abs_log_ratio_coef is not None:
        loss = loss + mods.abs_log_ratio_coef * xp.abs(log_ratio)
    if mods.kl_coef:
        if tok.ref_logp is None:
            raise ValueError("LossModifiers.kl_coef needs TokenBatch.ref_logp (a reference policy)")
        loss = loss + mods.kl_coef * _k3(tok)[0]
    return loss


def token_loss_grad(tok: TokenBatch, mods: LossModifiers, defaults: PolicyDefaults):
    """∂ℓ/∂log π_θ per token, shape (L, N): the closed form of `token_loss`'s derivative.

    PG parts (r̃ = r unless the log-ratio clamp is active, where dr/dlog π = 0):
    ``ppo``/``none``: −A·r̃ on unclipped tokens, 0 on clipped ones; ``gradient_preserving``:
    −β₁(1 − ε_low)·A or −β₂(1 + ε_high)·A outside the range, −A·r̃ inside. Extra terms:
    c·r̃ + β·sign(log r) + κ·(1 − e^δ) (0 where a clamp is active).
    """
    eff = resolve(mods, defaults)
    ratio, log_ratio = _ratio(tok)
    xp = namespace(ratio)
    adv = tok.adv
    inside = (xp.abs(tok.logp - tok.old_logp) < _LOG_RATIO_LIMIT) * 1.0  # the ±20 clamp is flat outside
    dr = ratio * inside  # d r / d log π
    dead = clip_mask(ratio, adv, eff["eps_low"], eff["eps_high"], eff["clip"], eff["dual_clip"])
    if eff["clip"] == "gradient_preserving":
        low = ((ratio < 1.0 - eff["eps_low"]) & (adv < 0)) * 1.0
        high = ((ratio > 1.0 + eff["eps_high"]) & (adv > 0)) * 1.0
        g = (
            low * (-mods.beta_low * (1.0 - eff["eps_low"]) * adv)
            + high * (-mods.beta_high * (1.0 + eff["eps_high"]) * adv)
            + (1.0 - low - high) * (-adv * dr)
        )
    else:
        g = -adv * dr
    g = g * (1.0 - dead)
    if mods.pg_weight is not None:
        g = g * mods.pg_weight
    if mods.grad_mask is not None:
        g = g * mods.grad_mask
    if mods.ratio_coef is not None:
        g = g + mods.ratio_coef * dr
    if mods.abs_log_ratio_coef is not None:
        g = g + mods.abs_log_ratio_coef * xp.sign(log_ratio) * inside
    if mods.kl_coef:
        _, delta, k3 = _k3(tok)
        live = (xp.abs(tok.ref_logp - tok.logp) < _LOG_RATIO_LIMIT) * (xp.abs(k3) < _K3_LIMIT) * 1.0
        g = g + mods.kl_coef * (1.0 - xp.exp(delta)) * live
    return g
