"""The EntroPIC levers (entropic, entropic_p) against an independent computation of the actuator term.

Each reference below is written from the method's definition (paper, code or methods.md) in
this file, with plain torch/numpy; none calls the lever's own helpers. The lever is only
asked for its `LossModifiers`, which go through the shared loss `pic.levers.token_loss`.

Run: python -m pytest tests/pic/levers/test_entropic.py
"""

from __future__ import annotations

import numpy as np
import pytest
from lever_support import PLANT, TAU, _batch, _grad, _stats, _tokens
from numpy.testing import assert_allclose

from pic.actuator import entropic_adjustment
from pic.levers import LossModifiers, make_lever, token_loss


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
