"""Gain design for the linearised loop e_{t+1} = e_t + b − k·α_t.

- `place_poles`: the PI gains that put both closed-loop poles at chosen points.
  Matching λ² − (2 − k·kp)λ + (1 − k·kp + k·ki) with (λ − p₁)(λ − p₂) gives
  kp = (2 − p₁ − p₂)/k and ki = (1 − p₁)(1 − p₂)/k.
- `gains_for_settling`: a critically damped double pole ρ chosen so the error is inside
  ``tol`` after ``steps`` steps (|e_t| ≲ (1 + t(1 − ρ))·ρᵗ).
- `gain_margin`: by how much the true plant gain may exceed the estimate k before the PI
  loop goes unstable — the factor g with g·k(kp − ki) < 2 and g·k(2kp − ki) < 4.
  Plant gains are estimated (`sim` identification), so tune with margin ≥ 2.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from .validation import need

__all__ = ["gain_margin", "gains_for_settling", "place_poles"]


def place_poles(k: float, p1: complex, p2: complex | None = None) -> tuple[float, float]:
    """(kp, ki) placing the PI poles at p1, p2 (conjugates or two reals; p2 defaults to p1).

    Raises ValueError if the poles are not a conjugate or real pair inside the unit disc,
    or if the resulting gains violate kp > ki ≥ 0.
    """
    need(k > 0, "k", "> 0", k)
    p2 = p1 if p2 is None else p2
    p1c, p2c = complex(p1), complex(p2)
    if abs(p1c.imag + p2c.imag) > 1e-12 or (p1c.imag != 0 and abs(p1c - p2c.conjugate()) > 1e-12):
        raise ValueError(f"poles must be real or a conjugate pair, got {p1!r}, {p2!r}")
    if max(abs(p1c), abs(p2c)) >= 1:
        raise ValueError(f"poles must lie inside the unit circle, got |p| = {max(abs(p1c), abs(p2c)):.3g}")
    kp = (2.0 - (p1c + p2c).real) / k
    ki = ((1.0 - p1c) * (1.0 - p2c)).real / k
    if not (ki > 0 and kp > ki):
        raise ValueError(f"poles {p1!r}, {p2!r} need kp > ki > 0, got kp={kp:.4g}, ki={ki:.4g}")
    return float(kp), float(ki)


def gains_for_settling(k: float, steps: int, tol: float = 0.02) -> tuple[float, float]:
    """PI gains with a critically damped double pole that settles to ``tol`` in ``steps``."""
    need(steps >= 2, "steps", ">= 2", steps)
    need(0 < tol < 1, "tol", "in (0, 1)", tol)

    def envelope(rho: float) -> float:
        # e_t = ρ^t − t(1 − ρ)ρ^(t−1) for e_0 = 1, S_0 = 0; bound |e_t| by the sum of both terms
        return rho ** (steps - 1) * (rho + steps * (1 - rho)) - tol

    rho = brentq(envelope, 1e-9, 1 - 1e-12) if envelope(1e-9) < 0 else 1e-9
    return place_poles(k, rho)


def gain_margin(kp, ki, k) -> np.ndarray:
    """Largest factor g such that the PI loop stays stable with plant gain g·k (inf if none)."""
    kp, ki, k = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (kp, ki, k)))
    with np.errstate(divide="ignore"):
        g1 = np.where(kp - ki > 0, 2.0 / (k * (kp - ki)), np.inf)
        g2 = np.where(2 * kp - ki > 0, 4.0 / (k * (2 * kp - ki)), np.inf)
    margin = np.minimum(g1, g2)
    return np.where((ki > 0) & ~(kp > ki), 0.0, margin)
