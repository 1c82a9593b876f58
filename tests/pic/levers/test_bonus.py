"""The loss-coefficient levers (entropy bonus, KL penalty, adaptive entropy, SAC) against their authors' formulas.

Each reference below is written from the method's definition (paper, code or methods.md) in
this file, with plain torch/numpy; none calls the lever's own helpers. The lever is only
asked for its `LossModifiers`, which go through the shared loss `pic.levers.token_loss`.

Run: python -m pytest tests/pic/levers/test_bonus.py
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from lever_support import PLANT, _batch, _grad, _stats, _tokens

from pic.levers import SKYWORK, TRL, LossModifiers, TokenBatch, make_lever, token_loss


def test_entropy_bonus_sets_only_the_coefficient(torch):
    lever = make_lever("entropy_bonus", coef=0.02)
    assert lever.needs_entropy and not lever.needs_reference and not lever.acts_through_ratio
    logp, old, adv, mask = _tokens(torch)
    mods = lever.modify(_batch(logp, old, adv, mask))
    assert mods == LossModifiers(entropy_coef=0.02)
    assert make_lever("entropy_bonus").modify(_batch(logp, old, adv, mask)).entropy_coef == 0.001


def test_kl_penalty_is_the_clamped_k3_estimator(torch):
    """verl ``low_var_kl``: δ = log π_ref − log π, k3 = e^δ − δ − 1 clamped to ±10, times kl_loss_coef."""
    lever = make_lever("kl_penalty", coef=0.05)
    assert lever.needs_reference
    logp, old, adv, mask = _tokens(torch, loops=1, n=32)
    ref = logp + 0.5 * torch.randn(logp.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ref[0, :3] = logp[0, :3] + torch.tensor([5.0, 2.0, -12.0], dtype=torch.float64)  # k3 = 142, 4.4, 11: ±10 clamp
    x = logp.clone().requires_grad_(True)
    tok = _batch(x, old, adv, mask, ref_logp=ref)
    mods = lever.modify(tok)
    assert mods.kl_coef == 0.05 and mods.entropy_coef == 0.0
    extra = token_loss(tok, mods, PLANT) - token_loss(tok, LossModifiers(), PLANT)
    delta = ref - x
    ref_term = 0.05 * torch.clamp(torch.exp(delta) - delta - 1, -10, 10)
    assert torch.allclose(extra, ref_term, atol=1e-12)
    g = _grad(torch, extra.sum(), x)
    assert torch.allclose(g, _grad(torch, ref_term.sum(), x), atol=1e-12)
    assert g[0, 0] == 0 and g[0, 2] == 0 and g[0, 1] != 0


# --------------------------------------------------------- adaptive coefficients


def _skywork(es, *, tgt, delta, c0, cmin, cmax):
    """Skywork-OR1 `EntController`: after step k's actor update, e_k < tgt → c += Δ else c −= Δ, clipped;
    gate = 1[e_k < tgt]; step k + 1's loss uses c·gate (e = −mean log π_old)."""
    c, gate, applied = c0, 1.0, []
    for e in es:
        applied.append(c * gate)
        c = min(max(c + delta if e < tgt else c - delta, cmin), cmax)
        gate = 1.0 if e < tgt else 0.0
    return applied


def _trl(hs, *, tgt, delta, c0, cmin, cmax):
    """TRL `_compute_loss`: apply coef if last_world_entropy ≤ target (initially +inf) else 0; at
    sync_gradients: H ≤ tgt → coef = min(coef + δ, max) else max(coef − δ, min); last H = H."""
    coef, last, applied = c0, math.inf, []
    for h in hs:
        applied.append(coef if last <= tgt else 0.0)
        coef = min(coef + delta, cmax) if h <= tgt else max(coef - delta, cmin)
        last = h
    return applied


def _applied(lever, seq, signal):
    """The entropy coefficient each step's loss gets, feeding ``seq`` as the lever's signal only."""
    ones = np.ones((1, 4))
    out = []
    for k, v in enumerate(seq):
        lever.update(_stats(step=k, total=len(seq), entropy=v if signal == "entropy" else 7.0, nll=v))
        out.append(np.asarray(lever.modify(TokenBatch(-ones, -ones, ones, ones, num_tokens=4.0)).entropy_coef).item())
    return out


def test_adaptive_presets_are_the_authors_settings():
    assert SKYWORK == {
        "target": 0.2,
        "delta": 1e-4,
        "coef_init": 0.0,
        "coef_max": 0.005,
        "strict": True,
        "signal": "nll",
        "gate_init": True,
    }
    assert TRL == {
        "target": 0.2,
        "delta": 0.005,
        "coef_init": 0.0,
        "coef_max": 1.0,
        "strict": False,
        "signal": "entropy",
        "gate_init": False,
    }


SEQ = [0.1, 0.2, 0.1, 0.1, 0.1, 0.3, 0.2, 0.05]  # hits the target exactly at steps 1 and 6


