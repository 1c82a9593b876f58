"""The ratio-clipping levers (clip-higher, CE-GPPO, FlexEC) against their authors' formulas.

Each reference below is written from the method's definition (paper, code or methods.md) in
this file, with plain torch/numpy; none calls the lever's own helpers. The lever is only
asked for its `LossModifiers`, which go through the shared loss `pic.levers.token_loss`.

Run: python -m pytest tests/pic/levers/test_clipping.py
"""

from __future__ import annotations

import numpy as np
import pytest
from lever_support import PLANT, _batch, _grad, _ppo, _stats, _tokens
from numpy.testing import assert_allclose

from pic.levers import TokenBatch, make_lever, token_loss


def test_clip_higher_bounds_and_loss(torch):
    """DAPO (arXiv 2503.14476): min(r·A, clip(r, 1 − 0.2, 1 + 0.28)·A), the rest of PPO unchanged."""
    lever = make_lever("clip_higher")
    logp, old, adv, mask = _tokens(torch, spread=0.5, n=256)
    x = logp.clone().requires_grad_(True)
    tok = _batch(x, old, adv, mask)
    mods = lever.modify(tok)
    assert (mods.eps_low, mods.eps_high, mods.clip, mods.dual_clip) == (0.2, 0.28, None, None)
    ref = _ppo(torch, torch.exp(x - old), adv, 0.2, 0.28, 3.0)
    loss = token_loss(tok, mods, PLANT)
    assert torch.allclose(loss, ref, atol=1e-12)
    assert torch.allclose(_grad(torch, loss.sum(), x), _grad(torch, ref.sum(), x), atol=1e-12)
    r = torch.exp(logp - old)
    kept = (adv > 0) & (r > 1.2) & (r < 1.28)  # clipped at ε 0.2, kept at ε_high 0.28
    assert kept.any()
    assert (_grad(torch, loss.sum(), x)[kept] != 0).all()


# ------------------------------------------------------------------- CE-GPPO


def _ce_gppo(torch, logp, old, adv, eps_low, eps_high, beta1, beta2, c):
    """Kwai-Klear/CE-GPPO `compute_gppo_loss_general_beta`, written out per case."""
    ratio = torch.exp(logp - old)
    rd = ratio.detach()
    low = (ratio < 1 - eps_low) & (adv < 0)
    high = (ratio > 1 + eps_high) & (adv > 0)
    other = ~(low | high)
    loss = torch.zeros_like(adv)
    loss = torch.where(low, -beta1 * (1 - eps_low) / rd * ratio * adv, loss)
    loss = torch.where(high, -beta2 * (1 + eps_high) / rd * ratio * adv, loss)
    loss = torch.where(other, -ratio * adv, loss)
    return torch.where(adv < 0, torch.minimum(-adv * c, loss), loss)


@pytest.mark.parametrize(
    ("params", "ref"),
    [({}, (0.2, 0.2, 0.75, 1.0)), ({"beta_low": 0.5, "beta_high": 1.5, "eps_high": 0.28}, (0.2, 0.28, 0.5, 1.5))],
)
def test_ce_gppo_loss_is_the_authors_formula(torch, params, ref):
    lever = make_lever("ce_gppo", **params)
    logp, old, adv, mask = _tokens(torch, spread=0.8, n=128)
    x = logp.clone().requires_grad_(True)
    tok = _batch(x, old, adv, mask)
    loss = token_loss(tok, lever.modify(tok), PLANT)
    want = _ce_gppo(torch, x, old, adv, *ref, c=3.0)
    assert torch.allclose(loss, want, atol=1e-12)
    g = _grad(torch, loss.sum(), x)
    assert torch.allclose(g, _grad(torch, want.sum(), x), atol=1e-12)
    # outside the clip the gradient is kept and bounded: −β(1 ∓ ε)·A per unit ∇log π
    r = torch.exp(logp - old)
    eps_low, eps_high, b1, b2 = ref
    high, low = (r > 1 + eps_high) & (adv > 0), (r < 1 - eps_low) & (adv < 0)
    assert high.any() and low.any()
    assert torch.allclose(g[high], -b2 * (1 + eps_high) * adv[high])
    assert torch.allclose(g[low], -b1 * (1 - eps_low) * adv[low])


# -------------------------------------------------------------------- FlexEC


def _flexec(strategy, k, t, p, *, up=(-0.25, 0.5), down=(-0.13, 0.3), lo=0.05, hi=0.6, std=0.2):
    """(ε⁺, ε⁻) of arXiv 2602.09782 with λ_k = 1 − 2k/T (phase split 0.5), from methods.md §1."""
    h = np.clip(up[0] * p + up[1], lo, hi)
    m = np.clip(down[0] * p + down[1], lo, hi)
    lam = 1 - 2 * k / t
    if strategy == "static":
        return h, m
    if k <= t / 2:
        return (lam * h + (1 - lam) * std if strategy == "id" else lam * std + (1 - lam) * h), std + 0 * p
    return (std + 0 * p if strategy == "id" else h), (1 + lam) * m - lam * std


P_GRID = np.array([[1e-12, 0.05, 0.2, 0.5, 0.8, 0.95, 1.0]])


def _bounds(lever, p, step, total):
    lever.update(_stats(step=step, total=total, entropy=0.3))
    mods = lever.modify(TokenBatch(np.log(p), np.log(p), 0 * p + 1.0, 0 * p + 1.0, num_tokens=p.size))
    return np.broadcast_to(mods.eps_high, p.shape), np.broadcast_to(mods.eps_low, p.shape)


