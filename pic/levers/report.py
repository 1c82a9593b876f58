"""Comparison reports of entropy-control methods: one figure and one markdown table.

Both comparison runners (`python -m sim compare`, `python -m llm compare`) fill a
`MethodResult` per method — trajectories of shape (steps, seeds) — and call `write_report`.

Per method (means over seeds; "second half" = the last half of the steps; H̄ = the entropy
smoothed by a moving average of ``window`` steps)::

    tracking error = mean_{second half} |H̄ − H*|           (H* = the method's own target, else the reference)
    relative error = tracking error / mean H*
    final entropy  = mean H over the last 10 % of steps

Verdict: **holds** if the relative error is ≤ ``tolerance`` (15 %); otherwise, with H*_end
the target over the last 10 %, **collapses** if the final entropy is below H*_end / 2,
**explodes** if it ends above both 2·H*_end and the initial entropy, and else **below
target** / **above target**.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MethodResult", "moving_average", "summarize", "write_report"]


@dataclass
class MethodResult:
    """One method's trajectories over seeds; arrays of shape (steps, seeds)."""

    name: str
    entropy: np.ndarray
    reward: np.ndarray
    clip_frac: np.ndarray
    coef: np.ndarray | None = None
    """α (EntroPIC) or the entropy coefficient (bonus methods), for the second panel."""
    coef_label: str = ""
    target: np.ndarray | None = None
    """The method's own entropy target per step (None for open-loop methods)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """More table columns (avg@k, pass@k, wall time …)."""

    def __post_init__(self):
        for key in ("entropy", "reward", "clip_frac", "coef"):
            value = getattr(self, key)
            if value is not None:
                arr = np.asarray(value, dtype=float)
                setattr(self, key, arr[:, None] if arr.ndim == 1 else arr)


def moving_average(x, window: int) -> np.ndarray:
    """Trailing mean over ``window`` steps along axis 0 (shorter at the start), ignoring NaNs.

    A point whose whole window is NaN stays NaN. Works on (steps,) and (steps, seeds) arrays.
    """
    x = np.asarray(x, dtype=float)
    if window <= 1:
        return x
    finite = np.isfinite(x)
    csum = np.cumsum(np.where(finite, x, 0.0), axis=0)
    ccount = np.cumsum(finite, axis=0).astype(float)
    csum[window:] = csum[window:] - csum[:-window].copy()
    ccount[window:] = ccount[window:] - ccount[:-window].copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ccount > 0, csum / np.maximum(ccount, 1), np.nan)


def summarize(r: MethodResult, reference_target, *, window: int, tolerance: float = 0.15) -> dict[str, Any]:
    """The table row of one method (see the module docstring)."""
    steps = r.entropy.shape[0]
    target = r.target if r.target is not None else np.broadcast_to(np.asarray(reference_target, float), (steps,))
    target = np.asarray(target, dtype=float).reshape(-1, 1)
    smooth = moving_average(r.entropy, window)
    half = slice(steps // 2, steps)
    tail = slice(steps - max(steps // 10, 1), steps)
    err_per_seed = np.abs(smooth[half] - target[half]).mean(axis=0)
    h_star = float(target[half].mean())
    rel = float(err_per_seed.mean()) / h_star if h_star > 0 else float("inf")
    h0, h_end = float(r.entropy[0].mean()), float(r.entropy[tail].mean())
    t_end = float(target[tail].mean())
    if rel <= tolerance:
        verdict = "holds"
    elif h_end < 0.5 * t_end:
        verdict = "collapses"
    elif h_end > 2 * t_end and h_end > h0:
        verdict = "explodes"
    else:
        verdict = "below target" if h_end < t_end else "above target"
    return {
        "method": r.name,
        "target": h_star,
        "tracking_error": float(err_per_seed.mean()),
        "tracking_error_std": float(err_per_seed.std()),
        "relative_error": rel,
        "initial_entropy": h0,
        "final_entropy": h_end,
        "final_reward": float(r.reward[tail].mean()),
        "clip_frac": float(np.nanmean(r.clip_frac)),
        "seeds": int(r.entropy.shape[1]),
        "verdict": verdict,
        **r.extra,
    }


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.3e}"
    return str(v)


def markdown_table(rows: list[dict[str, Any]], extra: list[str]) -> str:
    cols = [
        "method",
        "verdict",
        "target",
        "tracking_error",
        "relative_error",
        "final_entropy",
        "final_reward",
        "clip_frac",
    ]
    cols += [c for c in extra if c not in cols] + ["seeds"]
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    body = ""
    for row in rows:
        cells = []
        for c in cols:
            v = row.get(c, "")
            if c == "tracking_error" and "tracking_error_std" in row and row.get("seeds", 1) > 1:
                cells.append(f"{v:.3g} ± {row['tracking_error_std']:.2g}")
            else:
                cells.append(_fmt(v))
        body += "| " + " | ".join(cells) + " |\n"
    return head + body


def plot(results: list[MethodResult], path: Path, *, reference_target, window: int, title: str) -> None:
    """Entropy (with targets), α or coefficient, reward and clip fraction vs step, shared axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(11, 13), sharex=True)
    colors = plt.get_cmap("tab20")(np.linspace(0, 1, 20))
    steps = None
    for i, r in enumerate(results):
        color = colors[(2 * i) % 20 if i < 10 else (2 * (i - 10) + 1) % 20]
        steps = np.arange(1, r.entropy.shape[0] + 1)
        for ax, data in ((axes[0], r.entropy), (axes[2], r.reward), (axes[3], r.clip_frac)):
            smooth = moving_average(data, window)
            ax.plot(steps, smooth.mean(1), color=color, lw=1.6, label=r.name)
            if smooth.shape[1] > 1:
                ax.fill_between(steps, smooth.min(1), smooth.max(1), color=color, alpha=0.12, lw=0)
        if r.target is not None:
            axes[0].plot(steps, r.target, color=color, lw=1.0, ls="--")
        if r.coef is not None:
            axes[1].plot(steps, np.nanmean(r.coef, axis=1), color=color, lw=1.4, label=f"{r.name} ({r.coef_label})")
    if steps is not None:
        axes[0].plot(
            steps, np.broadcast_to(reference_target, steps.shape), color="k", lw=1.0, ls=":", label="reference target"
        )
    top = max(
        [2.5 * float(np.max(reference_target))]
        + [1.2 * float(np.max(r.target)) for r in results if r.target is not None]
    )
    axes[0].set_ylim(0.0, top)
    axes[0].set_ylabel("entropy (nats)")
    axes[1].set_ylabel("α  /  coefficient")
    axes[1].set_yscale("symlog", linthresh=1e-3)
    axes[2].set_ylabel("reward")
    axes[3].set_ylabel("clip fraction")
    axes[3].set_xlabel("RL step")
    axes[0].set_title(title)
    axes[0].legend(fontsize=7, ncol=3, loc="upper right")
    axes[1].legend(fontsize=6, ncol=2, loc="best")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    results: list[MethodResult],
    out: str | Path,
    *,
    reference_target: float,
    title: str,
    extra_columns: list[str] | None = None,
    tolerance: float = 0.15,
    notes: str = "",
) -> list[dict[str, Any]]:
    """Write ``report.png``, ``report.md`` and ``report.json`` to ``out``; return the table rows."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    steps = max(r.entropy.shape[0] for r in results)
    window = max(steps // 20, 1)
    rows = [summarize(r, reference_target, window=window, tolerance=tolerance) for r in results]
    plot(results, out / "report.png", reference_target=reference_target, window=window, title=title)
    md = (
        f"# {title}\n\n"
        f"Tracking error = mean |H̄ − H*| over the second half (H̄: moving average of {window} steps; H* the "
        f"method's own target, else the reference {reference_target:g} nats); verdict 'holds' within "
        f"{100 * tolerance:.0f} %.\n\n" + markdown_table(rows, extra_columns or []) + (f"\n{notes}\n" if notes else "")
    )
    (out / "report.md").write_text(md)
    (out / "report.json").write_text(json.dumps({"title": title, "rows": rows}, indent=2, default=float) + "\n")
    return rows