def test_skywork_and_trl_differ_on_a_hand_made_sequence():
    kw = {"target": 0.2, "delta": 0.1, "coef_max": 0.25}
    sky = _applied(make_lever("adaptive_entropy_skywork", **kw), SEQ, "nll")
    trl = _applied(make_lever("adaptive_entropy_trl", **kw), SEQ, "entropy")
    # by hand: step k applies what step k − 1 measured; e = tgt steps Skywork down and gates it off (strict <)
    # but steps TRL up with the gate on (≤); both saturate at c_max = 0.25
    assert sky == pytest.approx([0.0, 0.1, 0.0, 0.1, 0.2, 0.25, 0.0, 0.0])
    assert trl == pytest.approx([0.0, 0.1, 0.2, 0.25, 0.25, 0.25, 0.0, 0.25])
    ref = {"tgt": 0.2, "delta": 0.1, "c0": 0.0, "cmin": 0.0, "cmax": 0.25}
    assert sky == pytest.approx(_skywork(SEQ, **ref))
    assert trl == pytest.approx(_trl(SEQ, **ref))


@pytest.mark.parametrize("name", ["adaptive_entropy_skywork", "adaptive_entropy_trl"])
def test_adaptive_matches_its_reference_on_a_random_sequence(name):
    seq = [0.1] * 8 + [0.3] * 12 + list(np.random.default_rng(4).uniform(0.0, 0.4, 40))
    kw = {"target": 0.2, "delta": 0.01, "coef_init": 0.03, "coef_min": 0.005, "coef_max": 0.08}
    ref = _skywork if name.endswith("skywork") else _trl
    got = _applied(make_lever(name, **kw), seq, "nll" if name.endswith("skywork") else "entropy")
    assert got == pytest.approx(ref(seq, tgt=0.2, delta=0.01, c0=0.03, cmin=0.005, cmax=0.08), abs=1e-15)
    assert min(got) == 0.0 and max(got) == pytest.approx(0.08)  # gated off, and clipped at c_max


def test_trl_applies_no_bonus_in_its_first_window_skywork_does():
    sky = make_lever("adaptive_entropy_skywork", coef_init=0.003)
    trl = make_lever("adaptive_entropy_trl", coef_init=0.003)
    sky.update(_stats(entropy=0.0, nll=0.1))
    trl.update(_stats(entropy=0.1, nll=0.0))
    assert sky.metrics()["entropy_coef"] == 0.003
    assert trl.metrics()["entropy_coef"] == 0.0


def test_adaptive_reads_its_own_signal(torch):
    """Skywork is driven by −mean log π_old (nll), TRL by the full-vocabulary entropy."""
    sky = make_lever("adaptive_entropy_skywork", delta=0.001)
    trl = make_lever("adaptive_entropy_trl")
    for lever in (sky, trl):
        for k in range(2):
            lever.update(_stats(step=k, entropy=0.5, nll=0.1))  # H above target, NLL below
    assert sky.metrics()["entropy_coef"] == pytest.approx(0.001)
    assert trl.metrics()["entropy_coef"] == 0.0
    logp, old, adv, mask = _tokens(torch)
    mods = sky.modify(_batch(logp, old, adv, mask))
    assert torch.is_tensor(mods.entropy_coef) and float(mods.entropy_coef) == pytest.approx(0.001)
    assert trl.modify(_batch(logp, old, adv, mask)) == LossModifiers()


# --------------------------------------------------------------- SAC temperature


def test_sac_temperature_is_adam_on_log_coef(torch):
    """SB3 `SAC.train`: ent_coef = exp(log_ent_coef) read first, then Adam on −log c·(log π + H̄)."""
    target, lr, c0 = 0.3, 0.05, 0.01
    lever = make_lever("sac_temperature", target=target, coef_init=c0, lr=lr)
    log_c = torch.tensor(math.log(c0), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([log_c], lr=lr, betas=(0.9, 0.999), eps=1e-8)
    logp, old, adv, mask = _tokens(torch, loops=1)
    hs = np.random.default_rng(0).uniform(0.0, 0.8, 40)
    hs[:5] = 0.6  # a run above target first: c must fall
    coefs = []
    for k, h in enumerate(hs):
        used = float(torch.exp(log_c.detach()))
        log_prob = torch.full((8,), -h, dtype=torch.float64)  # sampled log-probs, mean = −Ĥ
        loss = -(log_c * (log_prob + target).detach()).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        lever.update(_stats(step=k, entropy=9.0, nll=float(h)))
        coef = lever.modify(_batch(logp, old, adv, mask)).entropy_coef
        assert float(coef) == pytest.approx(used, rel=1e-12)
        coefs.append(used)
    assert lever.metrics()["log_coef"] == pytest.approx(float(log_c.detach()), rel=1e-12)
    assert coefs[0] == pytest.approx(c0) and coefs[5] < coefs[1] < coefs[0]


# ---------------------------------------------------------------------- DAPO
