"""Every entropy-control method on the same bandit, seeds and measurement (`python -m sim compare`).

The problem (`methods_problem`): S contexts × K arms with stochastic success (the best arm
succeeds 70 % of the time), a high-entropy start, GRPO groups of G, and M PPO epochs per
rollout so the ratio-based levers (clip-higher, CE-GPPO, FlexEC, KL-Cov) can act. Each method
runs all seeds as one vectorised batch of loops (`sim.levers.run_lever`); seed k sees the same
problem and, at step 0, the same samples under every method.

Closed-loop methods are given the same reference target H* (EntroPIC, the adaptive
coefficients, SAC); the EntroPIC variants ``entropic_pi_id`` (rise-then-fall), ``entropic_pi_did``
(fall-rise-fall) and ``entropic_pi_od`` (oscillating decay) track time-varying setpoints around H*
(`pic.setpoint.shaped_setpoints`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pic.levers import LEVERS, EntroPIC, compared_levers, lever_parameters, make_lever
from pic.levers.report import MethodResult
from pic.setpoint import SHAPED_ENTROPIC_METHODS, shaped_setpoints

from .bandit import Bandit, logits_with_entropy
from .levers import run_lever
from .plant import PlantConfig

__all__ = ["DEFAULT_METHODS", "MethodSpec", "default_methods", "methods_problem", "run_methods"]


@dataclass(frozen=True)
class MethodSpec:
    """One row of a comparison: a label, a registered lever and its parameters."""

    label: str
    lever: str
    params: dict[str, Any]


DEFAULT_METHODS: tuple[str, ...] = (*compared_levers(), *SHAPED_ENTROPIC_METHODS)
"""Every registered lever of the default comparison set, then the EntroPIC PI tracking shaped setpoints."""


def _lever_params(name: str, target: float, gains: dict[str, Any]) -> dict[str, Any]:
    """Parameters of registered lever ``name``: closed-loop levers (those with a ``target`` parameter) get
    the shared target, EntroPIC levers the given gains (P control, whose preset fixes ki, keeps only kp)."""
    if name not in LEVERS:
        return {}  # make_lever names the unknown lever
    cls, preset = LEVERS[name]
    params: dict[str, Any] = {}
    if issubclass(cls, EntroPIC) and "kp" in lever_parameters(name):  # not the self-tuning one
        params = {"kp": gains["kp"]} if "ki" in preset else dict(gains)
    if "target" in lever_parameters(name):
        params["target"] = target
    return params


def default_methods(
    target: float, steps: int, *, kp: float, ki: float, names: tuple[str, ...] = DEFAULT_METHODS
) -> list[MethodSpec]:
    """Specs of ``names`` with the authors' defaults, the shared target and the given EntroPIC gains."""
    setpoints = shaped_setpoints(target, steps)
    gains = {"kp": kp, "ki": ki, "anti_windup": "clamp"}
    specs = []
    for name in names:
        if name in SHAPED_ENTROPIC_METHODS:
            lever, params = "entropic", {**gains, "target": setpoints[SHAPED_ENTROPIC_METHODS[name]]}
        else:
            lever, params = name, _lever_params(name, target, gains)
        specs.append(MethodSpec(name, lever, params))
    return specs


def methods_problem(seed: int = 0, *, contexts: int = 32, arms: int = 10, start_entropy: float = 1.3):
    """The comparison bandit and its starting logits (S, K)."""
    rng = np.random.default_rng(seed)
    bandit = Bandit.random(contexts, arms, rng, best=(0.7, 0.7), others=(0.05, 0.6))
    return bandit, logits_with_entropy(bandit, start_entropy, rng)


def _coef(run) -> tuple[np.ndarray | None, str]:
    for key, label in (("alpha", "α"), ("entropy_coef", "entropy coef"), ("kl_coef", "KL coef")):
        if key in run.metrics:
            return np.asarray(run.metrics[key]).reshape(-1, 1), label
    return None, ""


def run_methods(
    bandit: Bandit, z0: np.ndarray, specs: list[MethodSpec], cfg: PlantConfig, *, steps: int, seeds: list[int]
) -> list[MethodResult]:
    """Run every spec on the bandit; results in spec order."""
    results = []
    for spec in specs:
        lever = make_lever(spec.lever, loops=len(seeds), **spec.params)
        lever.name = spec.label
        run = run_lever(bandit, z0, lever, cfg, steps=steps, seeds=seeds)
        coef, label = _coef(run)
        results.append(
            MethodResult(
                name=spec.label,
                entropy=run.entropy,
                reward=run.reward,
                clip_frac=run.clip_frac,
                coef=coef,
                coef_label=label,
                target=run.target,
                extra={"wall_s": run.seconds},
            )
        )
    return results
