"""NSR / W-REINFORCE, entropy-advantage and top-entropy-token levers against their authors' formulas.

Each lever's loss (through `pic.levers.token_loss`, autograd in torch) is compared with the
authors' per-token loss written out by hand: PPO's clipped loss on the replaced advantage.
The numpy derivative the bandit uses (`token_loss_grad`) is checked against the same autograd.

Run: python -m pytest tests/pic/levers/test_shaping.py
"""

from __future__ import annotations

import numpy as np
import pytest
from lever_support import PLANT, _batch, _grad, _ppo, _tokens

from pic.levers import TokenBatch, make_lever, token_loss, token_loss_grad
from pic.levers.shaping import masked_quantile
from sim.levers import run_lever
from sim.methods import methods_problem
from sim.plant import PlantConfig

ON = PlantConfig(mode="sampled", group_size=16, lr=0.5)


def _entropies(torch, like, seed=5):
    g = torch.Generator().manual_seed(seed)
    return 2.0 * torch.rand(like.shape, generator=g, dtype=torch.float64)


def _check_against(torch, lever, tok, want_adv, x):
    """token_loss with the lever's modifiers == PPO on ``want_adv`` (value and ∂/∂log π), and numpy parity."""
    mods = lever.modify(tok)
    got = token_loss(tok, mods, PLANT)
    r = torch.exp(x - tok.old_logp)
    want = _ppo(torch, r, want_adv, PLANT.eps_low, PLANT.eps_high, PLANT.dual_clip)
    assert torch.allclose(got, want, atol=1e-12)
    g_got, g_want = _grad(torch, (got * tok.mask).sum(), x), _grad(torch, (want * tok.mask).sum(), x)
    assert torch.allclose(g_got, g_want, atol=1e-12)
    np_tok = type(tok)(**{k: _np(v) for k, v in vars(tok).items()})
    np_grad = token_loss_grad(np_tok, lever.modify(np_tok), PLANT)
    assert np.allclose(np_grad * np_tok.mask, g_got.numpy(), atol=1e-12)


def _np(v):
    if hasattr(v, "detach"):
        return v.detach().numpy()
    return v


@pytest.mark.parametrize(("name", "lam"), [("nsr", 0.0), ("w_reinforce", 0.1)])
@pytest.mark.parametrize("advantage", ["unit", "grpo"])
def test_sample_reinforce_is_ppo_on_the_authors_advantages(torch, name, lam, advantage):
    """Authors' estimator: A = λ on correct (A > 0), −1 on wrong (A < 0); "grpo" keeps |A|: λ·A and A."""
    logp, old, adv, mask = _tokens(torch, seed=1, adv_scale=1.5)
    adv[0, :5] = 0.0  # zero-advantage tokens (a group with one outcome) stay out
    x = logp.clone().requires_grad_(True)
    tok = _batch(x, old, adv, mask)
    if advantage == "unit":
        want = torch.where(adv > 0, lam, torch.where(adv < 0, -1.0, 0.0)).double()
    else:
        want = torch.where(adv > 0, lam * adv, adv)
    _check_against(torch, make_lever(name, advantage=advantage), tok, want, x)


def test_nsr_drops_every_positive_token_and_w_reinforce_keeps_a_tenth(torch):
    logp, old, adv, mask = _tokens(torch, seed=2)
    tok = _batch(logp, old, adv, mask)
    w_nsr = make_lever("nsr", advantage="grpo").modify(tok).pg_weight
    w_w = make_lever("w_reinforce", advantage="grpo").modify(tok).pg_weight
    assert torch.all(w_nsr[adv > 0] == 0) and torch.all(w_nsr[adv < 0] == 1)
    assert torch.allclose(w_w[adv > 0], torch.tensor(0.1, dtype=torch.float64)) and torch.all(w_w[adv < 0] == 1)


def test_entropy_advantage_is_ppo_on_the_shifted_advantage(torch):
    """A' = A + min(α·sg(H), |A|/κ), written out, then PPO on A'; H carries no gradient into the PG term."""
    logp, old, adv, mask = _tokens(torch, seed=3, adv_scale=0.6)
    adv[1, :4] = 0.0
    ent = _entropies(torch, logp).requires_grad_(True)
    x = logp.clone().requires_grad_(True)
    tok = _batch(x, old, adv, mask, entropy=ent)
    alpha, kappa = 0.4, 2.0
    shift = np.minimum(alpha * ent.detach().numpy(), np.abs(adv.numpy()) / kappa)
    want = adv + torch.from_numpy(shift)
    assert torch.all(torch.sign(want) == torch.sign(adv))  # κ > 1 keeps the sign
    lever = make_lever("entropy_advantage")
    _check_against(torch, lever, tok, want, x)
    loss = (token_loss(tok, lever.modify(tok), PLANT) * mask).sum()
    assert torch.autograd.grad(loss, ent, allow_unused=True)[0] is None  # the entropy is detached
    assert 0 < lever.metrics()["adv_shift"] <= float(np.abs(adv.numpy()).max()) / kappa
    both = shift < np.abs(adv.numpy()) / kappa  # both branches of the min occur in the example
    assert both.any() and (~both).any()


