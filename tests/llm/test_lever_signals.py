"""Token-level entropy signals the trainer gives levers (full H_t or AEnt's clamped H^c_t), and a
short training run with each of the NSR / W-REINFORCE / entropy-advantage / top-entropy / AEnt levers.

Run: python -m pytest tests/llm/test_lever_signals.py
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from llm.config import RLConfig, load_config  # noqa: E402
from llm.data import Example, write_jsonl  # noqa: E402
from llm.losses import (  # noqa: E402
    PolicyLossConfig,
    clamped_entropy_from_logits,
    entropy_fields,
    entropy_request,
    policy_loss,
    token_stats_from_logits,
)
from llm.reward import REWARDS, register_reward  # noqa: E402
from llm.tasks import make_dataset  # noqa: E402
from llm.trainer import train  # noqa: E402
from pic.levers import LossModifiers, TokenBatch, make_lever  # noqa: E402
from pic.levers.bonus import clamped_entropy  # noqa: E402

NEW_LEVERS = ("nsr", "w_reinforce", "entropy_advantage", "top_entropy_tokens", "aent")


@pytest.mark.parametrize("fraction", [0.0, 0.2, 0.5])
def test_clamped_entropy_of_logits_matches_numpy_and_its_gradient_the_closed_form(fraction):
    g = torch.Generator().manual_seed(0)
    z = (3.0 * torch.randn(6, 11, generator=g, dtype=torch.float64)).requires_grad_(True)
    h = clamped_entropy_from_logits(z, fraction)
    want, q = clamped_entropy(z.detach().numpy(), fraction)
    assert np.allclose(h.detach().numpy(), want, atol=1e-12)
    (grad,) = torch.autograd.grad(h.sum(), z)
    logq = np.log(np.where(q > 0, q, 1.0))
    assert np.allclose(grad.numpy(), -q * (logq + want[:, None]), atol=1e-12)  # 0 on the dropped logits


def test_token_stats_return_the_clamped_entropy_at_the_temperature():
    z = torch.randn(4, 10, dtype=torch.float64)
    tgt = torch.tensor([0, 3, 8, 1])
    logp, full = token_stats_from_logits(z, tgt, 0.7, True)
    logp_c, clamped = token_stats_from_logits(z, tgt, 0.7, True, clamp_fraction=0.2)
    assert torch.equal(logp, logp_c)
    assert np.allclose(clamped.numpy(), clamped_entropy(z.numpy() / 0.7, 0.2)[0], atol=1e-6)
    assert torch.all(clamped < full)  # dropping the tail lowers the entropy here


def test_each_lever_asks_for_its_own_entropy_signal():
    assert entropy_request(make_lever("grpo")) == {"with_entropy": False, "entropy_grad": False}
    assert entropy_request(make_lever("entropy_bonus")) == {"with_entropy": True, "entropy_grad": True}
    for name in ("entropy_advantage", "top_entropy_tokens"):  # read H_t detached: no graph kept
        assert entropy_request(make_lever(name)) == {"with_entropy": True, "entropy_grad": False}
    aent = make_lever("aent", clamp=0.3)
    assert entropy_request(aent) == {"with_entropy": True, "entropy_grad": True, "clamp_fraction": 0.3}
    h = torch.ones(1, 2)
    assert entropy_fields(aent, h) == {"clamped_entropy": h} and entropy_fields(make_lever("nsr"), h) == {"entropy": h}


def test_policy_loss_subtracts_the_clamped_entropy_bonus():
    logp = torch.log(torch.tensor([[0.5, 0.2, 0.9]])).requires_grad_(True)
    hc = torch.tensor([[0.3, 0.8, 0.1]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    tok = TokenBatch(logp, logp.detach(), torch.ones(1, 3), mask, num_tokens=4.0, clamped_entropy=hc)
    base, _ = policy_loss(tok, LossModifiers(), PolicyLossConfig())
    loss, _ = policy_loss(tok, LossModifiers(clamped_entropy_coef=0.5), PolicyLossConfig())
    assert float((loss - base).detach()) == pytest.approx(-0.5 * (0.3 + 0.8) / 4.0)
    (g,) = torch.autograd.grad(loss, hc)
    assert torch.allclose(g, -0.5 * mask / 4.0)
    tok.clamped_entropy = None
    with pytest.raises(ValueError, match="clamped_entropy is missing"):
        policy_loss(tok, LossModifiers(clamped_entropy_coef=0.5), PolicyLossConfig())


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    """Arithmetic prompts scored by a reward an untrained model earns about half the time."""

    @register_reward("test_signals_even_digit")
    def even_digit(completion, example):
        return float(any(ch in "02468" for ch in completion))

    train_set, _ = make_dataset("arithmetic", 32, 0, 2, seed=0)
    train_set = [Example(ex.prompt, ex.answer, "test_signals_even_digit") for ex in train_set]
    yield write_jsonl(tmp_path_factory.mktemp("data") / "train.jsonl", train_set)
    REWARDS.pop("test_signals_even_digit")


@pytest.mark.parametrize("name", NEW_LEVERS)
def test_two_training_steps_with_each_new_lever(tiny_model_dir, data_file, tmp_path, name, monkeypatch):
    from llm.parallel import SingleProcess

    reduced = []  # what the trainer's sum-all-reduce received from the lever's sync, per step
    real_sync = type(make_lever(name)).sync
    monkeypatch.setattr(
        type(make_lever(name)),
        "sync",
        lambda self, all_reduce: real_sync(self, lambda v: reduced.append(v) or SingleProcess.all_reduce(None, v)),
    )
    cfg = load_config(
        RLConfig,
        None,
        [
            f"model.path={json.dumps(str(tiny_model_dir))}",
            f"data.train={json.dumps(str(data_file))}",
            f"train.out={json.dumps(str(tmp_path / 'run'))}",
            f'lever.name="{name}"',
            "data.prompts_per_step=4",
            "rollout.group_size=4",
            "rollout.max_new_tokens=4",
            "ppo.minibatches=2",
            "train.steps=2",
            "train.progress=false",
            "train.tensorboard=false",
            "optim.lr=1e-3",
        ],
    )
    rows = train(cfg)
    assert len(rows) == 2 and not any(r["skipped"] for r in rows)
    assert all(math.isfinite(r["pg_loss"]) and math.isfinite(r["grad_norm"]) for r in rows)
    lever_keys = set(make_lever(name).metrics())
    assert lever_keys <= set(rows[-1])
    if name == "aent":  # its per-rank sums go through the all-reduce once per step
        assert len(reduced) == 2 and all(v["count"] > 0 for v in reduced)
        h = rows[-1]["clamped_entropy"]
        assert 0 < h < rows[-1]["entropy"] + 1.0 and rows[-1]["entropy_coef"] == pytest.approx(1e-3)
    if name == "top_entropy_tokens":
        assert 0.15 <= rows[-1]["entropy_kept"] <= 0.5
