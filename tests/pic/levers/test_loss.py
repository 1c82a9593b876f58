"""The shared per-token loss: closed-form derivative vs torch autograd, and PPO/CE-GPPO by hand.

Run: python -m pytest tests/pic/levers/test_loss.py
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pic.levers import LossModifiers, PolicyDefaults, TokenBatch, token_loss, token_loss_grad  # noqa: E402


def _tokens(seed=0, loops=2, n=40, ref=False, spread=0.6):
    g = torch.Generator().manual_seed(seed)
    logp = torch.log(torch.rand(loops, n, generator=g, dtype=torch.float64) * 0.98 + 0.01)
    old = logp + spread * torch.randn(loops, n, generator=g, dtype=torch.float64)
    adv = torch.randn(loops, n, generator=g, dtype=torch.float64)
    mask = (torch.rand(loops, n, generator=g) > 0.1).double()
    ref_logp = logp + 0.5 * torch.randn(loops, n, generator=g, dtype=torch.float64) if ref else None
    return logp, old, adv, mask, ref_logp


MODIFIERS = {
    "ppo": lambda L, n: LossModifiers(),
    "clip_higher": lambda L, n: LossModifiers(eps_low=0.2, eps_high=0.28),
    "per_token_eps": lambda L, n: LossModifiers(
        eps_low=torch.linspace(0.05, 0.4, n, dtype=torch.float64).expand(L, n),
        eps_high=torch.linspace(0.6, 0.1, n, dtype=torch.float64).expand(L, n),
    ),
    "gradient_preserving": lambda L, n: LossModifiers(clip="gradient_preserving", beta_low=0.75, beta_high=1.3),
    "unclipped_abs_log": lambda L, n: LossModifiers(
        clip="none", dual_clip=0.0, abs_log_ratio_coef=(torch.arange(n) % 3 == 0).double().expand(L, n) * 0.7
    ),
    "weights_mask_ratio": lambda L, n: LossModifiers(
        pg_weight=1.0 + 0.3 * torch.cos(torch.arange(n, dtype=torch.float64)).expand(L, n),
        grad_mask=(torch.arange(n) % 5 != 0).double().expand(L, n),
        ratio_coef=-0.4 * torch.sin(torch.arange(n, dtype=torch.float64)).expand(L, n),
    ),
    "kl": lambda L, n: LossModifiers(kl_coef=0.3),
}


@pytest.mark.parametrize("name", sorted(MODIFIERS))
@pytest.mark.parametrize("seed", [0, 1])
def test_closed_form_derivative_equals_autograd(name, seed):
    logp, old, adv, mask, ref = _tokens(seed, ref=True)
    mods = MODIFIERS[name](*logp.shape)
    defaults = PolicyDefaults(eps_low=0.2, eps_high=0.2, dual_clip=3.0)
    x = logp.clone().requires_grad_(True)
    tok = TokenBatch(logp=x, old_logp=old, adv=adv, mask=mask, num_tokens=float(mask.sum()), ref_logp=ref)
    (token_loss(tok, mods, defaults) * mask).sum().backward()
    closed = token_loss_grad(
        TokenBatch(logp=logp, old_logp=old, adv=adv, mask=mask, num_tokens=1.0, ref_logp=ref), mods, defaults
    )
    assert torch.allclose(x.grad, closed * mask, atol=1e-12)
    # the numpy path gives the same numbers
    np_tok = TokenBatch(
        logp=logp.numpy(),
        old_logp=old.numpy(),
        adv=adv.numpy(),
        mask=mask.numpy(),
        num_tokens=1.0,
        ref_logp=ref.numpy(),
    )
    np_mods = LossModifiers(**{k: (v.numpy() if torch.is_tensor(v) else v) for k, v in vars(mods).items()})
    assert np.allclose(token_loss_grad(np_tok, np_mods, defaults), closed.numpy(), atol=1e-12)
    assert np.allclose(token_loss(np_tok, np_mods, defaults), token_loss(tok, mods, defaults).detach().numpy())


def test_ppo_value_and_gradient_by_hand():
    # r = 2 (A > 0, clipped at 1.2), 0.5 (A > 0, unclipped), 5 (A < 0, dual-clipped at 3), 0.5 (A < 0, clipped)
    logp = torch.zeros(1, 4, dtype=torch.float64, requires_grad=True)
    old = -torch.log(torch.tensor([[2.0, 0.5, 5.0, 0.5]], dtype=torch.float64))
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]], dtype=torch.float64)
    tok = TokenBatch(logp=logp, old_logp=old, adv=adv, mask=torch.ones(1, 4), num_tokens=4.0)
    loss = token_loss(tok, LossModifiers(), PolicyDefaults(0.2, 0.2, 3.0))
    assert torch.allclose(loss, torch.tensor([[-1.2, -0.5, 3.0, 0.8]], dtype=torch.float64))
    loss.sum().backward()
    assert torch.allclose(logp.grad, torch.tensor([[0.0, -0.5, 0.0, 0.0]], dtype=torch.float64))


def test_gradient_preserving_keeps_bounded_gradients_outside_the_clip():
    logp = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
    old = -torch.log(torch.tensor([[2.0, 0.5]], dtype=torch.float64))  # r = 2 (A > 0), r = 0.5 (A < 0)
    adv = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    tok = TokenBatch(logp=logp, old_logp=old, adv=adv, mask=torch.ones(1, 2), num_tokens=2.0)
    mods = LossModifiers(clip="gradient_preserving", beta_low=0.5, beta_high=2.0)
    loss = token_loss(tok, mods, PolicyDefaults(0.2, 0.2, 3.0))
    # value: β·PPO's clipped value; gradient: −β(1 ± ε)·A
    assert torch.allclose(loss, torch.tensor([[-2.0 * 1.2, 0.5 * 0.8]], dtype=torch.float64))
    loss.sum().backward()
    assert torch.allclose(logp.grad, torch.tensor([[-2.0 * 1.2, 0.5 * 0.8]], dtype=torch.float64))


def test_on_policy_ratio_is_one_and_abs_log_term_is_inert():
    logp, _, adv, mask, _ = _tokens(3)
    x = logp.clone().requires_grad_(True)
    tok = TokenBatch(logp=x, old_logp=x.detach(), adv=adv, mask=mask, num_tokens=1.0)
    mods = LossModifiers(clip="none", abs_log_ratio_coef=torch.ones_like(logp))
    (token_loss(tok, mods, PolicyDefaults()) * mask).sum().backward()
    assert torch.allclose(x.grad, -adv * mask)  # only the PG term: −A·∇log π


def test_unknown_clip_mode_is_refused():
    logp, old, adv, mask, _ = _tokens(0)
    tok = TokenBatch(logp=logp, old_logp=old, adv=adv, mask=mask, num_tokens=1.0)
    with pytest.raises(ValueError, match="LossModifiers.clip"):
        token_loss(tok, LossModifiers(clip="soft"), PolicyDefaults())
