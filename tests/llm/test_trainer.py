"""The RL trainer end to end on a tiny model: a few steps, resume equality, skips, bad input.

Run: python -m pytest tests/llm/test_trainer.py
"""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")

from llm.checkpoint import MANIFEST  # noqa: E402
from llm.config import ConfigError, RLConfig, load_config  # noqa: E402
from llm.data import Example, write_jsonl  # noqa: E402
from llm.metrics import read_metrics  # noqa: E402
from llm.reward import REWARDS, register_reward  # noqa: E402
from llm.tasks import make_dataset  # noqa: E402
from llm.trainer import Trainer, train  # noqa: E402

TIMING = {"rollout_s", "train_s", "step_s", "tokens_per_s", "rollout_tokens_per_s", "train_tokens_per_s"}


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    """Arithmetic prompts scored by a reward an untrained model earns half the time.

    The real verifier gives a random model 0 everywhere, hence zero advantages and no
    gradient at all; this reward (does the completion contain an even digit?) varies.
    """

    @register_reward("test_even_digit")
    def even_digit(completion, example):
        return float(any(ch in "02468" for ch in completion))

    train_set, _ = make_dataset("arithmetic", 64, 0, 2, seed=0)
    train_set = [Example(ex.prompt, ex.answer, "test_even_digit") for ex in train_set]
    yield write_jsonl(tmp_path_factory.mktemp("data") / "train.jsonl", train_set)
    REWARDS.pop("test_even_digit")


def _cfg(model, data, out, *extra):
    return load_config(
        RLConfig,
        None,
        [
            f"model.path={json.dumps(str(model))}",
            f"data.train={json.dumps(str(data))}",
            f"train.out={json.dumps(str(out))}",
            "data.prompts_per_step=4",
            "rollout.group_size=4",
            "rollout.max_new_tokens=4",
            "train.steps=6",
            "train.progress=false",
            "train.tensorboard=false",
            "control.target=2.0",
            "control.kp=2.0",
            "optim.lr=1e-3",
            *extra,
        ],
    )


def test_a_few_steps_change_the_model_and_log_everything(tiny_model_dir, data_file, tmp_path):
    cfg = _cfg(
        tiny_model_dir,
        data_file,
        tmp_path / "run",
        "ppo.epochs=2",
        "ppo.minibatches=2",
        "ppo.micro_batch_size=4",
        "train.tensorboard=true",
    )
    trainer = Trainer(cfg)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    rows = trainer.train()
    assert len(rows) == 6
    changed = [not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True)]
    assert all(changed)
    logged = read_metrics(tmp_path / "run")
    required = {
        "step",
        "entropy",
        "entropy_target",
        "alpha",
        "integral",
        "reward_mean",
        "clip_frac",
        "high_prob_frac",
        "grad_norm",
        "tokens_per_s",
    }
    assert required <= set(logged[0])
    assert [r["step"] for r in logged] == list(range(1, 7))
    assert all(r["alpha"] != 0 for r in logged)  # the controller acted
    assert any(r["clip_frac"] > 0 or r["ppo_kl"] != 0 for r in logged[1:])  # off-policy updates happened
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text().strip() == "step_000006"
    assert list((tmp_path / "run" / "tb").glob("events.*"))
    ckpt = tmp_path / "run" / "checkpoints" / "step_000006"
    lever = json.loads((ckpt / "lever.json").read_text())
    assert lever["name"] == "entropic" and lever["state"]["controller"]["step"] == 6
    assert not (ckpt / "controller.json").exists()  # the lever's state lives in lever.json only


def test_resume_is_bit_exact(tiny_model_dir, data_file, tmp_path):
    extra = ("ppo.epochs=2", "ppo.minibatches=2", "train.save_every=3", "control.ki=0.05")
    full = train(_cfg(tiny_model_dir, data_file, tmp_path / "full", *extra))
    first = train(_cfg(tiny_model_dir, data_file, tmp_path / "split", *extra, "train.steps=3"))
    # a crash after step 4 would leave a metrics row beyond the checkpoint: resume must drop it
    with open(tmp_path / "split" / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"step": 4, "entropy": -1.0}) + "\n")
    rest = train(_cfg(tiny_model_dir, data_file, tmp_path / "split", *extra, "train.resume=true"))
    assert [r["step"] for r in first + rest] == list(range(1, 7))
    strip = [{k: v for k, v in r.items() if k not in TIMING} for r in full]
    assert [{k: v for k, v in r.items() if k not in TIMING} for r in first + rest] == strip
    logged = read_metrics(tmp_path / "split")
    assert [{k: v for k, v in r.items() if k not in TIMING} for r in logged] == strip


