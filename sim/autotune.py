"""`python -m sim autotune`: fixed official gains, fixed hand-tuned gains and the self-tuning controller
on bandit plants whose gain k differs by more than 30×.

Each plant is the comparison bandit (`sim.methods.methods_problem`) with a different learning rate
(k grows with η) and actuator threshold τ (k grows as τ falls: more tokens are acted on); every
method runs the same seeds as one vectorised batch (`sim.levers.run_lever`). The plant gain is the
self-tuner's own closed-loop estimate k̂ (median over seeds, last step), reported beside the methods.
Table (per plant × method): tail RMS error (last third, % of the target), settling steps (first step
after which the seed-mean entropy stays within ±10 % of the target), α at the limit (% of tail steps
where the seed-mean |α| ≥ 0.999, i.e. essentially every seed saturated).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pic.levers import make_lever
from pic.validation import need

from .levers import run_lever
from .methods import methods_problem
from .plant import PlantConfig

__all__ = ["PLANTS", "AutotuneRow", "run_autotune", "settling_step", "tail_rms"]

log = logging.getLogger(__name__)

PLANTS: dict[str, dict] = {
    "slow (η 0.15, τ 0.95)": {"lr": 0.15, "tau": 0.95},
    "medium (η 1, τ 0.95)": {"lr": 1.0, "tau": 0.95},
    "fast (η 1.5, τ 0.5)": {"lr": 1.5, "tau": 0.5},
}
"""Plant label → learning rate η and actuator threshold τ (sampled mode, G = 16, 4 PPO epochs)."""

METHODS: dict[str, tuple[str, dict]] = {
    "official (Kp 1, Ki 0.01)": ("entropic", {"kp": 1.0, "ki": 0.01}),
    "hand-tuned (Kp 3, Ki 0.05, clamp)": ("entropic", {"kp": 3.0, "ki": 0.05, "anti_windup": "clamp"}),
    "self-tuning (defaults)": ("entropic_auto", {}),
}


def tail_rms(entropy: np.ndarray, target: float) -> float:
    """RMS of H − target over the last third of the steps and all seeds (nats); entropy (steps, seeds)."""
    tail = entropy[-(len(entropy) // 3) :]
    return float(np.sqrt(np.mean((tail - target) ** 2)))


def settling_step(entropy: np.ndarray, target: float, band: float = 0.1) -> int:
    """First step after which the seed-mean entropy stays within ±band·target; len(entropy) if never."""
    outside = np.abs(entropy.mean(axis=1) - target) > band * target
    idx = np.flatnonzero(outside)
    return 0 if idx.size == 0 else int(idx[-1] + 1)


@dataclass
class AutotuneRow:
    plant: str
    method: str
    rms_pct: float
    settling: int
    saturated_pct: float
    k_hat: float | None
    entropy: np.ndarray


def run_autotune(
    *, steps: int = 900, seeds: int = 8, target: float = 0.2, start_entropy: float = 0.3, seed: int = 0
) -> list[AutotuneRow]:
    """Every method on every plant of `PLANTS`; one row per (plant, method)."""
    need(isinstance(steps, int) and steps >= 3, "--steps", "an integer >= 3", steps)
    need(isinstance(seeds, int) and seeds >= 1, "--seeds", "an integer >= 1", seeds)
    need(0 < target < 2.3, "--target", "in (0, 2.3) nats (the 10-arm bandit's entropy is at most ln 10)", target)
    bandit, z0 = methods_problem(seed, start_entropy=start_entropy)
    rows = []
    for plant, overrides in PLANTS.items():
        cfg = PlantConfig(mode="sampled", lr=overrides["lr"], epochs=4)
        for method, (lever_name, params) in METHODS.items():
            lever = make_lever(lever_name, loops=seeds, target=target, tau=overrides["tau"], **params)
            run = run_lever(bandit, z0, lever, cfg, steps=steps, seeds=list(range(seeds)))
            alpha = run.metrics["alpha"][-(steps // 3) :]
            k_hat = float(np.median(lever.controller.k_hat)) if lever_name == "entropic_auto" else None
            rows.append(
                AutotuneRow(
                    plant,
                    method,
                    100 * tail_rms(run.entropy, target) / target,
                    settling_step(run.entropy, target),
                    100 * float(np.mean(np.abs(alpha) >= 0.999)),
                    k_hat,
                    run.entropy,
                )
            )
            log.info("%s | %s: tail RMS %.2f %%", plant, method, rows[-1].rms_pct)
    return rows


def table(rows: list[AutotuneRow]) -> str:
    """Markdown table of the rows."""
    lines = [
        "| plant | k̂ (self-tuner) | method | tail RMS (% of target) | settling steps | α at limit (%) |",
        "|---|---|---|---|---|---|",
    ]
    k_by_plant = {r.plant: r.k_hat for r in rows if r.k_hat is not None}
    for r in rows:
        k = k_by_plant.get(r.plant)
        k_txt = f"{k:.2g}" if k is not None else "–"
        lines.append(f"| {r.plant} | {k_txt} | {r.method} | {r.rms_pct:.2f} | {r.settling} | {r.saturated_pct:.0f} |")
    return "\n".join(lines)


def figure(rows: list[AutotuneRow], target: float, path: Path) -> None:
    """Seed-mean entropy of each method, one panel per plant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plants = list(dict.fromkeys(r.plant for r in rows))
    fig, axes = plt.subplots(1, len(plants), figsize=(5 * len(plants), 3.6), sharey=True)
    for ax, plant in zip(np.atleast_1d(axes), plants, strict=True):
        for r in (r for r in rows if r.plant == plant):
            mean = r.entropy.mean(axis=1)
            ax.plot(mean, label=f"{r.method}: {r.rms_pct:.1f} %")
            lo, hi = np.percentile(r.entropy, [10, 90], axis=1)
            ax.fill_between(np.arange(len(mean)), lo, hi, alpha=0.15)
        ax.axhline(target, color="k", lw=0.8, ls="--")
        ax.axvspan(2 * len(mean) // 3, len(mean), color="0.9", zorder=0)
        k = next((r.k_hat for r in rows if r.plant == plant and r.k_hat is not None), None)
        ax.set_title(f"{plant}, k̂ ≈ {k:.2g}" if k else plant, fontsize=9)
        ax.set_xlabel("RL step")
        ax.legend(fontsize=7, title="tail RMS (shaded: last third)", title_fontsize=7)
    np.atleast_1d(axes)[0].set_ylabel("entropy (nats), mean and 10–90 % of seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def cmd_autotune(args) -> int:
    """The CLI entry point: writes autotune.png, autotune.md and autotune.json to ``args.out``."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = run_autotune(steps=args.steps, seeds=args.seeds, target=args.target)
    figure(rows, args.target, out / "autotune.png")
    text = table(rows)
    (out / "autotune.md").write_text(text + "\n")
    payload = [{k: v for k, v in r.__dict__.items() if k != "entropy"} for r in rows]
    (out / "autotune.json").write_text(json.dumps(payload, indent=1))
    print(text)  # noqa: T201  (the CLI prints its table)
    return 0


def add_parser(sub) -> None:
    """Register ``autotune`` on the `python -m sim` subparsers."""
    p = sub.add_parser("autotune", help="official vs hand-tuned vs self-tuning gains on plants 30× apart in k")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--steps", type=int, default=900, help="RL steps per run (default 900)")
    p.add_argument("--seeds", type=int, default=8, help="seeds per method (default 8)")
    p.add_argument("--target", type=float, default=0.2, help="entropy target in nats (default 0.2)")
    p.set_defaults(func=cmd_autotune)