@pytest.mark.parametrize("q", [0.0, 0.3, 0.8, 1.0])
def test_masked_quantile_is_torch_quantile_of_the_valid_entries(torch, q):
    g = torch.Generator().manual_seed(4)
    x = torch.rand(3, 17, generator=g, dtype=torch.float64)
    mask = (torch.rand(3, 17, generator=g) > 0.3).double()
    got_t = masked_quantile(x, mask, q)
    got_n = masked_quantile(x.numpy(), mask.numpy(), q)
    for row in range(3):
        valid = x[row][mask[row] > 0]
        want = torch.quantile(valid, q)
        assert got_t[row, 0].item() == pytest.approx(want.item(), abs=1e-14)
        assert got_n[row, 0] == pytest.approx(np.quantile(valid.numpy(), q), abs=1e-14)


def test_top_entropy_tokens_matches_trl_on_its_own_example(torch):
    """TRL's GetHighEntropyMaskTester: 10 valid tokens of 12, quantile 0.8 → the 2 highest pass."""
    ent = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.7, 0.8, 0.9, 1.0, 1.1, 1.2]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], dtype=torch.float64)
    flat = lambda v: v.reshape(1, -1)  # noqa: E731 - the lever sees one row of tokens
    tok = _batch(flat(torch.zeros_like(ent)), flat(torch.zeros_like(ent)), flat(torch.ones_like(ent)), flat(mask))
    tok.entropy = flat(ent)
    keep = make_lever("top_entropy_tokens").selection(tok).reshape(2, 6)
    # TRL: threshold = quantile(ent[mask], 0.8) = 0.92; mask = (ent·mask ≥ threshold) & mask
    valid = ent[mask > 0]
    want = ((ent * mask) >= torch.quantile(valid, 0.8)) & (mask > 0)
    assert torch.equal(keep > 0, want) and int(keep.sum()) == 2


def test_top_entropy_tokens_masks_the_pg_term_of_low_entropy_tokens(torch):
    logp, old, adv, mask = _tokens(torch, seed=6)
    ent = _entropies(torch, logp, seed=7)
    x = logp.clone().requires_grad_(True)
    tok = _batch(x, old, adv, mask, entropy=ent)
    lever = make_lever("top_entropy_tokens")
    mods = lever.modify(tok)
    keep = mods.grad_mask
    for row in range(2):  # the brute-force selection: H ≥ (1 − ρ)-quantile of the row's valid H
        valid = ent[row][mask[row] > 0].numpy()
        thr = np.quantile(valid, 0.8)
        assert np.array_equal(keep[row].numpy() > 0, (ent[row].numpy() >= thr) & (mask[row].numpy() > 0))
    r = torch.exp(x - old)
    want = _ppo(torch, r, adv, 0.2, 0.2, 3.0) * keep
    assert torch.allclose(token_loss(tok, mods, PLANT), want, atol=1e-12)
    assert lever.metrics()["entropy_kept"] == pytest.approx(float(keep.sum() / mask.sum()))
    assert 0.15 < lever.metrics()["entropy_kept"] < 0.3
    np_tok = type(tok)(**{k: _np(v) for k, v in vars(tok).items()})
    assert np.array_equal(lever.modify(np_tok).grad_mask, keep.numpy())


def test_top_entropy_tokens_with_rho_one_keeps_every_valid_token(torch):
    logp, old, adv, mask = _tokens(torch, seed=8)
    tok = _batch(logp, old, adv, mask, entropy=_entropies(torch, logp))
    keep = make_lever("top_entropy_tokens", fraction=1.0).modify(tok).grad_mask
    assert torch.equal(keep, mask)


def test_levers_without_their_entropy_say_so():
    lever = make_lever("entropy_advantage")
    z = np.zeros((1, 3))
    tok = TokenBatch(logp=z, old_logp=z, adv=z + 1.0, mask=z + 1.0, num_tokens=3.0)
    with pytest.raises(ValueError, match="needs TokenBatch.entropy"):
        lever.modify(tok)
    with pytest.raises(ValueError, match="needs TokenBatch.entropy"):
        make_lever("top_entropy_tokens").modify(tok)


@pytest.fixture(scope="module")
def comparison():
    """GRPO and each lever, on-policy, 4 seeds × 80 steps of the comparison bandit."""
    bandit, z0 = methods_problem(0)
    names = ("grpo", "nsr", "w_reinforce", "top_entropy_tokens", "entropy_advantage")
    return {n: run_lever(bandit, z0, make_lever(n, loops=4), ON, steps=80, seeds=[0, 1, 2, 3]) for n in names}


def test_negative_samples_and_high_entropy_tokens_keep_entropy_above_grpo(comparison):
    """NSR preserves entropy (the paper's finding), W-REINFORCE too; PG on forking tokens only sharpens less."""
    final = {n: run.entropy[-10:].mean() for n, run in comparison.items()}
    assert final["nsr"] > final["grpo"] + 0.15
    assert final["w_reinforce"] > final["grpo"] + 0.1
    assert final["top_entropy_tokens"] > final["grpo"] + 0.3
    assert final["nsr"] > final["w_reinforce"]  # λ = 0.1 of positive reinforcement sharpens a little
    for run in comparison.values():
        assert run.reward[-10:].mean() > run.reward[0].mean()  # every one of them still learns


def test_entropy_advantage_runs_on_the_bandit_with_a_bounded_shift(comparison):
    run = comparison["entropy_advantage"]
    assert np.all(np.isfinite(run.entropy)) and np.all(run.metrics["adv_shift"] > 0)
    assert np.all(run.metrics["adv_shift"] <= 0.4 * np.log(10))  # ψ ≤ α·H ≤ α·log K