def test_non_finite_entropy_skips_the_step_and_keeps_the_controller(tiny_model_dir, data_file, tmp_path, monkeypatch):
    import llm.trainer as trainer_mod

    real = trainer_mod.generate
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        batch = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:
            batch.entropy[0, 0] = float("nan")
        return batch

    monkeypatch.setattr(trainer_mod, "generate", flaky)
    trainer = Trainer(_cfg(tiny_model_dir, data_file, tmp_path / "run", "train.steps=4"))
    rows = trainer.train()
    assert [r["skipped"] for r in rows] == [False, False, True, False]
    assert rows[2]["integral"] == rows[1]["integral"]  # the controller did not see the bad step
    assert rows[2]["alpha"] == 0.0


def test_plain_grpo_has_no_alpha(tiny_model_dir, data_file, tmp_path):
    rows = train(_cfg(tiny_model_dir, data_file, tmp_path / "run", "control.enabled=false", "train.steps=2"))
    assert all(r.get("alpha", 0.0) == 0.0 and r["entropic_term"] == 0.0 for r in rows)
    assert all("alpha" not in r and math.isnan(r["entropy_target"]) for r in rows)  # no lever metrics, no target


def test_bad_inputs_are_refused(tiny_model_dir, data_file, tmp_path):
    with pytest.raises(ConfigError, match=r"control.target must lie in \[0, log V"):
        Trainer(_cfg(tiny_model_dir, data_file, tmp_path / "a", "control.target=9.0"))
    with pytest.raises(ConfigError, match="data.train must be an existing file"):
        Trainer(_cfg(tiny_model_dir, tmp_path / "missing.jsonl", tmp_path / "b"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "1+1="}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: field 'answer' is missing"):
        Trainer(_cfg(tiny_model_dir, bad, tmp_path / "c"))


def test_step_statistics_from_named_sums_match_a_direct_computation():
    """`rollout_sums` → (split across two "ranks", summed) → `reduce_sums` equals numpy on the whole batch."""
    import numpy as np

    from llm.metrics import reduce_sums, rollout_sums

    gen = torch.Generator().manual_seed(0)
    ent, logp = torch.rand(8, 5, generator=gen), -torch.rand(8, 5, generator=gen)
    mask = (torch.rand(8, 5, generator=gen) > 0.3).float()
    rewards = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.5], [0.0, 0.0]])  # 4 groups of G = 2
    halves = [rollout_sums(ent[i : i + 4], logp[i : i + 4], mask[i : i + 4], rewards[j : j + 2])
              for i, j in ((0, 0), (4, 2))]  # fmt: skip
    sums = {k: halves[0][k] + halves[1][k] for k in halves[0]}
    got = reduce_sums(sums, update=False)
    m, r = mask.numpy().astype(float), rewards.numpy().astype(float)
    assert got["entropy"] == pytest.approx((ent.numpy() * m).sum() / m.sum(), rel=1e-6)
    assert got["entropy_nll"] == pytest.approx(-(logp.numpy() * m).sum() / m.sum(), rel=1e-6)
    assert got["reward_mean"] == pytest.approx(r.mean())
    assert got["reward_std"] == pytest.approx(r.std(ddof=1))
    assert got["frac_zero_std_groups"] == pytest.approx(np.mean(r.std(axis=1) == 0))
    assert got["response_len_mean"] == pytest.approx(m.sum(1).mean())
    skipped = reduce_sums({}, update=True)  # a skipped update: every update metric NaN
    assert skipped and all(math.isnan(v) for v in skipped.values())
    sums = {"pg_loss": 3.0, "clip_frac": 1.0, "high_prob_frac": 2.0, "ppo_kl": 0.5, "entropic_term": 0.2}
    sums |= {"grad_norm": 6.0, "train_tokens": 10.0, "updates": 4.0}
    got = reduce_sums(sums, update=True)
    assert got == pytest.approx({"pg_loss": 0.3, "clip_frac": 0.1, "high_prob_frac": 0.2, "ppo_kl": 0.05,
                                 "entropic_term": 0.05, "grad_norm": 1.5})  # fmt: skip


