"""Small shared pieces of the lever implementations: validation, signals, per-loop arrays."""

from __future__ import annotations

import numpy as np

from .._array import like
from ..validation import need

SIGNALS = ("entropy", "nll")


def check_signal(lever: str, signal: str) -> None:
    need(signal in SIGNALS, f"{lever}.signal", f"one of {SIGNALS}", signal)


def measured(stats, signal: str):
    """The entropy estimate a lever is driven by: full-vocabulary H or the sampled-token NLL."""
    value = stats.entropy if signal == "entropy" else stats.nll
    arr = np.asarray(value, dtype=float)
    need(bool(np.all(np.isfinite(arr))), f"step statistic {signal!r}", "finite", value)
    return arr


def column(values: np.ndarray, ref):
    """Per-loop values (L,) as an (L, 1) array in the namespace/dtype/device of ``ref``."""
    return like(np.asarray(values, dtype=float).reshape(-1, 1), ref)


def to_json(x: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(x, dtype=float).reshape(-1)]
