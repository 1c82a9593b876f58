"""AEnt: the clamped entropy, its gradient on the bandit, and the dead-band coefficient rule.

References are written independently: the clamped entropy by sorting and dropping the ⌊f·V⌋
smallest logits by hand, its gradient by torch autograd, the coefficient rule as AReaL's
``aent_ppo_update`` states it (c −= lr·(min(0, H − H_low) + max(0, H − H_high)), clipped).

Run: python -m pytest tests/pic/levers/test_aent.py
"""

from __future__ import annotations

import numpy as np
import pytest

from pic.levers import LossModifiers, StepStats, TokenBatch, make_lever
from pic.levers.bonus import clamped_count, clamped_entropy
from sim.levers import run_lever
from sim.methods import methods_problem
from sim.plant import PlantConfig, _with_bonus

ON = PlantConfig(mode="sampled", group_size=16, lr=0.5)


def _brute_clamped(z, fraction):
    """Drop the k smallest logits of one row by sorting, renormalise, entropy (nats)."""
    k = int(len(z) * fraction)
    kept = np.sort(z)[k:]
    p = np.exp(kept - kept.max())
    p /= p.sum()
    return float(-(p * np.log(p)).sum())


@pytest.mark.parametrize("fraction", [0.0, 0.2, 0.45])
def test_clamped_entropy_is_the_entropy_of_the_kept_logits(fraction):
    rng = np.random.default_rng(0)
    z = 2.0 * rng.standard_normal((3, 4, 10))
    h, q = clamped_entropy(z, fraction)
    k = clamped_count(10, fraction)
    assert k == int(10 * fraction)
    for idx in np.ndindex(3, 4):
        assert h[idx] == pytest.approx(_brute_clamped(z[idx], fraction), abs=1e-12)
        assert (q[idx] == 0).sum() == k and q[idx].sum() == pytest.approx(1.0)
        assert np.all(q[idx][np.argsort(z[idx])[:k]] == 0)  # the dropped ones are the smallest logits
    if fraction == 0.0:
        p = np.exp(z - z.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        assert np.allclose(h, -(p * np.log(p)).sum(-1))


def test_the_bandit_bonus_step_is_the_autograd_gradient_of_the_clamped_entropy(torch):
    """Δz = −η·∂(−c·H^c)/∂z per context, against torch autograd through a masked softmax."""
    rng = np.random.default_rng(1)
    z = rng.standard_normal((2, 3, 10))
    z = z - np.log(np.exp(z).sum(-1, keepdims=True))
    hc, q = clamped_entropy(z, 0.2)
    signals = {"clamped_q": q, "clamped_h": hc[..., None]}
    coef = np.array([[0.3], [0.05]])
    step = _with_bonus(np.zeros_like(z), z, np.exp(z), LossModifiers(clamped_entropy_coef=coef), signals, 0.5)
    zt = torch.tensor(z, requires_grad=True)
    dropped = torch.tensor(q == 0)
    zc = zt.masked_fill(dropped, -torch.inf)
    logq = torch.log_softmax(zc, -1).masked_fill(dropped, 0.0)
    h = -(logq.exp() * logq).sum(-1)  # (2, 3)
    loss = -(torch.tensor(coef) * h).sum()
    (g,) = torch.autograd.grad(loss, zt)
    assert np.allclose(step, -0.5 * g.numpy(), atol=1e-12)
    assert np.allclose(h.detach().numpy(), hc)


def test_the_bandit_bonus_needs_a_clamped_lever():
    z = np.zeros((1, 1, 4))
    none = {"clamped_q": None, "clamped_h": None}
    with pytest.raises(ValueError, match="clamped_entropy_fraction > 0"):
        _with_bonus(z, z, np.exp(z), LossModifiers(clamped_entropy_coef=0.1), none, 0.5)


def _feed(lever, h_values, step):
    """One RL step: update, then two micro-batches with clamped entropies ``h_values`` (L, 2, n)."""
    lever.update(StepStats(step=step, total_steps=20, entropy=0.3))
    coefs = []
    for mb in range(h_values.shape[1]):
        h = h_values[:, mb]
        mask = np.ones_like(h)
        mask[:, -1] = 0.0  # a padded token does not count
        tok = TokenBatch(h * 0, h * 0, h * 0 + 1, mask, num_tokens=mask.sum(-1, keepdims=True), clamped_entropy=h)
        coefs.append(lever.modify(tok).clamped_entropy_coef)
    return np.asarray(coefs[0]).reshape(-1)


def test_dead_band_integral_matches_the_authors_rule_after_warmup():
    lever = make_lever("aent", warmup_steps=2, lr=0.01, loops=2)
    rng = np.random.default_rng(2)
    c = np.full(2, 1e-3)  # AReaL's defaults: c0 1e-3, band [0.1, 0.5], lr as given, box [1e-5, 0.01]
    for step in range(12):
        scale = np.array([0.05, 1.2])[:, None, None]  # loop 0 below the band, loop 1 above it
        h = scale * rng.uniform(0.5, 1.5, (2, 2, 6))
        applied = _feed(lever, h, step)
        assert np.allclose(applied, c)  # this step uses the coefficient set after the previous step
        mean = (h[..., :-1]).sum(axis=(1, 2)) / 10  # the step's token mean over its updates (padding left out)
        if step > 2:  # AReaL: after step j's updates when j > warmup_steps
            c = np.clip(c - 0.01 * (np.minimum(0, mean - 0.1) + np.maximum(0, mean - 0.5)), 1e-5, 0.01)
        assert lever.metrics()["clamped_entropy"] == pytest.approx(mean.mean())
    assert c[0] > 1e-3 and c[1] == pytest.approx(1e-5)  # the rule moved both, in opposite directions


def test_inside_the_band_or_not_adaptive_the_coefficient_holds():
    for params, scale in (({}, 0.3), ({"adaptive": False}, 2.0)):
        lever = make_lever("aent", **params)
        for step in range(6):
            applied = _feed(lever, np.full((1, 2, 4), scale), step)
            assert applied == pytest.approx(1e-3)


def test_aent_needs_the_clamped_entropy():
    lever = make_lever("aent")
    lever.update(StepStats(step=0, total_steps=1, entropy=0.3))
    z = np.zeros((1, 2))
    with pytest.raises(ValueError, match="needs TokenBatch.clamped_entropy"):
        lever.modify(TokenBatch(z, z, z, z + 1, num_tokens=2.0))
    assert lever.clamped_entropy_fraction == 0.2 and make_lever("grpo").clamped_entropy_fraction == 0.0


def test_aent_raises_entropy_when_its_band_lies_above_it():
    """A band above the policy's clamped entropy drives c up, and the bonus holds entropy above GRPO's."""
    bandit, z0 = methods_problem(0)
    seeds = [0, 1, 2, 3]
    grpo = run_lever(bandit, z0, make_lever("grpo", loops=4), ON, steps=80, seeds=seeds)
    params = {"entropy_low": 1.2, "entropy_high": 1.4, "lr": 0.05, "coef_max": 0.5}
    aent = run_lever(bandit, z0, make_lever("aent", loops=4, **params), ON, steps=80, seeds=seeds)
    coef = aent.metrics["entropy_coef"]
    assert coef[0] == pytest.approx(1e-3) and coef[-1] > 0.05 and np.all(np.diff(coef) >= -1e-15)
    assert aent.entropy[-10:].mean() > grpo.entropy[-10:].mean() + 0.2
    default = run_lever(bandit, z0, make_lever("aent", loops=4), ON, steps=80, seeds=seeds)
    assert default.metrics["entropy_coef"][-1] == pytest.approx(1e-5)  # clamped H above 0.5: c falls to its floor


def test_sync_makes_every_rank_measure_the_global_clamped_entropy():
    """Two ranks seeing different tokens end with the same H̄ (Σ over both ranks' tokens) and the same c."""
    h_rank = [np.full((1, 2, 5), 0.02), np.full((1, 2, 5), 0.9)]  # one below the band, one above
    ranks = [make_lever("aent", lr=0.01) for _ in h_rank]
    for step in range(3):
        for lever, h in zip(ranks, h_rank, strict=True):
            _feed(lever, h, step)
        sums = [{"sum": float(lv._sum[0]), "count": float(lv._count[0])} for lv in ranks]
        total = {k: sums[0][k] + sums[1][k] for k in sums[0]}  # what a sum-all-reduce returns on each rank
        for lever in ranks:
            lever.sync(lambda values, total=total: total)
    expected = (0.02 * 8 + 0.9 * 8) / 16  # 4 valid tokens per micro-batch, 2 micro-batches, 2 ranks
    assert [lv.metrics()["clamped_entropy"] for lv in ranks] == pytest.approx([expected] * 2)
    for lever in ranks:
        lever.update(StepStats(step=3, total_steps=20, entropy=0.3))
    assert ranks[0].state_dict() == ranks[1].state_dict()
    with pytest.raises(ValueError, match="loops = 1"):
        make_lever("aent", loops=2).sync(lambda v: v)