def test_every_logged_key_has_a_tag_and_lever_metrics_a_prefix(tiny_model_dir, data_file, tmp_path):
    from llm.metrics import LEVER_TAG, METRICS, REDUCTIONS, tb_tag

    assert all(m.reduce in REDUCTIONS for m in METRICS.values())
    trainer = Trainer(_cfg(tiny_model_dir, data_file, tmp_path / "run", "train.steps=1"))
    row = trainer.step()
    trainer.logger.close()
    lever_keys = set(trainer.lever.metrics())
    assert lever_keys == {"alpha", "integral", "p_term", "i_term"}
    assert set(row) - {"step"} == {k for k, m in METRICS.items() if not m.optional} | lever_keys
    assert {tb_tag(k) for k in lever_keys} == {LEVER_TAG + k for k in lever_keys}
    assert len({tb_tag(k) for k in row}) == len(row)  # no two keys share a tag


def test_lr_schedule_values(tiny_model_dir):
    """Warmup (t + 1)/W, then constant / linear / cosine down to the floor m, held after the last step."""
    from llm.schedule import lr_lambda

    w, total, m = 2, 10, 0.1
    cos = lr_lambda("cosine", w, total, m)
    lin = lr_lambda("linear", w, total, m)
    const = lr_lambda("constant", w, total, m)
    assert [cos(0), cos(1)] == [0.5, 1.0] == [lin(0), lin(1)] == [const(0), const(1)]
    for t in range(w, total + 3):
        p = min((t - w) / (total - w), 1.0)
        assert lin(t) == pytest.approx(1 - (1 - m) * p)
        assert cos(t) == pytest.approx(m + (1 - m) * (math.cos(math.pi * p) + 1) / 2)
        assert const(t) == 1.0
    assert cos(total) == pytest.approx(m) and cos(total + 5) == pytest.approx(m)


def test_resume_without_checkpoint_warns_and_old_checkpoints_are_refused(tiny_model_dir, data_file, tmp_path, caplog):
    run = tmp_path / "run"
    with caplog.at_level("WARNING", logger="llm.trainer"):
        rows = train(_cfg(tiny_model_dir, data_file, run, "train.steps=1", "train.resume=true"))
    assert len(rows) == 1
    assert any("no checkpoint" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    state_file = run / "checkpoints" / "step_000001" / "trainer_state.pt"
    state = torch.load(state_file, weights_only=False)
    assert state["lever"]["name"] == "entropic" and "controller" not in state
    state["controller"] = state.pop("lever")["state"]["controller"]  # the layout before levers
    torch.save(state, state_file)
    (state_file.parent / MANIFEST).unlink()  # checkpoints of that layout had no manifest either
    with pytest.raises(ConfigError, match="has no 'lever' entry"):
        Trainer(_cfg(tiny_model_dir, data_file, run, "train.steps=2", "train.resume=true"))


def test_a_non_finite_third_of_four_mini_batches_leaves_the_step_undone(
    tiny_model_dir, data_file, tmp_path, monkeypatch
):
    """All or nothing: mini-batches 1 and 2 stepped AdamW, the 3rd turns NaN → model, optimizer,
    lr schedule and lever are exactly as before the step."""
    import copy

    import llm.trainer as trainer_mod

    cfg = _cfg(tiny_model_dir, data_file, tmp_path / "run", "ppo.epochs=2", "ppo.minibatches=2", "train.steps=3")
    trainer = Trainer(cfg)
    trainer.step()  # the optimizer has state to corrupt from here on
    params = [p.detach().clone() for p in trainer.model.parameters()]
    optim = copy.deepcopy(trainer.optimizer.state_dict())
    sched, lever = trainer.scheduler.state_dict(), copy.deepcopy(trainer.lever.state_dict())
    real, calls = trainer_mod.policy_loss, {"n": 0}

    def nan_in_third(tok, mods, loss_cfg):  # one micro-batch per mini-batch: call 3 is mini-batch 3
        loss, stats = real(tok, mods, loss_cfg)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] == 3 else loss), stats

    monkeypatch.setattr(trainer_mod, "policy_loss", nan_in_third)
    row = trainer.step()
    trainer.logger.close()
    assert calls["n"] == 3 and row["skipped"] and math.isnan(row["grad_norm"])
    assert all(torch.equal(a, b) for a, b in zip(params, trainer.model.parameters(), strict=True))
    after = trainer.optimizer.state_dict()
    assert after["param_groups"] == optim["param_groups"]
    for k, state in optim["state"].items():
        assert all(torch.equal(v, after["state"][k][name]) for name, v in state.items())
    assert trainer.scheduler.state_dict() == sched and trainer.lever.state_dict() == lever
    assert row["alpha"] == 0.0 and row["integral"] == trainer.lever.metrics()["integral"]