@pytest.mark.parametrize("strategy", ["id", "did", "static"])
@pytest.mark.parametrize("step", [0, 10, 25, 40, 50, 51, 60, 75, 90, 100])
def test_flexec_bounds_follow_the_schedule(strategy, step):
    lever = make_lever(f"flexec_{strategy}")
    assert lever.acts_through_ratio
    high, low = _bounds(lever, P_GRID, step, 100)
    want_high, want_low = _flexec(strategy, step, 100, P_GRID)
    assert_allclose(high, want_high, atol=1e-12)
    assert_allclose(low, want_low, atol=1e-12)


def _spot(lever, step, total=100):
    high, low = _bounds(lever, np.array([[0.2]]), step, total)
    return float(high[0, 0]), float(low[0, 0])


def test_flexec_spot_values():
    # H(0.2) = 0.45, M(0.2) = 0.274; ε_std = 0.2
    assert _spot(make_lever("flexec_id"), 0) == pytest.approx((0.45, 0.2))
    assert _spot(make_lever("flexec_id"), 25) == pytest.approx((0.325, 0.2))  # λ = 0.5
    assert _spot(make_lever("flexec_id"), 75) == pytest.approx((0.2, 0.237))  # λ = −0.5
    assert _spot(make_lever("flexec_id"), 100) == pytest.approx((0.2, 0.2))
    assert _spot(make_lever("flexec_did"), 0) == pytest.approx((0.2, 0.2))
    assert _spot(make_lever("flexec_did"), 50) == pytest.approx((0.45, 0.2))
    assert _spot(make_lever("flexec_did"), 75) == pytest.approx((0.45, 0.237))
    assert _spot(make_lever("flexec_static"), 3) == pytest.approx((0.45, 0.274))


def test_flexec_bounds_are_clamped_and_use_the_current_probability():
    lever = make_lever("flexec_static", upper_slope=-1.0, upper_intercept=0.7, lower_slope=0.8, lower_intercept=-0.1)
    high, low = _bounds(lever, P_GRID, 0, 10)
    kw = {"up": (-1.0, 0.7), "down": (0.8, -0.1)}
    assert_allclose(high, _flexec("static", 0, 10, P_GRID, **kw)[0])
    assert_allclose(low, _flexec("static", 0, 10, P_GRID, **kw)[1])
    assert high.max() == 0.6 and high.min() == 0.05 and low.min() == 0.05
    # the bounds follow π_θ (detached), not π_old
    p = np.array([[0.1, 0.9]])
    mods = lever.modify(TokenBatch(np.log(p), np.log(p[:, ::-1]), np.ones((1, 2)), np.ones((1, 2)), num_tokens=2))
    assert_allclose(mods.eps_high, np.clip(-1.0 * p + 0.7, 0.05, 0.6))


def _od_reference(hs, total, h_init=None, ratio=0.2):
    """OD: τ_low = ratio·H_init, τ_high(k) = τ_low + (H_init − τ_low)(1 − k/T); s = 1 if H ≤ τ_low,
    s = 0 if H > τ_high, else kept (starts at 0). H_init: given, or the first measurement."""
    s, out, h0 = 0, [], h_init
    for k, h in enumerate(hs):
        h0 = h if h0 is None else h0
        low = ratio * h0
        if h <= low:
            s = 1
        elif h > low + (h0 - low) * (1 - k / total):
            s = 0
        out.append(s)
    return out


def test_flexec_od_hysteresis():
    hs = [0.5, 0.3, 0.09, 0.3, 0.37, 0.2, 0.05, 0.2, 0.2, 0.15]
    assert _od_reference(hs, 10) == [0, 0, 1, 1, 0, 0, 1, 1, 0, 0]
    p = np.array([[0.2, 0.9]])
    h_p, m_p = np.clip(-0.25 * p + 0.5, 0.05, 0.6), np.clip(-0.13 * p + 0.3, 0.05, 0.6)
    for h_init in (None, 0.6):
        lever = make_lever("flexec_od", h_init=h_init)
        want = _od_reference(hs, 10, h_init)
        for k, h in enumerate(hs):
            lever.update(_stats(step=k, total=10, entropy=h))
            mods = lever.modify(TokenBatch(np.log(p), np.log(p), np.ones_like(p), np.ones_like(p), num_tokens=2))
            raising = want[k] == 1
            assert lever.metrics()["flexec_raising"] == want[k]
            assert_allclose(mods.eps_high, h_p if raising else 0.2 + 0 * p)  # s = 1: (H(p), ε_std)
            assert_allclose(mods.eps_low, 0.2 + 0 * p if raising else m_p)  # s = 0: (ε_std, M(p))
    assert _od_reference(hs, 10, 0.6) != _od_reference(hs, 10)  # H_init given vs measured: other thresholds


def test_flexec_od_reads_the_entropy_per_loop():
    lever = make_lever("flexec_od", loops=2)
    for k, h in enumerate([[0.5, 0.5], [0.05, 0.45]]):
        lever.update(_stats(step=k, total=10, entropy=np.array(h)))
    p = np.full((2, 1), 0.5)
    mods = lever.modify(TokenBatch(np.log(p), np.log(p), np.ones_like(p), np.ones_like(p), num_tokens=1))
    assert_allclose(mods.eps_high[:, 0], [0.375, 0.2])


# ------------------------------------------------------------------ Clip-Cov
