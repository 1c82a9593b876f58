"""Figures of the theory pages: the gain map and the stability regions with delay and plant memory."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from pic.stability import is_stable

from .gain_map import K_I, K_P, GainPoint, linear_response

__all__ = ["plot_delay_region", "plot_gain_map"]

FACTOR_TITLES = {
    "tau": ("threshold τ", "τ"),
    "lr": ("SGD step size η (per context)", "η"),
    "temperature": ("sampling temperature T", "T"),
    "optimizer": ("optimizer", ""),
    "updates": ("epochs × mini-batches per rollout", "M"),
}


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_gain_map(points: Sequence[GainPoint], path: str | Path, contexts: int = 32) -> Path:
    """One panel per factor (k and |b| against its value, log scale) and the step responses."""
    fig, axes = plt.subplots(2, 3, figsize=(14, 8), constrained_layout=True)
    for ax, factor in zip(axes.ravel()[:5], FACTOR_TITLES, strict=True):
        pts = [p for p in points if p.factor == factor]
        title, xlabel = FACTOR_TITLES[factor]
        numeric = factor in ("tau", "lr", "temperature")
        x = [float(p.label) for p in pts] if numeric else np.arange(len(pts))
        ax.plot(x, [p.k for p in pts], "o-", color="tab:blue", label="k (nats per unit α per rollout)")
        ax.plot(x, [abs(p.b) for p in pts], "s--", color="tab:red", label="|b| (nats per rollout)")
        ax.set_yscale("log")
        if factor == "lr":
            ax.set_xscale("log")
            ax.set_xticks(x, [p.label for p in pts])
            ax.minorticks_off()
        if not numeric:
            ax.set_xticks(x, [p.label for p in pts])
        ax.set_xlabel(xlabel or factor)
        ax.set_ylabel("nats per rollout")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    ax = axes.ravel()[5]
    steps = len(points[0].response)
    t = np.arange(steps)
    lr_pts = [p for p in points if p.factor == "lr"]
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.85, len(lr_pts)))
    for p, color in zip(lr_pts, colors, strict=True):
        ax.plot(t, p.response, "o-", ms=3, color=color, lw=1.2, label=f"η = {p.label} (k = {p.k:.1e})")
    ax.plot(t, linear_response(steps), "k--", lw=2, label="linear loop, any k")
    ax.set_ylim(-2, 2)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # rollouts are whole steps
    ax.set_xlabel("rollout after a setpoint step of −0.005 nats")
    ax.set_ylabel("e_t / e_0 (normalised error)")
    ax.set_title(f"PI at k·kp = {K_P}, k·ki = {K_I}: linear as η → 0", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.suptitle(
        f"Gain map of the {contexts}-context bandit at one policy (H = {points[0].entropy:.2f} nats),"
        " one factor at a time around SGD η 0.2, τ 0.7, T 1, 1×1; α_max = 1 holds the target only where k ≥ |b|"
    )
    return _save(fig, path)


def plot_delay_region(path: str | Path, *, kp_max: float = 2.2, ki_max: float = 1.2, n: int = 241) -> Path:
    """Stable (K_p, K_i) for measurement delay d = 0, 1, 2 and for Adam-like plant memory β = 0.9;
    the official gains Kp = 1, Ki = 0.01 sweep the ray K_i = 0.01·K_p as k grows."""
    kp, ki = np.meshgrid(np.linspace(0, kp_max, n), np.linspace(0, ki_max, n))
    fig, ax = plt.subplots(figsize=(7.5, 5.5), constrained_layout=True)
    cases = [
        ("no delay (d = 0)", {"delay": 0}, "tab:blue"),
        ("one step of delay (d = 1: verl/TRL plug-ins)", {"delay": 1}, "tab:orange"),
        ("d = 2", {"delay": 2}, "tab:red"),
        ("plant memory β = 0.9 (Adam), d = 0", {"memory": 0.9}, "tab:green"),
    ]
    handles = []
    for label, kw, color in cases:
        stable = is_stable(kp, ki, 1.0, **kw).astype(float)
        ax.contourf(kp, ki, stable, levels=[0.5, 1.5], colors=[color], alpha=0.25)
        ax.contour(kp, ki, stable, levels=[0.5], colors=[color], linewidths=1.5)
        frac = stable[ki > 0].mean()
        handles.append(plt.Line2D([], [], color=color, lw=6, alpha=0.5, label=f"{label}: {frac:.1%} of the box"))
    ray = np.linspace(0, kp_max, 50)
    (h,) = ax.plot(ray, 0.01 * ray, "k-", lw=2, label="official Kp 1, Ki 0.01: (k, 0.01k) as k grows")
    handles.append(h)
    k_max = ray[is_stable(1.0, 0.01, ray, delay=1)].max()
    ax.plot([k_max], [0.01 * k_max], "kx", ms=10)
    ax.annotate(
        f"d = 1: stable up to k ≈ {k_max:.2f}",
        (k_max, 0.01 * k_max),
        (k_max + 0.1, 0.12),
        arrowprops={"arrowstyle": "->", "lw": 0.8},
    )
    ax.set_xlabel("K_p = k·kp (k: nats per unit α per step)")
    ax.set_ylabel("K_i = k·ki")
    ax.set_xlim(0, kp_max)
    ax.set_ylim(0, ki_max)
    ax.set_title("Stable normalised PI gains with measurement delay and plant memory")
    ax.legend(handles=handles, fontsize=8, loc="upper right")
    ax.grid(alpha=0.3)
    return _save(fig, path)
