"""Gain sweeps: simulate a (kp, ki) grid on a bandit plant and compare with `pic.stability`.

The experiment tests *local* stability around an operating point, the setting of the
linear theory:

1. `find_operating_point`: GRPO brings the entropy down to the target, then a gentle PI
   loop holds it until the plant is quasi-stationary (at a fixed entropy the tail of the
   policy keeps reorganising for a while, and with it the plant gain k). The result is a
   state z*, the holding coefficient α*, and the tangent model ΔH ≈ b − k·α at α*.
2. `sweep_gains`: every grid cell is one loop of one batched plant, started from z* with
   its entropy perturbed by e₀, and its controller started bumplessly at α* (integral
   S₀ = α*/ki; P cells start at S = 0 and must find α* from the error).
3. The same run is predicted by the linear loop (`pic.stability.simulate_linear` with the
   identified k and b, saturated like the controller) and judged by the same criterion,
   `settling_metrics`; the Jury boundary of `pic.stability` is drawn over the result.

Gains are given in normalised units K_p = k·kp, K_i = k·ki, where the Jury region is the
same for every plant: 0 < K_i < K_p, K_p − K_i < 2, 2K_p − K_i < 4.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import brentq

from pic import PIController
from pic.stability import is_stable, simulate_linear, steady_state_error

from .bandit import Bandit, entropy_of_logits
from .identify import local_linearisation
from .plant import BanditPlant, PlantConfig

__all__ = [
    "OperatingPoint",
    "SweepResult",
    "find_operating_point",
    "perturb_entropy",
    "settling_metrics",
    "sweep_gains",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OperatingPoint:
    """A quasi-stationary state held at ``target`` and its tangent model ΔH ≈ b − k·α."""

    logits: np.ndarray  # (S, K) log-probabilities
    target: float
    alpha: float  # α* holding the target
    k: float
    b: float
    k_drift: float  # relative change of k over the last identification window
    steps: int  # plant steps spent to get here

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("logits")
        return d


def _identify(bandit, z, config, alpha0):
    k, b = local_linearisation(bandit, z, config, alpha0=alpha0)
    return float(k[0]), float(b[0])


def find_operating_point(
    bandit: Bandit,
    config: PlantConfig,
    logits: np.ndarray,
    target: float,
    *,
    approach_steps: int = 20_000,
    min_hold: int = 4_000,
    max_hold: int = 40_000,
    retune_every: int = 1_000,
    k_tol: float = 0.005,
    hold_gains: tuple[float, float] = (0.5, 0.02),
) -> OperatingPoint:
    """Bring the exact plant to ``target`` and hold it until the plant is quasi-stationary.

    Approach: plain GRPO (α = 0) if the entropy is above the target, α = −1 if below.
    Hold: PI with normalised gains ``hold_gains`` = (k·kp, k·ki), re-tuned to the current k
    every ``retune_every`` steps (the integral is rescaled so α does not jump), for at least
    ``min_hold`` steps and until k changes by less than ``k_tol`` (relative) per
    ``retune_every`` steps, or ``max_hold`` steps.
    Raises ValueError if the target is not reached or cannot be held (|α*| ≥ 1).
    """
    h_max = float(np.log(bandit.arms))
    if not 0 < target < h_max:
        raise ValueError(f"target must be in (0, log K = {h_max:.4g}) nats, got {target!r}")
    exact = dataclasses.replace(config, mode="exact")
    plant = BanditPlant(bandit, logits, config=exact)
    h = plant.entropy()[0]
    upward = h < target  # push entropy up with α = −1, else let GRPO bring it down
    steps, best, since_best = 0, h, 0
    while (h < target) if upward else (h > target):
        if steps >= approach_steps or since_best > 200:
            raise ValueError(
                f"target {target} not reached (entropy {h:.4g} nats after {steps} steps): "
                "it is outside what this plant reaches"
            )
        plant.step(-1.0 if upward else 0.0)
        h = plant.entropy()[0]
        steps += 1
        improved = h > best if upward else h < best
        best, since_best = (h, 0) if improved else (best, since_best + 1)
    alpha, ks, held = 0.0, [], 0
    while True:
        k, _ = _identify(bandit, plant.logits()[0], exact, alpha)
        if not k > 0:
            raise ValueError(f"the actuator has no authority at entropy {h:.4g} (k = {k:.3g}); no arm exceeds tau")
        ks.append(k)
        settled = len(ks) >= 2 and abs(ks[-1] - ks[-2]) <= k_tol * ks[-1]
        if held >= max_hold or (held >= min_hold and settled):
            break
        kp, ki = hold_gains[0] / k, hold_gains[1] / k
        ctrl = PIController(kp, ki, target)
        ctrl.load_state_dict({"step": 0, "integral": alpha / ki, "alpha": alpha, "error": 0.0})
        for _ in range(retune_every):
            alpha = float(ctrl.update(plant.entropy()[0]))
            plant.step(alpha)
        held += retune_every
        steps += retune_every
    if abs(alpha) >= 0.999:
        raise ValueError(
            f"target {target} cannot be held: alpha saturates at {alpha:+.3f} (outside the reachable band)"
        )
    z = plant.logits()[0]
    k, b = _identify(bandit, z, exact, alpha)
    k_drift = abs(ks[-1] - ks[-2]) / ks[-1] if len(ks) >= 2 else float("nan")
    return OperatingPoint(z, target, alpha, k, b, k_drift, steps)


def perturb_entropy(logits: np.ndarray, entropy: float) -> np.ndarray:
    """Scale the logits (all contexts by one factor) so the mean entropy equals ``entropy``."""
    z = np.asarray(logits, dtype=float)
    z = z - z.max(-1, keepdims=True)

    def gap(log_beta):
        return float(entropy_of_logits(np.exp(log_beta) * z).mean()) - entropy

    beta = np.exp(brentq(gap, -3.0, 3.0, xtol=1e-15))
    out = beta * z
    return out - np.log(np.exp(out).sum(-1, keepdims=True))


def settling_metrics(errors: np.ndarray, *, rel_tol: float = 0.05, window: float = 0.1) -> dict[str, np.ndarray]:
    """Judge error trajectories of shape (T, ...) (the same rule for simulation and prediction).

    - ``final``: mean error over the last ``window`` fraction of steps (the steady state);
    - ``converged``: finite, and every error in that window is within ``rel_tol``·|e₀ − final|
      of ``final`` (the loop has settled — at zero error for PI, at b/(k·kp) for P);
    - ``settling``: first step after which |e − final| stays within 2 %·|e₀ − final|
      (``inf`` when not converged);
    - ``overshoot``: largest excursion past ``final`` on the far side from e₀, in % of |e₀ − final|.
    """
    e = np.asarray(errors, dtype=float)
    t = e.shape[0]
    w = max(int(round(window * t)), 10)
    tail = e[-w:]
    final = tail.mean(0)
    span = np.abs(e[0] - final)
    span = np.where(span > 0, span, np.finfo(float).tiny)
    with np.errstate(invalid="ignore", over="ignore"):
        dev = np.abs(e - final)
        converged = np.all(np.isfinite(e), axis=0) & (np.abs(tail - final).max(0) <= rel_tol * span)
        outside = ~(dev <= 0.02 * span)
        last_out = np.where(outside.any(0), t - 1 - np.argmax(outside[::-1], axis=0), -1)
        settling = np.where(converged, last_out + 1.0, np.inf)
        side = np.sign(e[0] - final)
        overshoot = np.clip((-(e - final) * side).max(0) / span * 100.0, 0.0, None)
    return {"final": final, "converged": converged, "settling": settling, "overshoot": overshoot}


@dataclass
class SweepResult:
    """Grid results; 2-D arrays indexed [i_ki, j_kp] (rows = K_i, columns = K_p)."""

    kp_norm: np.ndarray
    ki_norm: np.ndarray
    op: OperatingPoint
    e0: float
    steps: int
    sim: dict[str, np.ndarray]
    pred: dict[str, np.ndarray]
    jury_stable: np.ndarray
    seconds: float
    config: dict = field(default_factory=dict)

    @property
    def agreement(self) -> float:
        """Fraction of cells where the simulation and the linear prediction agree on convergence."""
        return float((self.sim["converged"] == self.pred["converged"]).mean())

    def summary(self) -> dict:
        return {
            "agreement": self.agreement,
            "cells": int(self.sim["converged"].size),
            "converged_sim": int(self.sim["converged"].sum()),
            "converged_pred": int(self.pred["converged"].sum()),
            "jury_stable": int(self.jury_stable.sum()),
            "seconds": self.seconds,
            "steps": self.steps,
            "e0": self.e0,
            "operating_point": self.op.to_dict(),
        }


def sweep_gains(
    bandit: Bandit,
    config: PlantConfig,
    op: OperatingPoint,
    kp_norm: np.ndarray,
    ki_norm: np.ndarray,
    *,
    steps: int = 2000,
    e0: float | None = None,
    backend: str = "numpy",
    compile: bool = False,
    alpha_limits: tuple[float, float] = (-1.0, 1.0),
) -> SweepResult:
    """Simulate every (K_p, K_i) cell from the operating point and predict it linearly.

    ``e0`` defaults to 0.1·k nats, small enough that the largest gains of a typical grid stay
    in the linear range.
    """
    kp_norm = np.asarray(kp_norm, dtype=float)
    ki_norm = np.asarray(ki_norm, dtype=float)
    kpn, kin = np.meshgrid(kp_norm, ki_norm)
    kp, ki = kpn / op.k, kin / op.k
    e0 = 0.1 * op.k if e0 is None else float(e0)
    start = perturb_entropy(op.logits, op.target + e0)
    exact = dataclasses.replace(config, mode="exact")
    plant = BanditPlant(bandit, start, loops=kp.size, config=exact, backend=backend, compile=compile)
    e0_actual = float(plant.entropy()[0]) - op.target
    # bumpless start: the integral already holds α* (P cells cannot store it)
    s0 = np.where(ki > 0, op.alpha / np.where(ki > 0, ki, 1.0), 0.0)
    ctrl = PIController(kp.ravel(), ki.ravel(), op.target, output_limits=alpha_limits)
    ctrl.load_state_dict({"step": 0, "integral": s0.ravel().tolist(), "alpha": 0.0, "error": 0.0})
    errors = np.empty((steps, kp.size), dtype=np.float32)
    t0 = time.perf_counter()
    for t in range(steps):
        h = plant.entropy()
        errors[t] = h - op.target
        plant.step(ctrl.update(h))
    seconds = time.perf_counter() - t0
    sim = {name: v.reshape(kp.shape) for name, v in settling_metrics(errors).items()}
    lin = simulate_linear(kp, ki, op.k, b=op.b, e0=e0_actual, s0=s0, steps=steps - 1, alpha_limits=alpha_limits)
    pred = settling_metrics(lin)
    pred["steady_state"] = steady_state_error(kp, ki, op.k, op.b)
    log.info("sweep of %d cells x %d steps took %.2f s", kp.size, steps, seconds)
    return SweepResult(
        kp_norm=kp_norm,
        ki_norm=ki_norm,
        op=op,
        e0=e0_actual,
        steps=steps,
        sim=sim,
        pred=pred,
        jury_stable=is_stable(kp, ki, op.k),
        seconds=seconds,
        config=dataclasses.asdict(config),
    )
