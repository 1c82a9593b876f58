"""``python -m llm demo``: the headline experiment on a CPU in a few minutes.

init-tiny → make-data (2-digit addition) → SFT warm start → two RL runs from the same
checkpoint, data order and seed: plain GRPO, and EntroPIC (PI) with a target below the
warm model's entropy → one figure (entropy vs target, α, integral, reward) and a summary.

The setting was chosen by measurement (see docs/tutorials/train-llm.md): off-policy updates
(2 PPO epochs × 4 mini-batches per rollout) make GRPO's entropy fall steadily, and the
tiny model keeps enough confident tokens (π > τ) for the actuator to have authority there.
"Holds its target" is judged on a moving average over the second half of the run.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from .config import RLConfig, SFTConfig, load_config
from .data import load_jsonl, write_jsonl
from .evaluate import evaluate_model
from .model import build_tiny, load_model
from .plot import moving_average, plot_runs
from .sft import sft
from .tasks import alphabet, make_dataset
from .trainer import train

__all__ = ["DEMO", "QUICK", "run_demo", "verdict"]

log = logging.getLogger(__name__)

DEMO = {
    "tiny": {"hidden_size": 128, "num_layers": 4, "num_heads": 4, "num_kv_heads": 2},
    "data": {"task": "arithmetic", "difficulty": 2, "ops": "+", "n_train": 4000, "n_test": 200},
    "sft": {"steps": 400, "batch_size": 64, "lr": 3e-3},
    "rl_steps": 240,
    "rl": [
        "data.prompts_per_step=16",
        "rollout.group_size=8",
        "rollout.max_new_tokens=5",
        "rollout.temperature=1.0",
        "ppo.epochs=2",
        "ppo.minibatches=4",
        "optim.lr=3e-4",
        "train.save_every=0",
    ],
    "control": ["control.target=0.35", "control.kp=1.0", "control.ki=0.01", "control.anti_windup=clamp"],
    "tolerance": 0.15,
    "smooth": 10,
}

QUICK = {
    **DEMO,
    "data": {**DEMO["data"], "n_train": 1000, "n_test": 50},
    "sft": {**DEMO["sft"], "steps": 150},
    "rl_steps": 30,
}


def verdict(grpo_rows: list[dict], pi_rows: list[dict], *, tolerance: float, smooth: int) -> dict:
    """Did GRPO's entropy fall while EntroPIC held its target (moving average, second half)?"""
    h_g = np.array([r["entropy"] for r in grpo_rows], dtype=float)
    h_p = np.array([r["entropy"] for r in pi_rows], dtype=float)
    target = np.array([r["entropy_target"] for r in pi_rows], dtype=float)
    half = len(h_p) // 2
    ma_p = moving_average(h_p, smooth)[half:]
    rel = np.abs(ma_p - target[half:]) / target[half:]
    g_start = float(np.mean(h_g[: max(smooth, 1)]))
    g_end = float(np.mean(h_g[-max(smooth, 1) :]))
    return {
        "grpo_entropy_start": g_start,
        "grpo_entropy_end": g_end,
        "grpo_drop": 1 - g_end / g_start,
        "entropic_target": float(target[-1]),
        "entropic_mean_abs_rel_error_second_half": float(rel.mean()),
        "entropic_max_abs_rel_error_second_half": float(rel.max()),
        "entropic_within_tolerance": bool(rel.max() <= tolerance),
        "grpo_below_target_end": g_end < float(target[-1]) * (1 - tolerance),
        "tolerance": tolerance,
    }


def run_demo(out: str | Path, *, quick: bool = False, steps: int | None = None, seed: int = 0) -> dict:
    """Run the whole demo into ``out``; returns (and writes) ``summary.json``."""
    spec = QUICK if quick else DEMO
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    times = {}

    build_tiny(out / "tiny", alphabet=alphabet(), seed=seed, **spec["tiny"])
    d = spec["data"]
    train_set, test_set = make_dataset(d["task"], d["n_train"], d["n_test"], d["difficulty"], seed, d["ops"])
    write_jsonl(out / "data" / "train.jsonl", train_set)
    write_jsonl(out / "data" / "test.jsonl", test_set)
    times["setup_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    sft_cfg = load_config(
        SFTConfig,
        None,
        [
            f"model={json.dumps(str(out / 'tiny'))}",
            f"data={json.dumps(str(out / 'data' / 'train.jsonl'))}",
            f"out={json.dumps(str(out / 'sft'))}",
            f"seed={seed}",
            *(f"{k}={v}" for k, v in spec["sft"].items()),
        ],
    )
    sft_summary = sft(sft_cfg)
    times["sft_s"] = time.perf_counter() - t

    n_steps = steps or spec["rl_steps"]
    base = [
        f"model.path={json.dumps(str(out / 'sft'))}",
        f"data.train={json.dumps(str(out / 'data' / 'train.jsonl'))}",
        f"train.steps={n_steps}",
        f"train.seed={seed}",
        "train.progress=false",
        *spec["rl"],
    ]
    rows = {}
    for name, extra in (("grpo", ["control.enabled=false"]), ("entropic", spec["control"])):
        t = time.perf_counter()
        cfg = load_config(RLConfig, None, [*base, *extra, f"train.out={json.dumps(str(out / name))}"])
        rows[name] = train(cfg)
        times[f"{name}_s"] = time.perf_counter() - t
        log.info("%s done in %.0f s", name, times[f"{name}_s"])

    figure = plot_runs(
        [out / "grpo", out / "entropic"],
        out / "compare.png",
        labels=["GRPO", "EntroPIC (PI)"],
        smooth=spec["smooth"],
        title=f"tiny Qwen2 on 2-digit addition, off-policy, {n_steps} steps",
    )
    tests = load_jsonl(out / "data" / "test.jsonl")
    evals = {}
    for name, path in (("sft", out / "sft"), ("grpo", _final(out / "grpo")), ("entropic", _final(out / "entropic"))):
        model, tok = load_model(path)
        evals[name] = evaluate_model(model, tok, tests, k=8, temperature=1.0, max_new_tokens=5, seed=seed)
    times["total_s"] = time.perf_counter() - t0
    summary = {
        "verdict": verdict(rows["grpo"], rows["entropic"], tolerance=spec["tolerance"], smooth=spec["smooth"]),
        "sft": sft_summary,
        "eval": {k: {m: v[m] for m in ("avg@k", "pass@k", "k")} for k, v in evals.items()},
        "seconds": times,
        "figure": str(figure),
        "quick": quick,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _final(run_dir: Path) -> Path:
    from .checkpoint import find_latest

    path = find_latest(run_dir / "checkpoints")
    if path is None:
        raise ValueError(f"{run_dir} has no checkpoint")
    return path
