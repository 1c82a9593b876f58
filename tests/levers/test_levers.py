"""Every lever against an independent small-tensor computation of its authors' formula.

Each reference below is written from the method's definition (paper, code or methods.md) in
this file, with plain torch/numpy; none calls the lever's own helpers. The lever is only
asked for its `LossModifiers`, which go through the shared loss `pic.levers.token_loss`.

Run: python -m pytest tests/levers/test_levers.py
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from pic.actuator import entropic_adjustment
from pic.levers import SKYWORK, TRL, LossModifiers, PolicyDefaults, StepStats, TokenBatch, make_lever, token_loss

TAU = 0.95
PLANT = PolicyDefaults(eps_low=0.2, eps_high=0.2, dual_clip=3.0)  # verl's defaults: ε 0.2/0.2, clip_ratio_c 3


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


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


@pytest.mark.parametrize("normalization", ["all_tokens", "high_prob_tokens"])
@pytest.mark.parametrize("entropy", [0.45, 0.02])  # α > 0 (entropy too high) and α < 0
@pytest.mark.parametrize("on_policy", [True, False])
def test_entropic_term_is_the_actuator_adjustment(torch, normalization, entropy, on_policy):
    lever = make_lever("entropic", kp=2.0, ki=0.0, target=0.1, normalization=normalization, loops=2)
    h = np.array([entropy, entropy + 0.05])
    lever.update(_stats(entropy=h))
    assert_allclose(lever.alpha, np.clip(2.0 * (h - 0.1), -1, 1))
    logp, old, adv, mask = _tokens(torch, seed=3)
    x = logp.clone().requires_grad_(True)
    old = x.detach() if on_policy else old
    tok = _batch(x, old, adv, mask, counts=lever.counts(old, mask))
    mods = lever.modify(tok)
    n = mask.sum(-1)
    extra = (token_loss(tok, mods, PLANT) - token_loss(tok, LossModifiers(), PLANT)) * mask
    term = extra.sum(-1) / n  # the EntroPIC part of a token-mean loss, per loop
    # D: N, or N_h counted on the behaviour policy over the whole mini-batch (on-policy: the current one)
    n_high = ((old.exp() > TAU) * mask).sum(-1)
    alpha = torch.as_tensor(lever.alpha)
    ratio = torch.exp(x - old)
    kwargs = {"mask": mask, "tau": TAU, "normalization": normalization, "axis": -1}
    denom = n if normalization == "all_tokens" else n_high
    ref = entropic_adjustment(ratio, adv, x.detach().exp(), alpha, num_tokens=denom, **kwargs)
    assert torch.allclose(term, ref, atol=1e-12)
    assert torch.allclose(_grad(torch, term.sum(), x), _grad(torch, ref.sum(), x), atol=1e-12)
    if on_policy:  # the actuator's own count of D gives the same term
        assert torch.allclose(term, entropic_adjustment(ratio, adv, x.detach().exp(), alpha, **kwargs), atol=1e-12)


@pytest.mark.parametrize("normalization", ["all_tokens", "high_prob_tokens"])
def test_entropic_on_policy_gradient_is_the_weighted_pg_gradient(torch, normalization):
    lever = make_lever("entropic", kp=1.0, ki=0.0, target=0.2, normalization=normalization, loops=2)
    lever.update(_stats(entropy=np.array([0.5, 0.0])))  # α = +0.3 and −0.2
    logp, _, adv, mask = _tokens(torch, seed=5)
    x = logp.clone().requires_grad_(True)
    tok = _batch(x, x.detach(), adv, mask, counts=lever.counts(x.detach(), mask))
    n = mask.sum(-1, keepdim=True)
    loss = (token_loss(tok, lever.modify(tok), PLANT) * mask).sum(-1, keepdim=True) / n
    grad = _grad(torch, loss.sum(), x)
    # the paper: w = 1 + α·sign(A) on tokens with π > τ; the official code scales α by N/N_h
    high = (logp.exp() > TAU).double()
    alpha = torch.tensor([[0.3], [-0.2]], dtype=torch.float64)
    gain = alpha if normalization == "all_tokens" else alpha * n / (high * mask).sum(-1, keepdim=True)
    w = 1 + gain * torch.sign(adv) * high
    assert torch.allclose(grad, -adv * w * mask / n, atol=1e-12)


def test_entropic_without_error_leaves_the_loss_alone(torch):
    lever = make_lever("entropic", target=0.3)
    lever.update(_stats(entropy=0.3))
    logp, old, adv, mask = _tokens(torch, loops=1)
    assert lever.modify(_batch(logp, old, adv, mask)) == LossModifiers()


@pytest.mark.parametrize(("name", "params", "ki"), [("entropic", {"ki": 0.3}, 0.3), ("entropic_p", {}, 0.0)])
def test_entropic_lever_runs_the_official_pi_law(name, params, ki):
    """α_t = clip(kp·e_t + ki·S_t, −1, 1), S_{t+1} = S_t + e_t, e = H − H* (EntroPIC, arXiv 2511.15248)."""
    hs = [0.9, 0.5, 0.3, 0.05, 0.0, 0.2, 0.12, 2.5, 1.4, 0.1]
    lever = make_lever(name, kp=1.2, **params)  # target 0.1 by default
    s = 0.0
    for k, h in enumerate(hs):
        e = h - 0.1
        alpha = min(max(1.2 * e + ki * s, -1.0), 1.0)
        s += e
        lever.update(_stats(step=k, entropy=h, nll=99.0))
        assert lever.alpha == pytest.approx([alpha], abs=1e-12)


def test_entropic_nll_signal_reads_the_sampled_token_estimate():
    lever = make_lever("entropic", kp=1.0, ki=0.0, target=0.1, signal="nll")
    lever.update(_stats(entropy=5.0, nll=0.35))
    assert lever.alpha == pytest.approx([0.25])


# ---------------------------------------------------------- bonus and KL penalty


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
