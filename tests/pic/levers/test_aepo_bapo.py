"""AEPO (bang-bang temperature, REINFORCE on positive extra samples) and BAPO (adaptive ratio bounds).

The references are written here from the authors' released code (AEPO: 597358816/AEPO
``ray_trainer.py``; BAPO: WooooDyy/BAPO ``recipe/bapo/policy_loss.py``) as plain Python loops;
none calls the levers' helpers.

Run: python -m pytest tests/pic/levers/test_aepo_bapo.py
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from lever_support import PLANT, _batch, _ppo, _stats
from numpy.testing import assert_allclose

from pic.levers import ExtraSamples, StepStats, TokenBatch, make_lever, token_loss


def _nbatch(logp, old, adv, mask):
    return TokenBatch(logp=logp, old_logp=old, adv=adv, mask=mask, num_tokens=mask.sum(-1, keepdims=True))


# ---------------------------------------------------------------------- AEPO


def _aepo_reference(adv_row, entropy, target, main_samples, share=60 / 2560, threshold=0.05):
    """The code's selection for one loop: the first n positives (A > 0.05), A := 1; n = min(cap, #pos), // 2 above."""
    positives = [i for i, a in enumerate(adv_row) if a > threshold]
    cap = int(share * main_samples)
    n = min(cap, len(positives))
    if entropy > target:
        n = n // 2
    chosen = set(positives[:n])
    adv = [1.0 if i in chosen else a for i, a in enumerate(adv_row)]
    keep = [1.0 if i in chosen else 0.0 for i in range(len(adv_row))]
    return adv, keep


