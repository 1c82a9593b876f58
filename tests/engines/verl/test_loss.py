"""(b) The ``entropic`` loss against a hand computation, through verl's own lookup and ``ppo_loss``.

The hand value is written token by token in float64 from the formulas (PPO clip, dual clip,
then α·Σ_{mask ∧ π>τ}(−r·|A|)/D), independently of verl and of `pic.actuator`.
"""

from __future__ import annotations

import math

import pytest
from engine_support import require_engine

pytestmark = pytest.mark.verl
verl = require_engine("verl", "verl")

import torch  # noqa: E402
from tensordict import TensorDict  # noqa: E402
from verl.trainer.ppo.core_algos import get_policy_loss_fn  # noqa: E402
from verl.utils import tensordict_utils as tu  # noqa: E402
from verl.workers.config import FSDPActorConfig, PolicyLossConfig  # noqa: E402
from verl.workers.utils.losses import ppo_loss  # noqa: E402

from entropic_verl import EntroPICConfig, configure, reset_runtime  # noqa: E402

TAU = 0.95
CLIP, CLIP_C = 0.2, 3.0


@pytest.fixture(autouse=True)
def _no_runtime_leak():
    yield
    reset_runtime()


def actor_config(**kw) -> FSDPActorConfig:
    return FSDPActorConfig(
        strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=2, policy_loss=PolicyLossConfig(**kw)
    )


def dummy_batch():
    """4 sequences × 6 tokens: masked tails, 10 high-probability tokens, clipped ratios, a dual clip."""
    log_prob = torch.tensor(
        [
            [-0.01, -0.02, -1.5, -0.03, -2.0, -0.5],
            [-0.04, -0.7, -0.01, -3.0, -0.02, -0.3],
            [-0.2, -0.01, -0.05, -0.9, -0.02, -1.0],
            [-2.5, -0.01, -0.6, -0.03, -0.4, -0.02],
        ],
        dtype=torch.float64,
    )
    old_log_prob = log_prob - torch.tensor(
        [
            [0.0, 0.1, -0.5, 0.05, 0.3, 0.0],
            [0.02, -0.4, 0.0, 1.5, 0.0, 0.0],  # a ratio of e^1.5 > 3 on a negative-advantage row: dual clip
            [0.1, -0.05, 0.0, 0.3, -0.3, 0.0],
            [0.0, 0.0, 0.4, -0.1, 0.0, 0.0],
        ],
        dtype=torch.float64,
    )
    advantages = torch.tensor([1.2, -0.8, 0.5, -1.5], dtype=torch.float64)[:, None].expand(4, 6).clone()
    mask = torch.tensor(
        [[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0]], dtype=torch.bool
    )
    return old_log_prob, log_prob, advantages, mask


def hand_loss(old, new, adv, mask, alpha, normalization, n_global=None, dp_size=1) -> float:
    n_local = int(mask.sum())
    denom = n_local if n_global is None else n_global / dp_size
    base, high_sum, n_high = 0.0, 0.0, 0
    for i in range(old.shape[0]):
        for t in range(old.shape[1]):
            if not mask[i, t]:
                continue
            a = float(adv[i, t])
            r = math.exp(max(-20.0, min(20.0, float(new[i, t] - old[i, t]))))
            token = max(-a * r, -a * min(max(r, 1 - CLIP), 1 + CLIP))
            if a < 0:
                token = min(token, -a * CLIP_C)
            base += token
            if math.exp(float(new[i, t])) > TAU:
                high_sum += -r * abs(a)
                n_high += 1
    if normalization == "all_tokens":
        term = alpha * high_sum / denom
    else:
        share = 1.0 if n_global is None else n_local * dp_size / n_global
        term = alpha * high_sum / n_high * share
    return base / denom + term


def test_dummy_batch_exercises_every_branch():
    old, new, adv, mask = dummy_batch()
    ratio = torch.exp(new - old)
    assert int(((new.exp() > TAU) & mask).sum()) == 10
    assert bool(((ratio > 1 + CLIP) & mask).any()) and bool(((ratio < 1 - CLIP) & mask).any())
    assert bool(((ratio > CLIP_C) & (adv < 0) & mask).any())


@pytest.mark.parametrize("normalization", ["all_tokens", "high_prob_tokens"])
@pytest.mark.parametrize("alpha", [0.5, -0.7])
def test_registered_loss_equals_hand_value(normalization, alpha):
    old, new, adv, mask = dummy_batch()
    runtime = configure(EntroPICConfig(target=0.1, tau=TAU, normalization=normalization))
    runtime.controller._alpha[...] = alpha  # α as if the controller had produced it
    assert runtime.alpha == alpha
    loss_fn = get_policy_loss_fn("entropic")  # verl's own lookup
    loss, metrics = loss_fn(
        old_log_prob=old,
        log_prob=new,
        advantages=adv,
        response_mask=mask,
        loss_agg_mode="token-mean",
        config=actor_config(loss_mode="entropic"),
        rollout_is_weights=None,
    )
    assert float(loss) == pytest.approx(hand_loss(old, new, adv, mask, alpha, normalization), abs=1e-12)
    assert metrics["actor/entropic_alpha"] == alpha
    assert metrics["actor/entropic_high_frac"] == pytest.approx(10 / int(mask.sum()))


def test_alpha_zero_is_vanilla():
    old, new, adv, mask = dummy_batch()
    configure(EntroPICConfig(target=0.1))
    cfg = actor_config()
    ours, _ = get_policy_loss_fn("entropic")(old, new, adv, mask, "token-mean", cfg, None)
    vanilla, _ = get_policy_loss_fn("vanilla")(old, new, adv, mask, "token-mean", cfg, None)
    assert float(ours) == float(vanilla)


