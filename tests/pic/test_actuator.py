"""The EntroPIC actuator rule: weights, the loss term, both normalisations, numpy and torch.

Run: python -m pytest tests/pic/test_actuator.py
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from pic.actuator import (
    effective_weights,
    entropic_adjustment,
    entropic_coefficient,
    entropic_weights,
    high_prob_mask,
    normalization_scale,
)


def test_weight_table():
    prob = np.array([0.99, 0.99, 0.99, 0.5, 0.5, 0.96])
    adv = np.array([1.0, -2.0, 0.0, 1.0, -1.0, 0.3])
    w = entropic_weights(prob, adv, 0.25, tau=0.95)
    assert w.tolist() == [1.25, 0.75, 1.0, 1.0, 1.0, 1.25]


def test_threshold_is_strict():
    assert high_prob_mask(np.array([0.95, 0.9500001]), 0.95).tolist() == [0.0, 1.0]


@pytest.mark.parametrize("tau", [0.0, 1.0, -0.1, 1.5])
def test_tau_outside_open_unit_interval_is_refused(tau):
    with pytest.raises(ValueError, match=r"tau must be in \(0, 1\)"):
        entropic_weights(np.ones(2), np.ones(2), 0.1, tau=tau)


def test_unknown_normalization_is_refused():
    with pytest.raises(ValueError, match="normalization must be one of"):
        entropic_adjustment(np.ones(2), np.ones(2), np.ones(2), 0.1, normalization="mean")


def _finite_difference(f, x, h=1e-6):
    g = np.zeros_like(x)
    for i in range(x.size):
        d = np.zeros_like(x)
        d.flat[i] = h
        g.flat[i] = (f(x + d) - f(x - d)) / (2 * h)
    return g


batches = st.integers(2, 30).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n),
        st.lists(st.floats(-3.0, 3.0), min_size=n, max_size=n),
        st.lists(st.booleans(), min_size=n, max_size=n),
    )
)


@given(batch=batches, alpha=st.floats(-1.0, 1.0), tau=st.floats(0.5, 0.99))
def test_paper_normalization_gradient_equals_weights(batch, alpha, tau):
    """∂/∂ratio of [token-mean PG loss + adjustment] = −A·w/N with w = 1 ± α (finite differences)."""
    prob, adv, valid = (np.asarray(x, dtype=float) for x in batch)
    mask = valid * 1.0
    n = max(mask.sum(), 1.0)

    def loss(ratio):
        base = (-ratio * adv * mask).sum() / n
        return base + entropic_adjustment(ratio, adv, prob, alpha, mask=mask, tau=tau)

    grad = _finite_difference(loss, np.ones_like(prob))
    want = -adv * entropic_weights(prob, adv, alpha, tau) * mask / n
    assert_allclose(grad, want, atol=1e-6)


@given(batch=batches, alpha=st.floats(-1.0, 1.0), tau=st.floats(0.5, 0.99))
def test_official_normalization_gain_is_alpha_n_over_nh(batch, alpha, tau):
    prob, adv, valid = (np.asarray(x, dtype=float) for x in batch)
    mask = valid * 1.0
    n = max(mask.sum(), 1.0)
    n_high = (high_prob_mask(prob, tau) * mask).sum()

    def loss(ratio):
        base = (-ratio * adv * mask).sum() / n
        return base + entropic_adjustment(ratio, adv, prob, alpha, mask=mask, tau=tau, normalization="high_prob_tokens")

    grad = _finite_difference(loss, np.ones_like(prob))
    w = effective_weights(prob, adv, alpha, tau=tau, normalization="high_prob_tokens", n_tokens=n, n_high=n_high)
    assert_allclose(grad, -adv * w * mask / n, atol=1e-6)


def test_official_normalization_can_flip_a_negative_tokens_gradient():
    # 10 tokens, 2 confident: N/N_h = 5, so α = 0.5 gives weight 1 − 2.5 < 0 on a
    # confident negative token: its gradient now *raises* its probability.
    prob = np.array([0.99, 0.99] + [0.3] * 8)
    adv = np.array([1.0, -1.0] + [0.5] * 8)
    w_official = effective_weights(prob, adv, 0.5, normalization="high_prob_tokens", n_tokens=10, n_high=2)
    w_paper = effective_weights(prob, adv, 0.5)
    assert w_official[1] == pytest.approx(-1.5)
    assert w_paper[1] == pytest.approx(0.5)


def test_empty_selection_contributes_zero():
    ratio = np.ones(4)
    out = entropic_adjustment(ratio, np.ones(4), np.full(4, 0.2), 0.7, normalization="high_prob_tokens")
    assert out == 0.0


def test_axis_gives_one_term_per_loop():
    prob = np.array([[0.99, 0.2], [0.99, 0.99]])
    adv = np.array([[1.0, 1.0], [-1.0, 2.0]])
    alpha = np.array([0.5, -0.5])
    out = entropic_adjustment(np.ones((2, 2)), adv, prob, alpha, axis=-1)
    assert_allclose(out, [0.5 * (-1.0) / 2, -0.5 * (-3.0) / 2])


def test_torch_autograd_through_logits_matches_the_weighted_loss():
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, 7, generator=g, dtype=torch.float64) * 4
    tokens = torch.randint(0, 7, (6, 5), generator=g)
    adv = torch.randn(6, 1, generator=g, dtype=torch.float64).expand(6, 5)
    mask = (torch.rand(6, 5, generator=g) > 0.2).double()
    alpha, tau = 0.6, 0.7

    def grad_of(loss_fn):
        z = logits.clone().requires_grad_(True)
        logp = torch.log_softmax(z, -1).gather(-1, tokens[..., None])[..., 0]
        loss_fn(logp).backward()
        return z.grad

    n = mask.sum()

    def controlled(logp):
        ratio = torch.exp(logp - logp.detach())
        base = (-ratio * adv * mask).sum() / n
        return base + entropic_adjustment(ratio, adv, logp.detach().exp(), alpha, mask=mask, tau=tau)

    def weighted(logp):
        ratio = torch.exp(logp - logp.detach())
        w = entropic_weights(logp.detach().exp(), adv, alpha, tau)
        return (-w * ratio * adv * mask).sum() / n

    assert torch.allclose(grad_of(controlled), grad_of(weighted), atol=1e-12)
    # the controller had something to act on
    assert (entropic_weights(logits.softmax(-1).max(-1).values, adv, alpha, tau) != 1).any()


# ------------------------------------------------------------ the one per-token formula
def _coefficient_by_hand(prob, adv, alpha, tau, mask, scale):
    """c_t = −α·|A_t|·1[π_t > τ]·m_t·scale, one token at a time."""
    return np.array(
        [
            -alpha * abs(a) * (1.0 if p > tau else 0.0) * m * scale
            for p, a, m in zip(prob.tolist(), adv.tolist(), mask.tolist(), strict=True)
        ]
    )


@given(batch=batches, alpha=st.floats(-1.0, 1.0), tau=st.floats(0.5, 0.99), scale=st.floats(0.5, 20.0))
def test_entropic_coefficient_is_the_formula(batch, alpha, tau, scale):
    prob, adv, valid = (np.asarray(x, dtype=float) for x in batch)
    got = entropic_coefficient(prob, adv, alpha, tau=tau, mask=valid, scale=scale)
    assert_allclose(got, _coefficient_by_hand(prob, adv, alpha, tau, valid, scale), rtol=1e-12, atol=1e-15)


def test_normalization_scale_is_n_over_d():
    assert normalization_scale("all_tokens", 40, 7) == 1.0
    assert normalization_scale("high_prob_tokens", 40.0, 8.0) == 5.0
    assert normalization_scale("high_prob_tokens", 40.0, 0.0) == 40.0  # empty selection: no 0/0
    assert_allclose(normalization_scale("high_prob_tokens", np.array([6.0, 6.0]), np.array([3.0, 2.0])), [2.0, 3.0])
    with pytest.raises(ValueError, match=r"^normalization must be one of \('all_tokens', 'high_prob_tokens'\)"):
        normalization_scale("mean", 1, 1)


@given(batch=batches, alpha=st.floats(-1.0, 1.0), tau=st.floats(0.5, 0.99))
def test_term_and_weights_are_derived_from_the_coefficient(batch, alpha, tau):
    """Σ c_t·r_t / N = `entropic_adjustment` (both D), and w = 1 + α·(N/D)·sign(A)·1[π > τ] (by hand)."""
    prob, adv, valid = (np.asarray(x, dtype=float) for x in batch)
    ratio = np.linspace(0.7, 1.3, prob.size)
    n = valid.sum()
    n_high = ((prob > tau) * valid).sum()
    for normalization, scale in (("all_tokens", 1.0), ("high_prob_tokens", n / n_high if n_high > 0 else n)):
        c = _coefficient_by_hand(prob, adv, alpha, tau, valid, scale)
        term = entropic_adjustment(ratio, adv, prob, alpha, mask=valid, tau=tau, normalization=normalization)
        assert term == pytest.approx((c * ratio).sum() / max(n, 1.0), rel=1e-9, abs=1e-12)
        w = effective_weights(prob, adv, alpha, tau=tau, normalization=normalization, n_tokens=n, n_high=n_high)
        by_hand = [1.0 + alpha * scale * np.sign(a) * (p > tau) for p, a in zip(prob, adv, strict=True)]
        assert_allclose(w, by_hand, rtol=1e-12)
