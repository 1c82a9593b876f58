"""The linearised entropy loop and its closed-loop analysis.

Plant (per optimizer step; k = η·c > 0 the actuator gain, b the drift)::

    e_{t+1} = e_t + b − k·α_t

PI law α_t = kp·e_t + ki·S_t, S_{t+1} = S_t + e_t gives the state x = (e, S)::

    x_{t+1} = A x_t + (b, 0),   A = [[1 − k·kp, −k·ki],
                                     [1,         1    ]]

with characteristic polynomial p(λ) = λ² − (2 − k·kp)·λ + (1 − k·kp + k·ki).

Jury (Schur) test for λ² + a₁λ + a₀: both roots inside the unit circle iff
p(1) > 0, p(−1) > 0 and |a₀| < 1, which here reads::

    p(1)  = k·ki > 0                  ⇔  ki > 0
    p(−1) = 4 − 2k·kp + k·ki > 0      ⇔  k(2kp − ki) < 4
    a₀ < 1                            ⇔  kp > ki
    a₀ > −1                           ⇔  k(kp − ki) < 2

P control (ki = 0) is the first-order loop e_{t+1} = (1 − k·kp)·e_t + b: stable iff
0 < k·kp < 2, with steady-state error e_ss = b/(k·kp). (Its S still sums errors, but S
does not feed back, so the P loop's pole is 1 − k·kp alone.) PI has the fixed point
e* = 0, S* = b/(k·ki). `proofs/` derives all of this symbolically and checks it against
the functions here.

Every function broadcasts over numpy arrays of gains and plant parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "StableRegion",
    "char_poly_coeffs",
    "closed_loop_matrix",
    "closed_loop_poles",
    "common_lyapunov",
    "delayed_poles",
    "is_stable",
    "jury_conditions",
    "noise_gain",
    "ramp_error",
    "settling_steps",
    "simulate_linear",
    "spectral_radius",
    "stable_region",
    "steady_state_error",
    "worst_periodic_growth",
]


def _arrays(*xs):
    return np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in xs))


def closed_loop_matrix(kp, ki, k) -> np.ndarray:
    """A with shape (..., 2, 2) for the state (e, S); see the module docstring."""
    kp, ki, k = _arrays(kp, ki, k)
    a = np.empty((*kp.shape, 2, 2))
    a[..., 0, 0] = 1.0 - k * kp
    a[..., 0, 1] = -k * ki
    a[..., 1, 0] = 1.0
    a[..., 1, 1] = 1.0
    return a


def char_poly_coeffs(kp, ki, k) -> tuple[np.ndarray, np.ndarray]:
    """(a₁, a₀) of λ² + a₁λ + a₀ = det(λI − A)."""
    kp, ki, k = _arrays(kp, ki, k)
    return -(2.0 - k * kp), 1.0 - k * kp + k * ki


def jury_conditions(kp, ki, k) -> dict[str, np.ndarray]:
    """The four PI stability conditions as boolean arrays (all True ⇔ stable PI loop)."""
    kp, ki, k = _arrays(kp, ki, k)
    return {
        "ki > 0": ki > 0,
        "kp > ki": kp > ki,
        "k(kp - ki) < 2": k * (kp - ki) < 2,
        "k(2kp - ki) < 4": k * (2 * kp - ki) < 4,
    }


def closed_loop_poles(kp, ki, k) -> np.ndarray:
    """Poles with shape (..., 2), complex. For ki = 0 the pair is (1 − k·kp, 1 − k·kp)."""
    a1, a0 = char_poly_coeffs(kp, ki, k)
    kp, ki, k = _arrays(kp, ki, k)
    disc = np.sqrt((a1 * a1 - 4 * a0).astype(complex))
    pi_poles = np.stack([(-a1 + disc) / 2, (-a1 - disc) / 2], axis=-1)
    p_pole = (1.0 - k * kp).astype(complex)
    return np.where((ki == 0)[..., None], np.stack([p_pole, p_pole], axis=-1), pi_poles)


def spectral_radius(kp, ki, k) -> np.ndarray:
    """max |pole| of the loop that feeds back (PI: A; P: the scalar 1 − k·kp)."""
    return np.abs(closed_loop_poles(kp, ki, k)).max(axis=-1)


def is_stable(kp, ki, k, *, delay: int = 0, memory: float = 0.0) -> np.ndarray:
    """True where the closed loop converges: Jury conditions for PI, 0 < k·kp < 2 for P.

    Gains must be >= 0 and k > 0 (a non-positive k is reported unstable). ``delay`` d > 0:
    the controller acts on the measurement of d steps earlier; the poles are then those of
    z^d (z − 1)² + k·kp (z − 1) + k·ki (`pic.robustness.is_stable_delayed`). ``memory`` β: a
    plant whose response to α decays like β^j (Adam's momentum), see `pic.robustness`.
    """
    if delay != 0 or memory != 0:
        from .robustness import is_stable_delayed

        return is_stable_delayed(kp, ki, k, delay, memory)
    kp, ki, k = _arrays(kp, ki, k)
    pi_ok = np.logical_and.reduce(list(jury_conditions(kp, ki, k).values()))
    p_ok = (k * kp > 0) & (k * kp < 2)
    return np.where(ki == 0, p_ok, pi_ok) & (k > 0)


def steady_state_error(kp, ki, k, b) -> np.ndarray:
    """e_∞ of a stable loop: b/(k·kp) for P, 0 for PI; NaN where the loop is unstable."""
    kp, ki, k, b = _arrays(kp, ki, k, b)
    stable = is_stable(kp, ki, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_err = b / (k * kp)
    return np.where(stable, np.where(ki == 0, p_err, 0.0), np.nan)


def simulate_linear(kp, ki, k, *, b=0.0, e0=1.0, s0=0.0, steps: int = 200, alpha_limits=None) -> np.ndarray:
    """Errors e_0..e_steps of the (optionally saturated) linear loop, shape (steps+1, ...).

    The unsaturated loop (``alpha_limits=None``) is exactly the recurrence above; with
    limits α is clipped like the controller's output (S unclipped, as in the official code).
    ``s0`` is the initial integral (e.g. its equilibrium b/(k·ki) for a bumpless start).
    """
    kp, ki, k, b, e, s = _arrays(kp, ki, k, b, e0, s0)
    e = e.copy()
    s = s.copy()
    out = np.empty((steps + 1, *e.shape))
    out[0] = e
    with np.errstate(over="ignore", invalid="ignore"):  # unstable loops overflow to inf/nan
        for t in range(steps):
            alpha = kp * e + ki * s
            if alpha_limits is not None:
                alpha = np.clip(alpha, *alpha_limits)
            e, s = e + b - k * alpha, s + e
            out[t + 1] = e
    return out


def settling_steps(kp, ki, k, *, b=0.0, e0=1.0, tol=0.02, max_steps: int = 10_000) -> np.ndarray:
    """First step after which |e_t − e_ss| stays ≤ tol·|e_0 − e_ss| (linear loop).

    Found by simulating the recurrence for ``max_steps`` steps; ``inf`` where the loop is
    unstable or has not settled by then.
    """
    kp, ki, k, b, e0 = _arrays(kp, ki, k, b, e0)
    e_ss = steady_state_error(kp, ki, k, b)
    traj = simulate_linear(kp, ki, k, b=b, e0=e0, steps=max_steps)
    band = tol * np.abs(e0 - e_ss)
    with np.errstate(invalid="ignore"):
        outside = ~(np.abs(traj - e_ss) <= band)  # NaN/inf count as outside
    # index of the last step outside the band, +1; a loop never outside settles at 0
    last_out = np.where(outside.any(axis=0), _last_true_index(outside), -1)
    settled = np.where(last_out < max_steps, last_out + 1.0, np.inf)
    return np.where(np.isfinite(e_ss), settled, np.inf)


def _last_true_index(mask: np.ndarray) -> np.ndarray:
    """Index along axis 0 of the last True (undefined where none is True)."""
    n = mask.shape[0]
    return n - 1 - np.argmax(mask[::-1], axis=0)


@dataclass(frozen=True)
class StableRegion:
    """Stability of a (kp, ki) grid for one plant gain k; ``stable[i, j]`` ↔ (kp[j], ki[i])."""

    kp: np.ndarray
    ki: np.ndarray
    k: float
    stable: np.ndarray
    spectral_radius: np.ndarray

    @property
    def fraction_stable(self) -> float:
        return float(self.stable.mean())


def stable_region(kp_values, ki_values, k: float) -> StableRegion:
    """Evaluate `is_stable` and `spectral_radius` on the grid kp × ki (rows = ki)."""
    kp_values = np.asarray(kp_values, dtype=float)
    ki_values = np.asarray(ki_values, dtype=float)
    kp_grid, ki_grid = np.meshgrid(kp_values, ki_values)
    return StableRegion(
        kp=kp_values,
        ki=ki_values,
        k=float(k),
        stable=is_stable(kp_grid, ki_grid, k),
        spectral_radius=spectral_radius(kp_grid, ki_grid, k),
    )


# robustness of the loop (delay, plant memory, varying gain, noise, ramp drift); see pic.robustness
from .robustness import common_lyapunov, delayed_poles, noise_gain, ramp_error, worst_periodic_growth  # noqa: E402
