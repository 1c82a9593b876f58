"""Figures for sweeps, closed-loop comparisons, reachable bands, windup and method reports (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from pic import LoopHistory
from pic.levers import report
from pic.levers.report import MethodResult, moving_average

from .compare import ControllerRun
from .identify import PlantMap
from .sweep import SweepResult

__all__ = [
    "method_styles",
    "plot_band",
    "plot_compare",
    "plot_linear",
    "plot_methods",
    "plot_sweep",
    "plot_targets",
    "plot_windup",
    "write_report",
]

COLORS = {"GRPO": "tab:red", "P": "tab:orange", "PI": "tab:blue"}


def _jury_lines(ax, kp_max: float, ki_max: float) -> None:
    """Draw the PI stability boundary in normalised gains (K_p = k·kp, K_i = k·ki)."""
    kp = np.linspace(0, kp_max, 200)
    style = {"color": "black", "lw": 1.4}
    ax.plot(kp, kp, ls="--", **style, label="K_i = K_p")
    ax.plot(kp, 2 * kp - 4, ls="-", **style, label="2K_p − K_i = 4")
    ax.plot(kp, kp - 2, ls=":", **style, label="K_p − K_i = 2 (implied)")
    ax.set_xlim(0, kp_max)
    ax.set_ylim(0, ki_max)


def plot_sweep(result: SweepResult, path: str | Path, title: str = "") -> Path:
    """Four heatmaps over (K_p, K_i) with the Jury boundary drawn on each."""
    kp, ki = result.kp_norm, result.ki_norm
    extent = (kp[0], kp[-1], ki[0], ki[-1])
    sim = result.sim
    panels = [
        ("converged (simulation)", np.where(sim["converged"], 1.0, 0.0), "Greens", None),
        (
            "|steady-state error| (nats, log10)",
            np.where(sim["converged"], np.log10(np.abs(sim["final"]) + 1e-12), np.nan),
            "viridis",
            None,
        ),
        ("settling steps (2 %)", np.where(np.isfinite(sim["settling"]), sim["settling"], np.nan), "magma", None),
        ("overshoot (%)", np.where(sim["converged"], sim["overshoot"], np.nan), "cividis", (0, 100)),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(11.5, 9.5), constrained_layout=True)
    yes_no = ListedColormap(["#d9d9d9", "#2e8b57"])
    units = ("", "log10 of nats", "rollout steps", "% of |e₀ − final|")
    for ax, (name, data, cmap, lims), unit in zip(axes.flat, panels, units, strict=True):
        vmin, vmax = lims if lims else (None, None)
        if cmap == "Greens":  # yes/no data: two colours and a legend, no colour bar
            ax.imshow(data, origin="lower", extent=extent, aspect="auto", cmap=yes_no, vmin=0, vmax=1)
        else:
            im = ax.imshow(data, origin="lower", extent=extent, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax)
            fig.colorbar(im, ax=ax, shrink=0.85, label=unit)
        _jury_lines(ax, kp[-1], ki[-1])
        ax.set_title(name + ("" if cmap == "Greens" else "\n(blank: did not converge)"), fontsize=10)
        ax.set_xlabel("K_p = k·kp (normalised proportional gain)")
        ax.set_ylabel("K_i = k·ki (normalised integral gain)")
    disagree = sim["converged"] != result.pred["converged"]
    handles = [
        Patch(color="#2e8b57", label="converged"),
        Patch(color="#d9d9d9", label="did not converge"),
    ]
    if disagree.any():
        kpg, kig = np.meshgrid(kp, ki)
        axes[0, 0].scatter(kpg[disagree], kig[disagree], s=10, c="red", marker="x")
        handles.append(Line2D([], [], color="red", marker="x", ls="", label="sim ≠ prediction"))
    line_handles, _ = axes[0, 0].get_legend_handles_labels()
    axes[0, 0].legend(handles=handles + line_handles, loc="upper left", fontsize=7, framealpha=0.9)
    op = result.op
    fig.suptitle(
        f"{title}  target {op.target:g} nats, k = {op.k:.3g}, b = {op.b:.2g}, α* = {op.alpha:+.3f}; "
        f"agreement {100 * result.agreement:.1f} % of {disagree.size} cells\n"
        "bottom row K_i = 0 is P control: it settles with the offset b/(k·kp) instead of reaching the target "
        "(the larger error there);\nthe PI region of the Jury test (black lines) needs K_i > 0",
        fontsize=10,
    )
    return _save(fig, path)


STYLES = {"GRPO": {"ls": "-", "lw": 1.4}, "P": {"ls": "--", "lw": 2.4}, "PI": {"ls": "-", "lw": 1.2}}
"""P is drawn dashed and wider under PI so that the two stay visible where they coincide."""

ALPHA_LABEL = "α (weight change of confident tokens)"


def plot_compare(
    runs_by_plant: Mapping[str, Sequence[ControllerRun]],
    bands: Mapping[str, tuple[float, float] | None],
    path: str | Path,
) -> Path:
    """Entropy (with target and this plant's reachable band), error and α vs step, one column per plant.

    The band is drawn per plant (it depends on the plant's k(H) and b(H)); GRPO has no
    controller, so it is free to leave the band, which only bounds what α can hold.
    """
    names = list(runs_by_plant)
    fig, axes = plt.subplots(3, len(names), figsize=(6.5 * len(names), 10), sharex="col", constrained_layout=True)
    axes = np.atleast_2d(axes).reshape(3, len(names))
    for col, plant in enumerate(names):
        ax_h, ax_e, ax_a = axes[0, col], axes[1, col], axes[2, col]
        band = bands.get(plant)
        if band:
            ax_h.axhspan(
                *band,
                color="tab:green",
                alpha=0.12,
                label=(
                    f"reachable band of this plant: {band[0]:.3f}–{band[1]:.3f} nats\n"
                    "(targets α can hold with |α| ≤ 1, measured along GRPO)"
                ),
            )
        for run in runs_by_plant[plant]:
            style = {"color": COLORS.get(run.name), **STYLES.get(run.name, {})}
            label = run.name + (" (no controller)" if run.name == "GRPO" else "")
            ax_h.plot(run.entropy, label=label, **style)
            ax_a.plot(run.alpha, label=label, **style)
            if np.isfinite(run.target).any():
                label = run.name
                if "predicted_error" in run.info:
                    label += f" (predicted b/(k·kp) = {run.info['predicted_error']:+.1e})"
                ax_e.plot(run.entropy - run.target, label=label, **style)
                if "predicted_error" in run.info:
                    ax_e.axhline(run.info["predicted_error"], color=style["color"], ls=":", lw=1)
        target = next((r.target for r in runs_by_plant[plant] if np.isfinite(r.target).any()), None)
        if target is not None:
            ax_h.plot(target, color="black", ls=":", lw=1.2, label="target")
        ax_h.set_yscale("log")
        ax_h.set_ylabel("entropy (nats, log scale)")
        ax_h.set_title(plant)
        ax_h.legend(fontsize=8)
        ax_e.set_yscale("symlog", linthresh=1e-4)
        ax_e.axhline(0, color="black", lw=0.6)
        ax_e.set_ylabel("H − target (nats, symlog)")
        ax_e.legend(fontsize=8)
        ax_a.set_ylabel(ALPHA_LABEL)
        ax_a.set_xlabel("rollout step")
        ax_a.axhline(0, color="grey", lw=0.5)
        ax_a.legend(fontsize=8)
        for ax in (ax_h, ax_e, ax_a):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_band(maps: Mapping[str, PlantMap], path: str | Path) -> Path:
    """Actuator authority k(H)·α_max against the drift |b(H)| along the GRPO trajectory."""
    fig, axes = plt.subplots(1, len(maps), figsize=(6 * len(maps), 4.2), constrained_layout=True, squeeze=False)
    for ax, (name, pm) in zip(axes[0], maps.items(), strict=True):
        ax.plot(pm.entropy, pm.k * pm.alpha_max, label="authority k(H)·α_max", color="tab:blue")
        ax.plot(pm.entropy, np.abs(pm.b), label="|drift b(H)|", color="tab:red")
        band = pm.band()
        if band:
            ax.axvspan(*band, color="tab:green", alpha=0.12, label=f"reachable: {band[0]:.3f}–{band[1]:.3f}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("entropy H (nats)")
        ax.set_ylabel("nats per rollout")
        ax.set_title(name)
        ax.legend(fontsize=8)
    return _save(fig, path)


WINDUP_STYLES = {
    "PI (none)": {"color": "tab:red", "ls": "-", "lw": 1.3},
    "PI (clamp)": {"color": "tab:blue", "ls": "--", "lw": 2.4},
    "PI (back_calculation)": {"color": "tab:green", "ls": "-", "lw": 1.1},
}
"""Clamp dashed and wider under back-calculation so that both stay visible where they agree."""


def plot_windup(runs: Sequence[ControllerRun], switch_step: int, path: str | Path, title: str = "") -> Path:
    """Entropy, α and integral of PI variants under a setpoint that leaves and re-enters the band.

    The plant is the exact expectation (no sampling noise). Without anti-windup the integral
    keeps α at its limit long after the switch; the entropy's sawtooth under that saturated α
    is the plant's own response, which over thousands of steps looks like a smeared band.
    """
    fig, axes = plt.subplots(3, 1, figsize=(9.5, 9), sharex=True, constrained_layout=True)
    for run in runs:
        rec = run.info.get("recovery_steps")
        style = WINDUP_STYLES.get(run.name, {})
        label = f"{run.name}: back within 10 % of the target {'never' if rec is None else f'after {rec} steps'}"
        axes[0].plot(run.entropy, label=label, **style)
        axes[1].plot(run.alpha, label=run.name, **style)
        axes[2].plot(run.integral, label=run.name, **style)
    axes[0].plot(runs[0].target, color="black", ls=":", lw=1.2, label="target (steps down at the grey line)")
    for ax in axes:
        ax.axvline(switch_step, color="grey", lw=0.7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("entropy (nats, log scale)")
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=8)
    axes[1].set_ylabel(ALPHA_LABEL)
    axes[1].legend(fontsize=8)
    axes[2].set_ylabel("integral S of H − target\n(nat·steps, symlog)")
    axes[2].set_yscale("symlog", linthresh=1e-2)
    axes[2].set_xlabel("rollout step")
    axes[2].legend(fontsize=8)
    axes[0].set_title(
        title + "\nexact plant (no sampling noise); the sawtooth is the loop with α stuck at its limit", fontsize=10
    )
    return _save(fig, path)


def plot_linear(histories: Mapping[str, LoopHistory], path: str | Path, title: str = "") -> Path:
    """Entropy and α of closed loops on the linear plant."""
    fig, axes = plt.subplots(2, 1, figsize=(8, 6), sharex=True, constrained_layout=True)
    for name, hist in histories.items():
        axes[0].plot(hist.entropy, label=name)
        axes[1].plot(hist.alpha, label=name)
    target = next(iter(histories.values())).target
    axes[0].plot(target, color="black", ls="--", lw=1, label="target")
    axes[0].set_ylabel("entropy (nats)")
    axes[0].legend(fontsize=8)
    axes[1].set_ylabel(ALPHA_LABEL)
    axes[1].legend(fontsize=8)
    axes[1].set_xlabel("step")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].set_title(title)
    return _save(fig, path)


_PI = "EntroPIC (closed loop on α)"
_CLIP = "clipping (clip-higher, CE-GPPO, flexible, Clip-Cov, KL-Cov, BAPO)"
_PG = "PG weights (NSR, W-REINFORCE, entropy advantage, top-entropy tokens)"
_COEF = "coefficients (entropy bonus, KL, adaptive, SAC, AEnt)"
_EXTRA = "extra samples (AEPO)"
_OTHER = "other"

FAMILIES = (
    ("entropic", _PI),
    ("clip", _CLIP),
    ("cov", _CLIP),
    ("gppo", _CLIP),
    ("flexec", _CLIP),
    ("bapo", _CLIP),
    ("nsr", _PG),
    ("reinforce", _PG),
    ("entropy_advantage", _PG),
    ("top_entropy", _PG),
    ("aent", _COEF),
    ("kl", _COEF),
    ("entropy", _COEF),
    ("sac", _COEF),
    ("skywork", _COEF),
    ("aepo", _EXTRA),
)
"""Name fragment → family (first match); families share a colour map, members differ in shade and line style."""

FAMILY_CMAPS = {_PI: "Blues", _CLIP: "Oranges", _COEF: "Greens", _PG: "Purples", _EXTRA: "Reds", _OTHER: "Greys"}
"""A family's colour map, fixed so a family has the same colours in every figure."""


def method_styles(names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """A colour and line style per method, grouped by family (up to ~25 methods stay distinguishable).

    Each family has its own sequential colour map (EntroPIC blues, clipping oranges, coefficient
    greens, PG weights purples, extra samples reds, others greys; GRPO black); members step
    through shades (never near white or black) and four line styles.
    """
    family_of = {}
    for name in names:
        low = name.lower()
        family_of[name] = (
            "GRPO" if low in ("grpo", "grpo (none)") else next((f for key, f in FAMILIES if key in low), _OTHER)
        )
    families = list(dict.fromkeys(f for f in family_of.values() if f != "GRPO"))
    linestyles = ("-", "--", "-.", ":")
    styles: dict[str, dict[str, Any]] = {}
    for family in families:
        members = [n for n in names if family_of[n] == family]
        cmap = plt.get_cmap(FAMILY_CMAPS[family])
        shades = np.linspace(0.85, 0.45, max(len(members), 1)) if len(members) > 1 else np.array([0.7])
        for m_index, name in enumerate(members):
            styles[name] = {"color": cmap(shades[m_index]), "ls": linestyles[m_index % 4], "family": family}
    for name in names:
        if family_of[name] == "GRPO":
            styles[name] = {"color": "black", "ls": "-", "family": "GRPO"}
    return styles


def plot_methods(results: list[MethodResult], path: str | Path, *, reference_target, window: int, title: str) -> Path:
    """Entropy (with targets), α or coefficient, reward and clip fraction vs step, shared axes.

    Lines are means over seeds of an H̄ moving average of ``window`` steps; the shaded area is
    the seeds' min–max. A method's own setpoint is the thin dotted line in its colour.
    """
    fig, axes = plt.subplots(4, 1, figsize=(14, 14), sharex=True, layout="constrained")
    styles = method_styles([r.name for r in results])
    steps = None
    for r in results:
        st = styles[r.name]
        style = {"color": st["color"], "ls": st["ls"]}
        steps = np.arange(1, r.entropy.shape[0] + 1)
        for ax, data in ((axes[0], r.entropy), (axes[2], r.reward), (axes[3], r.clip_frac)):
            smooth = moving_average(data, window)
            ax.plot(steps, smooth.mean(1), lw=1.7, label=r.name, **style)
            if smooth.shape[1] > 1:
                ax.fill_between(steps, smooth.min(1), smooth.max(1), color=st["color"], alpha=0.08, lw=0)
        if r.target is not None and not np.allclose(r.target, reference_target):
            axes[0].plot(steps, r.target, color=st["color"], lw=0.9, ls=(0, (1, 2)))
        if r.coef is not None:
            axes[1].plot(steps, np.nanmean(r.coef, axis=1), lw=1.4, label=f"{r.name} ({r.coef_label})", **style)
    if steps is not None:
        axes[0].plot(
            steps,
            np.broadcast_to(reference_target, steps.shape),
            color="0.35",
            lw=1.4,
            ls=":",
            label="reference target H*\n(dotted in a method's colour:\nits own setpoint schedule)",
        )
    top = max(
        [2.5 * float(np.max(reference_target))]
        + [1.2 * float(np.max(r.target)) for r in results if r.target is not None]
    )
    axes[0].set_ylim(0.0, top)
    axes[0].set_ylabel("entropy (nats)")
    axes[1].set_ylabel("α or coefficient\n(dimensionless, symlog)")
    axes[1].set_yscale("symlog", linthresh=1e-3)
    axes[2].set_ylabel("reward (expected, 0–1)")
    axes[3].set_ylabel("clip fraction (0–1)")
    axes[3].set_xlabel("RL step")
    axes[3].xaxis.set_major_locator(MaxNLocator(integer=True))
    smoothing = f"{window}-step moving average" if window > 1 else "no smoothing"
    axes[0].set_title(f"{title}\nlines: mean over seeds ({smoothing}); shaded: min–max over seeds", fontsize=10)
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="method (by family)")
    if axes[1].get_legend_handles_labels()[0]:
        axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def write_report(
    results: list[MethodResult], out: str | Path, *, reference_target: float, title: str, **table: Any
) -> list[dict[str, Any]]:
    """`pic.levers.report.write_report` (``report.md``, ``report.json``) plus the figure ``report.png``.

    ``table`` is passed on (``extra_columns``, ``tolerance``, ``notes``); returns the table rows.
    """
    rows = report.write_report(results, out, reference_target=reference_target, title=title, **table)
    window = report.report_window(results)
    plot_methods(results, Path(out) / "report.png", reference_target=reference_target, window=window, title=title)
    return rows


def plot_targets(runs, band: tuple[float, float], path: str | Path, *, window: int, title: str) -> Path:
    """One panel per target: each target-holding method's seed-mean H (moving average of ``window``), the target
    (dashed) and its ±10 % band (shaded), and the reachable band's edges (dotted). ``runs``: `sim.targets.TargetRun`."""
    targets = sorted({r.target for r in runs})
    styles = method_styles(list(dict.fromkeys(r.method for r in runs)))
    fig, axes = plt.subplots(1, len(targets), figsize=(4.2 * len(targets), 4.2), sharex=True, layout="constrained")
    for ax, t in zip(np.atleast_1d(axes), targets, strict=True):
        ax.axhspan(0.9 * t, 1.1 * t, color="0.85", lw=0)
        ax.axhline(t, color="k", ls="--", lw=1)
        for edge in band:
            ax.axhline(edge, color="0.4", ls=":", lw=1)
        for r in (r for r in runs if r.target == t):
            st = styles[r.method]
            ax.plot(moving_average(r.entropy, window), color=st["color"], ls=st["ls"], lw=1.4, label=r.method)
        inside = band[0] <= t <= band[1]
        ax.set_title(f"H* = {t:g} nats" + ("" if inside else " (outside the band)"), fontsize=10)
        ax.set_xlabel("RL step")
        ax.set_yscale("log")
    np.atleast_1d(axes)[0].set_ylabel("entropy H (nats, seed mean)")
    np.atleast_1d(axes)[-1].legend(fontsize=8, loc="upper right")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