def test_aepo_temperature_is_bang_bang_on_the_measured_entropy():
    lever = make_lever("aepo", target=0.5, loops=4)
    lever.update(StepStats(step=0, total_steps=5, entropy=np.array([0.1, 0.5, 0.5001, 2.0])))
    spec = lever.extra_samples(_stats())
    assert isinstance(spec, ExtraSamples) and spec.fraction == 0.25
    assert_allclose(spec.temperature, [1.2, 1.2, 0.8, 0.8])  # H ≤ H*: T_high (the code's `entropy <= entropy_base`)
    assert make_lever("grpo").extra_samples(_stats()) is None


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("main_samples", [2560, 640, 100])
def test_aepo_selection_is_the_codes(backend, main_samples, torch):
    rng = np.random.default_rng(main_samples)
    entropy = np.array([0.2, 0.9, 0.5])
    adv = rng.normal(size=(3, 640)) * (rng.random((3, 640)) < 0.7)  # many exact zeros, as in all-equal groups
    adv[:, :5] = 0.05  # on the threshold: not positive
    lever = make_lever("aepo", target=0.5, loops=3)
    lever.update(StepStats(step=0, total_steps=1, entropy=entropy))
    x = adv if backend == "numpy" else torch.tensor(adv)
    got_adv, got_keep = lever.extra_advantages(x, main_samples=main_samples)
    got_adv, got_keep = np.asarray(got_adv), np.asarray(got_keep)
    for i in range(3):
        ref_adv, ref_keep = _aepo_reference(adv[i], entropy[i], 0.5, main_samples)
        assert_allclose(got_keep[i], ref_keep)
        assert_allclose(got_adv[i][got_keep[i] > 0], 1.0)
        assert_allclose(got_adv[i], ref_adv)
    cap = int(60 / 2560 * main_samples)
    assert lever.metrics()["extra_kept"] == pytest.approx(np.mean([cap, cap // 2, cap]))


def test_aepo_keeps_no_sample_without_positives():
    lever = make_lever("aepo", loops=1)
    lever.update(_stats(entropy=0.1))
    adv, keep = lever.extra_advantages(np.array([[-1.0, 0.0, 0.04]]), main_samples=2560)
    assert keep.sum() == 0 and lever.metrics()["extra_kept"] == 0


# ---------------------------------------------------------------------- BAPO


def _bapo_reference(ratio, adv, mask, rho_0=0.5, lo=(0.6, 0.9, 0.05), hi=(1.2, 3.0, 0.1)):
    """The released bound search for one loop, with its P/N test (target P/N = ρ₀/(1 − ρ₀))."""
    target = rho_0 / (1 - rho_0)

    def pos_neg(c_low, c_high):
        p = n = 0.0
        for r, a, m in zip(ratio, adv, mask, strict=True):
            eff = (min(r, c_high) if a >= 0 else max(r, c_low)) * a * m
            p, n = p + max(eff, 0.0), n + max(-eff, 0.0)
        return math.inf if n <= 0 else p / n

    c_low, c_high = lo[0], hi[0]
    value = pos_neg(c_low, c_high)
    while value < target and c_low < lo[1]:
        c_low = min(c_low + lo[2], lo[1])
        value = pos_neg(c_low, c_high)
    while value < target and c_high < hi[1]:
        c_high = min(c_high + hi[2], hi[1])
        value = pos_neg(c_low, c_high)
    return c_low, c_high


def _off_policy(seed, loops=4, n=200, neg_bias=0.0):
    rng = np.random.default_rng(seed)
    logp = np.log(rng.uniform(0.05, 0.95, (loops, n)))
    old = logp + 0.5 * rng.standard_normal((loops, n))
    adv = rng.standard_normal((loops, n)) - neg_bias * np.arange(loops)[:, None]
    mask = (rng.random((loops, n)) > 0.1) * 1.0
    return logp, old, adv, mask


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bapo_bounds_are_the_released_search(seed):
    logp, old, adv, mask = _off_policy(seed, neg_bias=0.3)
    lever = make_lever("bapo", loops=4)
    mods = lever.modify(_nbatch(logp, old, adv, mask))
    ratio = np.exp(logp - old)
    for i in range(4):
        c_low, c_high = _bapo_reference(ratio[i], adv[i], mask[i])
        assert 1 - mods.eps_low[i, 0] == pytest.approx(c_low, abs=1e-12)
        assert 1 + mods.eps_high[i, 0] == pytest.approx(c_high, abs=1e-12)
    m = lever.metrics()
    assert {"clip_low", "clip_high", "share"} <= set(m)
    # the more negative the advantages, the wider the upper bound it needed (loops ordered by bias)
    assert np.all(np.diff(1 + mods.eps_high[:, 0]) >= 0) and mods.eps_high[-1, 0] > 0.2


def test_bapo_loss_is_ppo_with_the_searched_ratio_bounds(torch):
    logp, old, adv, mask = (torch.tensor(a) for a in _off_policy(5, neg_bias=0.4))
    x = logp.clone().requires_grad_(True)
    lever = make_lever("bapo", loops=4)
    tok = _batch(x, old, adv, mask)
    mods = lever.modify(tok)
    loss = (token_loss(tok, mods, PLANT) * mask).sum()
    lo, hi = 1 - mods.eps_low, 1 + mods.eps_high
    r = (x - old).exp()
    ref = (_ppo(torch, r, adv, 1 - lo, hi - 1, PLANT.dual_clip) * mask).sum()
    assert_allclose(loss.item(), ref.item(), rtol=1e-12)
    g, g_ref = torch.autograd.grad(loss, x, retain_graph=True)[0], torch.autograd.grad(ref, x)[0]
    assert_allclose(g.numpy(), g_ref.numpy(), atol=1e-12)


def test_bapo_unclipped_measure_drops_clipped_negatives():
    """'unclipped_tokens': a negative token below c_low stops counting, so raising c_low can meet ρ₀."""
    ratio = np.array([[0.5, 0.5, 1.0]])
    adv = np.array([[-1.0, -1.0, 1.0]])
    logp, old = np.log(ratio) + np.log(0.5), np.full((1, 3), np.log(0.5))
    mask = np.ones((1, 3))
    code = make_lever("bapo")
    code.modify(_nbatch(logp, old, adv, mask))
    assert code.metrics()["clip_low"] == pytest.approx(0.9)  # the code's measure: c_low never helps
    other = make_lever("bapo", measure="unclipped_tokens")
    other.modify(_nbatch(logp, old, adv, mask))
    # at c_low 0.6 both negatives (r = 0.5 < 0.6) are clipped: P = 1, N = 0, ρ = 1 at once
    assert other.metrics()["clip_low"] == pytest.approx(0.6) and other.metrics()["share"] == 1.0


def test_bapo_is_inert_on_policy():
    logp, _, adv, mask = _off_policy(3)
    lever = make_lever("bapo", loops=4)
    assert lever.acts_through_ratio
    tok = _nbatch(logp, logp, adv, mask)
    mods = lever.modify(tok)
    assert_allclose(token_loss(tok, mods, PLANT), -adv)  # r ≡ 1: plain −A whatever the bounds


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"rho_0": 1.0}, "bapo.rho_0"),
        ({"lower_max": 0.5}, "bapo.lower_max"),
        ({"upper_start": 0.9}, "bapo.upper_start"),
        ({"upper_step": 0.0}, "bapo.upper_step"),
        ({"measure": "both"}, "bapo.measure"),
    ],
)
def test_bapo_bad_parameters_name_the_field(params, field):
    with pytest.raises(ValueError) as err:
        make_lever("bapo", **params)
    assert str(err.value).startswith(field)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"target": -0.1}, "aepo.target"),
        ({"temperature_high": 0.0}, "aepo.temperature_high"),
        ({"fraction": 1.5}, "aepo.fraction"),
        ({"reinforce_share": 0.0}, "aepo.reinforce_share"),
        ({"signal": "kl"}, "aepo.signal"),
    ],
)
def test_aepo_bad_parameters_name_the_field(params, field):
    with pytest.raises(ValueError) as err:
        make_lever("aepo", **params)
    assert str(err.value).startswith(field)
