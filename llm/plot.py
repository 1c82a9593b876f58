"""``python -m llm plot RUN_DIR...``: entropy vs target, α, integral and reward on shared axes."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from pic.levers.report import moving_average

from .metrics import read_metrics

__all__ = ["YLABELS", "finish_figure", "moving_average", "plot_runs"]


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
            if np.isfinite(y).any():
                ax.plot(step, moving_average(y, smooth), color=c, lw=1.8, label=label)
        target = _series(rows, "entropy_target")
        controlled = np.any(_series(rows, "alpha") != 0)
        if controlled and np.isfinite(target).any():
            axes[0].plot(step, target, color=c, ls="--", lw=1.2, label=f"{label} target")
    names = ", ".join(labels)
    title = title or f"{names}: {smooth}-step moving averages (bold) over raw values (faint)"
    return finish_figure(fig, axes, out, title, YLABELS)


YLABELS = (
    "entropy (nats/token)",
    "α (weight change of confident tokens, ±)",
    "integral (nat·steps)",
    "reward (batch mean, 0–1)",
)
"""Axis labels with units of the four panels (entropy, α, integral, reward)."""


def finish_figure(fig, axes, out, title: str, ylabels) -> Path:
    """Label the four shared-x panels (entropy, α, integral, reward), save the PNG, close the figure.

    Steps are integers: the x ticks are placed on whole steps. Every panel with a labelled line
    gets a legend (the α and integral panels of a run without a controller stay empty of lines).
    """
    from matplotlib.ticker import MaxNLocator

    for ax, label in zip(axes, ylabels, strict=True):
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    axes[-1].set_xlabel("RL step")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        axes[0].set_title(title, fontsize=10)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
