"""Bounded Hypothesis strategies shared by the property tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

finite = {"allow_nan": False, "allow_infinity": False}

plant_gain = st.floats(min_value=1e-3, max_value=10.0, **finite)
"""k > 0: actuator gain of the linear plant (nats per unit α per step)."""

drift = st.floats(min_value=-0.1, max_value=0.1, **finite)
"""b: per-step entropy drift (nats)."""

entropy = st.floats(min_value=0.0, max_value=5.0, **finite)
gain = st.floats(min_value=0.0, max_value=20.0, **finite)


@st.composite
def stable_pi_gains(draw, k: float, margin: float = 0.2):
    """(kp, ki) strictly inside the Jury region of plant gain k, with a relative margin.

    Scales a point of the normalised region (K_p = k·kp, K_i = k·ki) away from every
    boundary: K_i > margin-ish, K_p − K_i > small, K_p − K_i < 2(1 − margin),
    2K_p − K_i < 4(1 − margin).
    """
    ki_n = draw(st.floats(min_value=0.02, max_value=0.8, **finite))
    lo = ki_n * (1 + margin)
    hi = min(ki_n + 2 * (1 - margin), (4 * (1 - margin) + ki_n) / 2)
    kp_n = draw(st.floats(min_value=lo, max_value=hi, **finite))
    return kp_n / k, ki_n / k


@st.composite
def logits(draw, n_min: int = 2, n_max: int = 12, scale: float = 8.0):
    """A 1-D float64 logit vector with entries in [-scale, scale]."""
    n = draw(st.integers(n_min, n_max))
    vals = draw(st.lists(st.floats(-scale, scale, **finite), min_size=n, max_size=n))
    return np.asarray(vals, dtype=float)


def drifts(direction: str = "any", *, lo: float = 1e-3, hi: float = 0.1):
    """b with |b| ∈ [lo, hi] nats per step: "up" (b > 0), "down" (b < 0) or "any" (either sign)."""
    mag = st.floats(min_value=lo, max_value=hi, **finite)
    if direction == "up":
        return mag
    if direction == "down":
        return mag.map(lambda x: -x)
    return st.tuples(mag, st.booleans()).map(lambda t: t[0] if t[1] else -t[0])


@st.composite
def unstable_pi_gains(draw, k: float, margin: float = 0.2):
    """(kp, ki) outside the Jury region of plant gain k by a relative margin, built directly:
    2K_p − K_i ≥ 4(1 + margin) with 0 ≤ K_i < K_p (the side where the loop oscillates and grows),
    and the inside point on the same ray with 2K_p − K_i = 4(1 − margin)·scale. Returns
    ((kp, ki), (kp_in, ki_in))."""
    ki_n = draw(st.one_of(st.just(0.0), st.floats(min_value=0.1, max_value=1.0, **finite)))  # P, or PI
    excess = draw(st.floats(min_value=4 * (1 + margin), max_value=8.0, **finite))
    kp_n = (excess + ki_n) / 2
    scale = 4 * (1 - margin) / excess
    return (kp_n / k, ki_n / k), (kp_n * scale / k, ki_n * scale / k)
