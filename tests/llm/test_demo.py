"""The headline demo: its verdict, its configs, and an end-to-end run of the quick variant."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tomllib

from llm import demo

ROOT = Path(__file__).resolve().parents[2]


def _rows(entropy, alpha=None, target=0.4):
    alpha = np.zeros(len(entropy)) if alpha is None else alpha
    return [
        {"step": i + 1, "entropy": float(h), "entropy_target": target, "alpha": float(a), "reward_mean": 0.2}
        for i, (h, a) in enumerate(zip(entropy, alpha, strict=True))
    ]


def test_verdict_held_and_collapsed():
    rng = np.random.default_rng(0)
    n = 200
    grpo = _rows(np.linspace(0.5, 0.15, n) + 0.02 * rng.standard_normal(n))
    pi = _rows(0.4 + 0.03 * rng.standard_normal(n), alpha=-0.5 + 0.1 * rng.standard_normal(n))
    v = demo.verdict(grpo, pi, tolerance=0.15, smooth=10)
    assert v["entropic_within_tolerance"] and v["grpo_below_target_end"]
    assert v["diagnosis"].startswith("holds") and "0%" in v["diagnosis"]
    assert v["grpo_entropy_end"] < 0.2 < 0.45 < v["grpo_entropy_start"]
    assert -0.9 < v["alpha_mean_second_half"] < -0.1
    assert v["alpha_saturated_frac_second_half"] == 0.0


def test_verdict_names_authority_when_alpha_saturates():
    n = 200
    pi = _rows(np.linspace(0.4, 0.2, n), alpha=np.full(n, -1.0))  # pushing as hard as allowed, still falling
    v = demo.verdict(pi, pi, tolerance=0.15, smooth=10)
    assert not v["entropic_within_tolerance"]
    assert v["diagnosis"].startswith("authority")


def test_verdict_names_stability_when_the_error_oscillates():
    n = 200
    t = np.arange(n)
    pi = _rows(0.4 + 0.15 * np.sin(2 * np.pi * t / 40), alpha=0.5 * np.sin(2 * np.pi * t / 40 - 1.0))
    v = demo.verdict(pi, pi, tolerance=0.15, smooth=5)
    assert not v["entropic_within_tolerance"]
    assert v["diagnosis"].startswith("stability")


def _toml_overrides(path: Path) -> dict[str, object]:
    data = tomllib.loads(path.read_text())
    return {f"{section}.{key}": value for section, table in data.items() for key, value in table.items()}


def _value(text: str) -> object:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:  # a bare word, as `--set` accepts it
        return text


def _demo_overrides(items: list[str]) -> dict[str, object]:
    return {k: _value(v) for k, v in (s.split("=", 1) for s in items)}


def test_example_configs_mirror_the_demo():
    """configs/tiny_grpo.toml and configs/tiny_entropic.toml hold the demo's RL settings."""
    grpo = _toml_overrides(ROOT / "configs" / "tiny_grpo.toml")
    pi = _toml_overrides(ROOT / "configs" / "tiny_entropic.toml")
    want_rl = _demo_overrides(demo.DEMO["rl"])
    want_ctl = _demo_overrides(demo.DEMO["control"])
    for key, value in want_rl.items():
        assert grpo[key] == value, key
        assert pi[key] == value, key
    for key, value in want_ctl.items():
        assert pi[f"control.{key.split('.', 1)[1]}"] == value, key
    assert grpo["control.enabled"] is False and pi["control.enabled"] is True
    assert grpo["train.steps"] == pi["train.steps"] == demo.DEMO["rl_steps"]
    assert demo.DEMO["max_new_tokens"] == want_rl["rollout.max_new_tokens"]


def _check_outputs(out: Path, summary: dict, steps: int) -> None:
    for run in ("grpo", "entropic"):
        rows = [json.loads(line) for line in (out / run / "metrics.jsonl").read_text().splitlines()]
        assert len(rows) == steps
        assert (out / run / "config.json").is_file()
    assert (out / "compare.png").stat().st_size > 10_000
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["verdict"] == summary["verdict"]
    v = summary["verdict"]
    for key in ("entropic_within_tolerance", "grpo_below_target_end"):
        assert isinstance(v[key], bool)
    assert set(summary["eval"]) == {"sft", "grpo", "entropic"}
    assert all(0 <= e["avg@k"] <= e["pass@k"] <= 1 for e in summary["eval"].values())


def test_demo_end_to_end_tiny(tmp_path, monkeypatch):
    """The whole pipeline on a shrunken spec (seconds): every file the README promises is written."""
    spec = {
        **demo.QUICK,
        "tiny": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1},
        "data": {**demo.QUICK["data"], "n_train": 64, "n_test": 8},
        "sft": {**demo.QUICK["sft"], "steps": 5, "batch_size": 16},
        "rl_steps": 3,
        "rl": [*demo.QUICK["rl"], "data.prompts_per_step=4", "rollout.group_size=4"],
        "eval_k": 2,
    }
    monkeypatch.setattr(demo, "QUICK", spec)
    summary = demo.run_demo(tmp_path, quick=True)
    _check_outputs(tmp_path, summary, 3)
    files = summary["files"]
    assert str(tmp_path / "compare.png") in files and str(tmp_path / "summary.json") in files
    assert str(tmp_path / "sft") + "/" in files  # a model directory is one entry
    on_disk = {str(p) for p in tmp_path.rglob("*") if p.is_file() and "sft" not in p.parts and "tb" not in p.parts}
    listed_files = {f for f in files if not f.endswith("/")}
    assert {f for f in on_disk if "/checkpoints/" not in f} <= listed_files | {
        f for f in on_disk if any(f.startswith(d) for d in files if d.endswith("/"))
    }
    table = demo.closing_table(summary).splitlines()
    assert table[0].split()[0] == "run" and table[-1].startswith("diagnosis: ")
    ent = summary["eval"]["entropic"]
    assert table[3].split()[-2:] == [f"{ent['avg@k']:.3f}", f"{ent['pass@k']:.3f}"]
    v = summary["verdict"]
    assert f"{v['grpo_entropy_start']:.2f} → {v['grpo_entropy_end']:.2f}" in table[2]


@pytest.mark.slow
def test_quick_demo(tmp_path):
    """``python -m llm demo --quick`` as CI runs it."""
    summary = demo.run_demo(tmp_path, quick=True)
    _check_outputs(tmp_path, summary, demo.QUICK["rl_steps"])
