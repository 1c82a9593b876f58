"""Closed-loop comparisons on a bandit plant: GRPO vs P vs PI, and what happens outside the band.

`compare_controllers` runs, from one starting policy, plain GRPO (α ≡ 0), P and PI with
the same proportional gain, and reports the steady-state errors next to the linear
prediction b/(k·kp) (k, b from an open-loop step test ΔH(0), ΔH(±δ) at the state where the P
loop settled — not around its final α, which would make the prediction α_T/kp = e_T by the P
law itself).

`windup_experiment` asks for a target above the reachable band first and a target inside
it afterwards: α saturates, the integral winds up (official law) or not (anti-windup), and
the recovery time after the setpoint returns into the band differs accordingly.

Gains are given normalised by the plant gain k at the operating point (K = k·gain), so the
same numbers mean the same loop behaviour on every plant.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from pic import PIController
from pic.setpoint import Step

from .bandit import Bandit
from .identify import PlantMap, local_linearisation, map_along_trajectory
from .plant import BanditPlant, PlantConfig

__all__ = ["ControllerRun", "compare_controllers", "reachable_band", "windup_experiment"]


@dataclass
class ControllerRun:
    """Trajectories of one closed loop (arrays of shape (steps,))."""

    name: str
    entropy: np.ndarray
    target: np.ndarray
    alpha: np.ndarray
    integral: np.ndarray
    reward: np.ndarray
    info: dict = field(default_factory=dict)

    def tail_error(self, fraction: float = 0.2) -> float:
        """Mean of H − target over the last ``fraction`` of the run (nats)."""
        n = max(int(len(self.entropy) * fraction), 1)
        return float(np.mean(self.entropy[-n:] - self.target[-n:]))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "final_entropy": float(self.entropy[-1]),
            "tail_error": self.tail_error(),
            "final_alpha": float(self.alpha[-1]),
            "final_reward": float(self.reward[-1]),
            **self.info,
        }


def _run(plant: BanditPlant, controllers: list[PIController | None], names: list[str], steps: int):
    """Run one batched plant; loop i is driven by controllers[i] (None = GRPO, α ≡ 0)."""
    n = len(controllers)
    rec = {key: np.empty((steps, n)) for key in ("entropy", "target", "alpha", "integral", "reward")}
    for t in range(steps):
        h = plant.entropy()
        alpha = np.zeros(n)
        for i, c in enumerate(controllers):
            if c is not None:
                rec["target"][t, i] = c.target_at()
                alpha[i] = c.update(h[i])
                rec["integral"][t, i] = c.integral
            else:
                rec["target"][t, i] = np.nan
                rec["integral"][t, i] = 0.0
        rec["entropy"][t] = h
        rec["alpha"][t] = alpha
        rec["reward"][t] = plant.expected_reward()
        plant.step(alpha)
    return [ControllerRun(names[i], *(rec[key][:, i] for key in rec)) for i in range(n)]


def compare_controllers(
    bandit: Bandit,
    config: PlantConfig,
    logits: np.ndarray,
    target: float,
    k_ref: float,
    *,
    steps: int = 3000,
    kp_norm: float = 0.2,
    ki_norm: float = 0.02,
    anti_windup: str = "clamp",
) -> list[ControllerRun]:
    """GRPO, P and PI from ``logits``; gains kp = kp_norm/k_ref, ki = ki_norm/k_ref.

    ``k_ref`` is the plant gain at the target (from `find_operating_point` or `PlantMap`).
    The P run's ``info`` holds the predicted steady-state error b/(k·kp) with k and b
    from an open-loop step test (α = 0, ±δ) at the state where it ended.
    """
    kp, ki = kp_norm / k_ref, ki_norm / k_ref
    plant = BanditPlant(bandit, logits, loops=3, config=config)
    ctrls = [
        None,
        PIController(kp, 0.0, target, anti_windup=anti_windup),
        PIController(kp, ki, target, anti_windup=anti_windup),
    ]
    runs = _run(plant, ctrls, ["GRPO", "P", "PI"], steps)
    z_end = plant.logits()
    k_p, b_p = local_linearisation(bandit, z_end[1], config)  # open loop: b = ΔH(0), not around α_T
    # k = 0 where no arm is above τ: the linear prediction does not exist (NaN, JSON null)
    runs[1].info["predicted_error"] = float(b_p[0] / (k_p[0] * kp)) if k_p[0] > 0 else float("nan")
    runs[1].info["k_end"], runs[1].info["b_end"] = float(k_p[0]), float(b_p[0])
    for run, name in zip(runs[1:], ("P", "PI"), strict=True):
        run.info.update(kp=kp, ki=0.0 if name == "P" else ki, kp_norm=kp_norm, ki_norm=ki_norm)
    return runs


def reachable_band(bandit: Bandit, config: PlantConfig, logits: np.ndarray, *, steps: int, every: int = 10) -> PlantMap:
    """k(H) and b(H) along the GRPO trajectory from ``logits`` (see `PlantMap.band`)."""
    return map_along_trajectory(bandit, logits, config, steps=steps, every=every)


def windup_experiment(
    bandit: Bandit,
    config: PlantConfig,
    logits: np.ndarray,
    *,
    high_target: float,
    low_target: float,
    switch_step: int,
    steps: int,
    k_ref: float,
    kp_norm: float = 0.2,
    ki_norm: float = 0.02,
) -> list[ControllerRun]:
    """PI without and with anti-windup under a setpoint that leaves and re-enters the band."""
    kp, ki = kp_norm / k_ref, ki_norm / k_ref
    schedule = Step((switch_step,), (high_target, low_target))
    modes = ["none", "clamp", "back_calculation"]
    plant = BanditPlant(bandit, logits, loops=len(modes), config=config)
    ctrls = [PIController(kp, ki, schedule, anti_windup=m) for m in modes]
    runs = _run(plant, ctrls, [f"PI ({m})" for m in modes], steps)
    for run in runs:
        # recovery: steps after the switch until the error stays within 10 % of the new target
        err = np.abs(run.entropy[switch_step:] - low_target)
        bad = np.nonzero(err > 0.1 * low_target)[0]
        if bad.size == 0:
            run.info["recovery_steps"] = 0
        elif bad[-1] == err.size - 1:
            run.info["recovery_steps"] = None  # not recovered within the run
        else:
            run.info["recovery_steps"] = int(bad[-1] + 1)
        run.info["max_integral"] = float(np.max(np.abs(run.integral)))
    return runs


def start_at(bandit: Bandit, config: PlantConfig, logits: np.ndarray, entropy: float, max_steps: int = 50_000):
    """Logits reached by GRPO from ``logits`` when the entropy first drops to ``entropy``."""
    plant = BanditPlant(bandit, logits, config=dataclasses.replace(config, mode="exact"))
    for _ in range(max_steps):
        if plant.entropy()[0] <= entropy:
            return plant.logits()[0]
        plant.step(0.0)
    raise ValueError(f"GRPO did not reach entropy {entropy} in {max_steps} steps")