def test_gradient_weights_are_one_plus_minus_alpha():
    """Paper form: on unclipped tokens ∂L/∂log π = −A·r·(1 + α·sign(A)·1[π>τ]) / N. Breaks if the sign flips."""
    alpha = 0.4
    old, new, adv, mask = dummy_batch()
    new = new.clone().requires_grad_(True)
    runtime = configure(EntroPICConfig(target=0.1))
    runtime.controller._alpha[...] = alpha
    loss, _ = get_policy_loss_fn("entropic")(old, new, adv, mask, "token-mean", actor_config(), None)
    loss.backward()
    ratio = torch.exp(new.detach() - old)
    n = int(mask.sum())
    inside = mask & (ratio > 1 - CLIP) & (ratio < 1 + CLIP)
    high = new.detach().exp() > TAU
    expected = -adv * ratio * (1 + alpha * torch.sign(adv) * high) / n
    assert bool((inside & high).any()) and bool((inside & ~high).any())
    torch.testing.assert_close(new.grad[inside], expected[inside], rtol=1e-12, atol=1e-14)
    # a confident positive token weighs more than vanilla, a confident negative one less (α > 0)
    pos = inside & high & (adv > 0)
    neg = inside & high & (adv < 0)
    assert bool(pos.any()) and bool(neg.any())
    assert bool((new.grad[pos].abs() > (adv * ratio / n)[pos].abs()).all())
    assert bool((new.grad[neg].abs() < (adv * ratio / n)[neg].abs()).all())


def test_gradient_matches_hand_autograd():
    alpha = 0.5
    old, new, adv, mask = dummy_batch()
    for normalization in ("all_tokens", "high_prob_tokens"):
        runtime = configure(EntroPICConfig(target=0.1, normalization=normalization))
        runtime.controller._alpha[...] = alpha
        ours = new.clone().requires_grad_(True)
        loss, _ = get_policy_loss_fn("entropic")(old, ours, adv, mask, "token-mean", actor_config(), None)
        loss.backward()
        hand = new.clone().requires_grad_(True)
        r = torch.exp(torch.clamp(hand - old, -20, 20))
        token = torch.maximum(-adv * r, -adv * torch.clamp(r, 1 - CLIP, 1 + CLIP))
        token = torch.where(adv < 0, torch.minimum(token, -adv * CLIP_C), token)
        high = (hand.detach().exp() > TAU) & mask
        d = mask.sum() if normalization == "all_tokens" else high.sum()
        value = (token * mask).sum() / mask.sum() + alpha * (-r * adv.abs() * high).sum() / d
        value.backward()
        torch.testing.assert_close(ours.grad, hand.grad, rtol=1e-10, atol=1e-12)


def micro_batch(old, new, adv, mask, n_global: int, dp_size: int):
    """One engine-path micro-batch: nested log-probs over prompt + response, as verl's engine returns them."""
    bs, width = old.shape
    prompt_len = 2
    prompts = torch.ones(bs, prompt_len, dtype=torch.long)
    responses = torch.ones(bs, width, dtype=torch.long)
    attention = torch.cat([torch.ones(bs, prompt_len, dtype=torch.long), mask.long()], dim=1)
    seqs = []
    for i in range(bs):
        r_len = int(mask[i].sum())
        # position t holds log π of token t+1: the response's log-probs start at prompt_len - 1
        full = torch.zeros(prompt_len + r_len, dtype=new.dtype)
        full[prompt_len - 1 : prompt_len - 1 + r_len] = new[i, :r_len]
        seqs.append(full)
    log_probs = torch.nested.as_nested_tensor(seqs, layout=torch.jagged)
    data = TensorDict(
        {
            "prompts": prompts,
            "responses": responses,
            "attention_mask": attention,
            "response_mask": mask.to(torch.float64),
            "old_log_probs": old,
            "advantages": adv,
        },
        batch_size=[bs],
    )
    tu.assign_non_tensor(data, dp_size=dp_size, batch_num_tokens=n_global, global_batch_size=bs * dp_size)
    return {"log_probs": log_probs}, data


@pytest.mark.parametrize("normalization", ["all_tokens", "high_prob_tokens"])
def test_ppo_loss_with_global_token_normalisation(normalization):
    """verl's engine-path caller: dp_size = 2 and a global token count 3× this rank's."""
    alpha = 0.5
    old, new, adv, mask = dummy_batch()
    n_global = 3 * int(mask.sum())
    runtime = configure(EntroPICConfig(target=0.1, normalization=normalization))
    runtime.controller._alpha[...] = alpha
    model_output, data = micro_batch(old, new, adv, mask, n_global=n_global, dp_size=2)
    config = actor_config(loss_mode="entropic")  # ppo_loss reads loss_mode from here
    loss, metrics = ppo_loss(config, model_output, data)
    expected = hand_loss(old, new, adv, mask, alpha, normalization, n_global=n_global, dp_size=2)
    assert float(loss) == pytest.approx(expected, abs=1e-12)
    assert "actor/entropic_alpha" in metrics and "actor/entropic_high_frac" in metrics


def test_without_a_controller_the_loss_refuses():
    reset_runtime()
    old, new, adv, mask = dummy_batch()
    with pytest.raises(RuntimeError, match="trainer_mode=entropic_sync"):
        get_policy_loss_fn("entropic")(old, new, adv, mask, "token-mean", actor_config(), None)


def test_only_token_mean():
    configure(EntroPICConfig(target=0.1))
    old, new, adv, mask = dummy_batch()
    with pytest.raises(ValueError, match=r"loss_agg_mode must be 'token-mean'.*'seq-mean-token-mean'"):
        get_policy_loss_fn("entropic")(old, new, adv, mask, "seq-mean-token-mean", actor_config(), None)
