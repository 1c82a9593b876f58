"""Shared pieces of the lever tests (tests/pic/levers): random token batches and written-out references."""

from __future__ import annotations

import math

from pic.levers import PolicyDefaults, StepStats, TokenBatch

TAU = 0.95
PLANT = PolicyDefaults(eps_low=0.2, eps_high=0.2, dual_clip=3.0)  # verl's defaults: ε 0.2/0.2, clip_ratio_c 3


def _tokens(torch, seed=0, loops=2, n=64, spread=0.4, adv_scale=1.0):
    """(logp, old_logp, adv, mask), float64 (L, N): half the tokens confident (π > 0.95), half not."""
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    confident = torch.rand(loops, n, generator=g, dtype=f64) < 0.5
    p = torch.where(
        confident,
        0.951 + 0.048 * torch.rand(loops, n, generator=g, dtype=f64),
        0.01 + 0.9 * torch.rand(loops, n, generator=g, dtype=f64),
    )
    logp = p.log()
    old = logp + spread * torch.randn(loops, n, generator=g, dtype=f64)
    adv = adv_scale * torch.randn(loops, n, generator=g, dtype=f64)
    mask = (torch.rand(loops, n, generator=g, dtype=f64) > 0.15).double()
    return logp, old, adv, mask


def _batch(x, old, adv, mask, **kw):
    return TokenBatch(logp=x, old_logp=old, adv=adv, mask=mask, num_tokens=mask.sum(-1, keepdim=True), **kw)


def _stats(step=0, total=10, entropy=0.3, nll=math.nan):
    return StepStats(step=step, total_steps=total, entropy=entropy, nll=nll)


def _grad(torch, value, x):
    return torch.autograd.grad(value, x, retain_graph=True)[0]


def _ppo(torch, r, adv, eps_low, eps_high, dual):
    """PPO's clipped token loss (verl `compute_policy_loss`), written out."""
    loss = torch.maximum(-adv * r, -adv * torch.clamp(r, 1 - eps_low, 1 + eps_high))
    if dual:
        loss = torch.where(adv < 0, torch.minimum(loss, -adv * dual), loss)
    return loss


# ------------------------------------------------------------------ EntroPIC