def test_aepo_trains_on_extra_samples_at_its_temperature(tiny_model_dir, data_file, tmp_path):
    """AEPO (`llm.extra_samples`): a quarter of the prompts re-sampled at T; kept rows appended with A = 1."""
    extra = ["lever.name=aepo", "lever.params.target=3.12", "lever.params.reinforce_share=1.0", "train.steps=3"]
    extra.append("rollout.temperature=0.9")  # the extra rollout samples at T₀·T
    trainer = Trainer(_cfg(tiny_model_dir, data_file, tmp_path / "run", *extra))
    seen, temps = [], []
    update, rollout = trainer.update, trainer.rollout

    def spy_update(batch, adv):  # the batch the policy update gets: main rows, then the kept extra rows
        seen.append((batch.response_ids.shape[0], adv.clone()))
        return update(batch, adv)

    def spy_rollout(examples):
        temps.append((len(examples), trainer.cfg.rollout.temperature))
        return rollout(examples)

    trainer.update, trainer.rollout = spy_update, spy_rollout
    rows = trainer.train()
    for k, (row, (n_rows, adv)) in enumerate(zip(rows, seen, strict=True)):
        t = 1.2 if row["entropy"] <= 3.12 else 0.8  # H ≤ H*: T_high, else T_low
        assert row["temperature"] == t
        assert temps[2 * k] == (4, 0.9) and temps[2 * k + 1] == (1, pytest.approx(0.9 * t))  # ⌈¼·4⌉ prompt at T₀·T
        assert row["extra_samples"] == 4  # that prompt × G = 4
        assert n_rows == 16 + row["extra_trained"] == 16 + row["extra_kept"]
        assert torch.all(adv[16:] == 1.0)  # REINFORCE: the kept positives' advantage is forced to 1
        assert math.isfinite(row["entropy"]) and not row["skipped"]
    assert trainer.cfg.rollout.temperature == 0.9  # restored after each extra rollout
    assert sum(r["extra_trained"] for r in rows) > 0  # some extra samples were positive and trained
    plain = train(_cfg(tiny_model_dir, data_file, tmp_path / "grpo", "lever.name=grpo", "train.steps=1"))
    assert plain[0]["extra_samples"] == 0 and plain[0]["extra_trained"] == 0


def test_bapo_runs_off_policy_with_its_searched_bounds(tiny_model_dir, data_file, tmp_path):
    extra = ["lever.name=bapo", "train.steps=2", "ppo.epochs=2", "ppo.minibatches=2"]
    rows = train(_cfg(tiny_model_dir, data_file, tmp_path / "run", *extra))
    for row in rows:
        assert 0.6 <= row["clip_low"] <= 0.9 and 1.2 <= row["clip_high"] <= 3.0 and 0 <= row["share"] <= 1
        assert not row["skipped"] and row["extra_samples"] == 0
    with pytest.raises(ConfigError, match="acts through the importance ratio"):
        train(_cfg(tiny_model_dir, data_file, tmp_path / "on", "lever.name=bapo", "train.steps=1"))


def test_aepo_resume_is_bit_exact(tiny_model_dir, data_file, tmp_path):
    """The extra rollout draws from the checkpointed sampling generator: a resumed AEPO run repeats the full one."""
    extra = ("lever.name=aepo", "lever.params.target=3.12", "lever.params.reinforce_share=1.0", "train.save_every=2")
    full = train(_cfg(tiny_model_dir, data_file, tmp_path / "full", *extra, "train.steps=4"))
    first = train(_cfg(tiny_model_dir, data_file, tmp_path / "split", *extra, "train.steps=2"))
    rest = train(_cfg(tiny_model_dir, data_file, tmp_path / "split", *extra, "train.steps=4", "train.resume=true"))
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING} for r in rows]  # noqa: E731
    assert strip(first + rest) == strip(full) and sum(r["extra_trained"] for r in full) > 0
