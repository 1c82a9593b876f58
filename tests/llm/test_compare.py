"""``python -m llm compare``: several methods × seeds on one checkpoint, resumable, one report.

Run: python -m pytest tests/llm/test_compare.py
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from llm.compare import CompareConfig, run_compare  # noqa: E402
from llm.config import ConfigError, load_config  # noqa: E402
from llm.data import Example, write_jsonl  # noqa: E402
from llm.reward import REWARDS, register_reward  # noqa: E402
from llm.tasks import make_dataset  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    @register_reward("test_even_digit_cmp")
    def even_digit(completion, example):
        return float(any(ch in "02468" for ch in completion))

    train_set, test_set = make_dataset("arithmetic", 64, 8, 2, seed=0)
    d = tmp_path_factory.mktemp("cmpdata")
    train = write_jsonl(d / "train.jsonl", [Example(e.prompt, e.answer, "test_even_digit_cmp") for e in train_set])
    test = write_jsonl(d / "test.jsonl", [Example(e.prompt, e.answer, "test_even_digit_cmp") for e in test_set])
    yield train, test
    REWARDS.pop("test_even_digit_cmp")


def _cfg(model, data, out, *extra):
    train, test = data
    return load_config(
        CompareConfig,
        None,
        [
            f"model.path={json.dumps(str(model))}",
            f"data.train={json.dumps(str(train))}",
            f"data.test={json.dumps(str(test))}",
            f"compare.out={json.dumps(str(out))}",
            "data.prompts_per_step=4",
            "rollout.group_size=4",
            "rollout.max_new_tokens=4",
            "ppo.epochs=2",
            "ppo.minibatches=2",
            "optim.lr=1e-3",
            "control.target=2.0",
            "control.kp=2.0",
            "train.steps=3",
            "train.save_every=0",
            "train.progress=false",
            "train.tensorboard=false",
            "compare.eval_k=2",
            'compare.methods=[{label = "grpo"}, {label = "entropic"}, '
            '{label = "bonus", lever = "entropy_bonus", params = {coef = 0.05}}, {label = "clip_higher"}]',
            *extra,
        ],
    )


def test_methods_times_seeds_report_and_resume(tiny_model_dir, data, tmp_path):
    out = tmp_path / "cmp"
    rows = run_compare(_cfg(tiny_model_dir, data, out))
    assert [r["method"] for r in rows] == ["grpo", "entropic", "bonus", "clip_higher"]
    for name in ("report.png", "report.md", "report.json"):
        assert (out / name).is_file()
    md = (out / "report.md").read_text()
    assert "| grpo |" in md and "avg@k" in md and "pass@k" in md
    for r in rows:
        assert r["seeds"] == 1 and 0 <= r["avg@k"] <= 1 and r["verdict"] in {
            "holds", "collapses", "explodes", "below target", "above target",
        }  # fmt: skip
    # each method trained its own lever; all started from the same checkpoint, data and seed
    first = [json.loads((out / m / "seed_0" / "metrics.jsonl").read_text().splitlines()[0]) for m in ("grpo", "bonus")]
    assert first[0]["entropy"] == first[1]["entropy"]  # step 1 samples from the same policy with the same uniforms
    assert first[1]["entropy_coef"] == 0.05
    lever = json.loads((out / "entropic" / "seed_0" / "checkpoints" / "step_000003" / "lever.json").read_text())
    assert lever["name"] == "entropic" and lever["state"]["controller"]["step"] == 3

    # extending with a seed trains only the new runs; finished ones are left alone
    done = {m: (out / m / "seed_0" / "done.json").stat().st_mtime_ns for m in ("grpo", "entropic")}
    rows = run_compare(_cfg(tiny_model_dir, data, out, "compare.seeds=[0, 1]"))
    assert all(r["seeds"] == 2 for r in rows)
    assert {m: (out / m / "seed_0" / "done.json").stat().st_mtime_ns for m in done} == done
    assert (out / "clip_higher" / "seed_1" / "done.json").is_file()


def test_a_ratio_only_method_on_policy_is_refused_by_name(tiny_model_dir, data, tmp_path):
    cfg = _cfg(tiny_model_dir, data, tmp_path / "cmp", "ppo.epochs=1", "ppo.minibatches=1")
    with pytest.raises(ConfigError, match=r"compare.methods\[clip_higher\].*ppo.epochs >= 2 or ppo.minibatches >= 2"):
        run_compare(cfg)
