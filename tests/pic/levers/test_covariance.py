"""The covariance levers (Clip-Cov, KL-Cov) against their authors' formulas.

Each reference below is written from the method's definition (paper, code or methods.md) in
this file, with plain torch/numpy; none calls the lever's own helpers. The lever is only
asked for its `LossModifiers`, which go through the shared loss `pic.levers.token_loss`.

Run: python -m pytest tests/pic/levers/test_covariance.py
"""

from __future__ import annotations

import pytest
from lever_support import PLANT, _batch, _grad, _ppo, _tokens

from pic.levers import make_lever, token_loss


def _cov(logp, adv, mask):
    """cov_i = (A_i − mean A)·(log π_i − mean log π), means over valid tokens (Cui et al., arXiv 2505.22617)."""
    n = mask.sum(-1, keepdims=True)
    mean_a = (adv * mask).sum(-1, keepdims=True) / n
    mean_lp = (logp * mask).sum(-1, keepdims=True) / n
    return (adv - mean_a) * (logp - mean_lp)


@pytest.mark.parametrize("eps", [1.0, 0.2])
def test_clip_cov_selects_eligible_tokens_and_zeroes_them(torch, eps):
    ratio = 0.02
    lever = make_lever("clip_cov", ratio=ratio, eps_low=eps, eps_high=eps, seed=3, loops=2)
    assert not lever.acts_through_ratio  # the mask acts on-policy too
    logp, old, adv, mask = _tokens(torch, seed=2, n=400, spread=0.3, adv_scale=2.5)
    x = logp.clone().requires_grad_(True)
    tok = _batch(x, old, adv, mask)
    mods = lever.modify(tok)
    assert (mods.eps_low, mods.eps_high, mods.dual_clip) == (eps, eps, 0.0)  # no dual clip
    chosen = (1 - mods.grad_mask).bool()
    cov = _cov(logp, adv, mask)
    r = torch.exp(logp - old)
    ppo_clipped = ((adv > 0) & (r > 1 + eps)) | ((adv < 0) & (r < 1 - eps))
    eligible = (cov > 1.0) & (cov < 5.0) & ~ppo_clipped & (mask > 0)
    if eps == 0.2:
        assert ((cov > 1.0) & (cov < 5.0) & ppo_clipped & (mask > 0)).any()  # the exclusion matters here
    n_pick = torch.clamp(torch.floor(ratio * mask.sum(-1)), min=1)
    assert (eligible.sum(-1) > n_pick).all()
    assert not (chosen & ~eligible).any()
    assert torch.equal(chosen.sum(-1).double(), n_pick)
    # value and gradient of the chosen tokens are zero; the others are PPO's with (ε, ε) and no dual clip
    loss = token_loss(tok, mods, PLANT)
    want = torch.where(chosen, 0.0, _ppo(torch, torch.exp(x - old), adv, eps, eps, None))
    assert torch.allclose(loss, want, atol=1e-12)
    g = _grad(torch, (loss * mask).sum(), x)
    assert torch.allclose(g, _grad(torch, (want * mask).sum(), x), atol=1e-12)
    assert (g[chosen] == 0).all()
    # a fresh draw picks another random subset of the same eligible set
    again = (1 - lever.modify(tok).grad_mask).bool()
    assert not torch.equal(again, chosen) and not (again & ~eligible).any()


def test_clip_cov_takes_every_eligible_token_when_there_are_few(torch):
    lever = make_lever("clip_cov", ratio=0.5)
    logp, old, adv, mask = _tokens(torch, seed=1, loops=1, n=100)
    chosen = (1 - lever.modify(_batch(logp, old, adv, mask)).grad_mask).bool()
    cov = _cov(logp, adv, mask)
    r = torch.exp(logp - old)
    eligible = (cov > 1.0) & (cov < 5.0) & (mask > 0) & ~((adv > 0) & (r > 2.0))  # ε = 1: only r > 2 clips
    assert 0 < eligible.sum() < 0.5 * mask.sum()
    assert torch.equal(chosen, eligible)


def test_clip_cov_picks_at_least_one_token_at_the_authors_ratio(torch):
    lever = make_lever("clip_cov")  # ratio 2e-4: ⌊2e-4·N⌋ = 0 here, so max(·, 1) = 1
    logp, old, adv, mask = _tokens(torch, seed=2, n=400, adv_scale=2.5)
    chosen = 1 - lever.modify(_batch(logp, logp, adv, mask)).grad_mask
    assert chosen.sum(-1).tolist() == [1.0, 1.0]


# ------------------------------------------------------------------- KL-Cov


def test_kl_cov_top_k_and_abs_log_ratio_gradient(torch):
    fraction, beta = 0.01, 0.7
    lever = make_lever("kl_cov", fraction=fraction, beta=beta, loops=2)
    logp, old, adv, mask = _tokens(torch, seed=8, n=1000, spread=0.3)
    x = logp.clone().requires_grad_(True)
    tok = _batch(x, old, adv, mask)
    mods = lever.modify(tok)
    assert (mods.clip, mods.dual_clip) == ("none", 0.0)
    chosen = mods.abs_log_ratio_coef / beta
    assert set(chosen.unique().tolist()) == {0.0, 1.0}
    # k = max(1, ⌊N_valid·fraction⌋) largest cov among valid tokens (verl `compute_policy_loss_kl_cov`)
    cov = torch.where(mask > 0, _cov(logp, adv, mask), -torch.inf)
    for row in range(2):
        k = max(1, int(mask[row].sum().item() * fraction))
        want = torch.zeros(1000, dtype=torch.float64)
        want[torch.topk(cov[row], k).indices] = 1.0
        assert torch.equal(chosen[row], want)
    # loss −A·r (no clip) + β·|log r| on the chosen tokens; gradient −A·r + β·sign(log r)
    loss = token_loss(tok, mods, PLANT)
    r = torch.exp(x - old)
    want = -adv * r + beta * chosen * torch.abs(x - old)
    assert torch.allclose(loss, want, atol=1e-12)
    g = _grad(torch, loss.sum(), x)
    assert torch.allclose(g, -adv * r.detach() + beta * chosen * torch.sign(logp - old), atol=1e-12)


def test_kl_cov_is_inert_on_policy_and_uses_a_fraction(torch):
    lever = make_lever("kl_cov")
    assert lever.acts_through_ratio and (lever.fraction, lever.beta) == (2e-3, 1.0)
    logp, _, adv, mask = _tokens(torch, n=2000)
    x = logp.clone().requires_grad_(True)
    tok = _batch(x, x.detach(), adv, mask)
    mods = lever.modify(tok)
    assert (mods.abs_log_ratio_coef.sum(-1) == torch.floor(2e-3 * mask.sum(-1))).all()  # 0.2 % of tokens
    g = _grad(torch, (token_loss(tok, mods, PLANT) * mask).sum(), x)
    assert torch.allclose(g, -adv * mask, rtol=0, atol=1e-15)  # r ≡ 1 and d|log r|/dlog π = 0 at 0: plain PG
