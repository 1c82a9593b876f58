"""Comparison reports of entropy-control methods: the numbers (a markdown table and JSON).

Both comparison runners (`python -m sim compare`, `python -m llm compare`) fill a
`MethodResult` per method — trajectories of shape (steps, seeds) — and call
`sim.figures.write_report`, which writes these tables (`write_report` here, numpy only) and
draws the figure.

Per method (means over seeds; "second half" = the last half of the steps; H̄ = the entropy
smoothed by a moving average of ``window`` steps)::

    tracking error = mean_{second half} |H̄ − H*|           (H* = the method's own target, else the reference)
    relative error = tracking error / mean_{second half} H*
    final entropy  = mean H  over the last 10 % of steps
    final target   = mean H* over the last 10 % of steps      (the table's "target" column)

Verdict: **holds** if the relative error is ≤ ``tolerance`` (15 %); otherwise, against the
same final target H*_end the table shows, **collapses** if the final entropy is below
H*_end / 2, **explodes** if it ends above both 2·H*_end and the initial entropy, and else
**below target** / **above target**. JSON is strict (RFC 8259): a value that is not finite is
written as null with a ``<key>_null_reason`` next to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MethodResult",
    "markdown_table",
    "moving_average",
    "report_window",
    "smoothing_note",
    "strict_json",
    "summarize",
    "write_report",
]


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
        "target": t_end,
        "target_mean_second_half": h_star,
        "tracking_error": float(err_per_seed.mean()),
        "tracking_error_std": float(err_per_seed.std()),
        "relative_error": rel,
        "initial_entropy": h0,
        "final_entropy": h_end,
        "final_reward": float(r.reward[tail].mean()),
        "clip_frac": float(np.nanmean(r.clip_frac)) if np.isfinite(r.clip_frac).any() else float("nan"),
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


def report_window(results: list[MethodResult]) -> int:
    """The moving-average window of a report: 1/20 of the longest run, at least 1 step."""
    return max(max(r.entropy.shape[0] for r in results) // 20, 1)


def strict_json(data: Any, reason: str = "not a finite number") -> Any:
    """``data`` with every NaN/±inf float replaced by None and a sibling ``<key>_null_reason``.

    Strict JSON parsers (``jq``, JavaScript's ``JSON.parse``) reject bare NaN and Infinity.
    Works through dicts, lists, tuples and numpy arrays/scalars.
    """
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            out[key] = strict_json(value, reason)
            if isinstance(value, float | np.floating) and not np.isfinite(value):
                out[f"{key}_null_reason"] = f"{float(value)}: {reason}"
        return out
    if isinstance(data, list | tuple):
        return [strict_json(v, reason) for v in data]
    if isinstance(data, np.ndarray):
        return strict_json(data.tolist(), reason)
    if isinstance(data, np.integer | np.bool_):
        return data.item()
    if isinstance(data, float | np.floating):
        return float(data) if np.isfinite(data) else None
    return data


def smoothing_note(window: int) -> str:
    """How H̄ was smoothed, in words ("moving average of 5 steps", or none for window 1)."""
    return "no smoothing, H̄ = H" if window <= 1 else f"moving average of {window} steps"


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
    """Write ``report.md`` and ``report.json`` to ``out``; return the table rows.

    The figure (``report.png``) is drawn by `sim.figures.write_report`, which calls this.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    window = report_window(results)
    rows = [summarize(r, reference_target, window=window, tolerance=tolerance) for r in results]
    md = (
        f"# {title}\n\n"
        f"Tracking error = mean |H̄ − H*| over the second half (H̄: {smoothing_note(window)}; H* the "
        f"method's own target, else the reference {reference_target:g} nats); verdict 'holds' within "
        f"{100 * tolerance:.0f} %, otherwise the final entropy (last 10 % of steps) is compared with the "
        f"final target (column 'target', same steps).\n\n"
        + markdown_table(rows, extra_columns or [])
        + (f"\n{notes}\n" if notes else "")
    )
    (out / "report.md").write_text(md)
    data = strict_json({"title": title, "rows": rows}, "no value (e.g. a method without a controller or target)")
    (out / "report.json").write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    return rows
