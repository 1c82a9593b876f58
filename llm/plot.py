"""``python -m llm plot RUN_DIR...``: entropy vs target, α, integral and reward on shared axes."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from pic.levers.report import moving_average

from .metrics import read_metrics

__all__ = ["finish_figure", "moving_average", "plot_runs"]


def _series(rows, key):
    return np.array([np.nan if r.get(key) is None else r[key] for r in rows], dtype=float)


def plot_runs(
    run_dirs: list[str | Path], out: str | Path, *, labels: list[str] | None = None, smooth: int = 10, title: str = ""
) -> Path:
    """Four stacked panels for one or several runs; raw values faint, moving averages bold."""
    labels = labels or [Path(d).name for d in run_dirs]
    fig, axes = plt.subplots(4, 1, figsize=(9, 11), sharex=True, constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (run, label) in enumerate(zip(run_dirs, labels, strict=True)):
        rows = read_metrics(run)
        if not rows:
            continue
        c = colors[i % len(colors)]
        step = _series(rows, "step")
        for ax, key in zip(axes, ("entropy", "alpha", "integral", "reward_mean"), strict=True):
            y = _series(rows, key)
            ax.plot(step, y, color=c, alpha=0.25, lw=0.8)
            ax.plot(step, moving_average(y, smooth), color=c, lw=1.8, label=label)
        target = _series(rows, "entropy_target")
        controlled = np.any(_series(rows, "alpha") != 0)
        if controlled and np.isfinite(target).any():
            axes[0].plot(step, target, color=c, ls="--", lw=1.2, label=f"{label} target")
    return finish_figure(fig, axes, out, title, ("entropy (nats)", "α", "integral", "reward"))


def finish_figure(fig, axes, out, title: str, ylabels) -> Path:
    """Label the four shared-x panels (entropy, α, integral, reward), save the PNG, close the figure."""
    for ax, label in zip(axes, ylabels, strict=True):
        ax.set_ylabel(label)
    axes[-1].set_xlabel("RL step")
    axes[0].legend(fontsize=8)
    axes[-1].legend(fontsize=8)
    if title:
        axes[0].set_title(title)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
