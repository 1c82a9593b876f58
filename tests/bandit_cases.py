"""Random softmax bandits brought to an operating point *inside* the reachable band, built
constructively (almost no draw is rejected), with upward and downward drift.

Shared by tests/property/test_p_control.py and test_pi_control.py.

A case is built in four deterministic steps from the drawn numbers (`build_case`):

1. a bandit (one context, 5–20 arms, a stochastic best arm) and a target H* ∈ [0.05, 0.2] nats;
2. GRPO (α = 0) from a policy confident on the best arm until H ≤ H*;
3. τ = min(0.95, π_max − 0.05), so an arm is clearly above τ and the actuator has authority (k > 0);
4. the drift is *set*: an entropy coefficient β (bonus if > 0, penalty if < 0; `sim.rich_plant`)
   moves b to the drawn b* = ±u·k with u ∈ [0.1, 0.6], i.e. α* = b/k inside the band |α| ≤ 0.6.
   b is linear in β to first order, so β = (b* − b₀)/(b₁ − b₀) from two identifications.

The case's (k, b) are identified at that state, *before* any loop runs (start-state model).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, assume, settings
from hypothesis import strategies as st

from pic import PIController
from sim.bandit import Bandit, logits_with_entropy
from sim.plant import BanditPlant, PlantConfig
from sim.rich_plant import RichConfig, RichPlant, identify

# bandit examples are ~100x costlier than the linear-plant ones: scale the profile down
BANDIT_EXAMPLES = max(5, settings.default.max_examples // 12)
BANDIT_SETTINGS = settings(max_examples=BANDIT_EXAMPLES, suppress_health_check=[HealthCheck.too_slow])
DIRECTIONS = ("down", "up")


@dataclass
class Case:
    bandit: Bandit
    logits: np.ndarray  # (S, K) state where the entropy first reached the target
    target: float
    config: RichConfig  # SGD plant with the case's τ and entropy coefficient
    k: float  # plant gain at that state (per rollout), identified before the loop
    b: float  # drift at that state
    direction: str  # "up" (b > 0) or "down" (b < 0)


@st.composite
def bandits(draw, *, max_arms: int = 20) -> Bandit:
    """One context, K arms, a stochastic best arm (it fails too), worse arms below it."""
    arms = draw(st.integers(5, max_arms))
    best = draw(st.floats(0.55, 0.85))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, best - 0.1, size=(1, arms))
    p[0, rng.integers(arms)] = best
    return Bandit(p)


def _identify(bandit, z, config: RichConfig) -> tuple[float, float]:
    k, b = identify(RichPlant(bandit, z, config=config))
    return float(k[0]), float(b[0])


def build_case(
    bandit: Bandit, target: float, seed: int, config: PlantConfig, direction: str, alpha_star: float
) -> Case | None:
    """The case of the module docstring, or None when GRPO never reaches the target."""
    rng = np.random.default_rng(seed)
    z0 = logits_with_entropy(bandit, target + 0.15, rng)
    top, best = z0[0].argmax(), bandit.success[0].argmax()
    z0[0, [top, best]] = z0[0, [best, top]]
    plant = BanditPlant(bandit, z0, config=config)
    for _ in range(5000):
        if plant.entropy()[0] <= target:
            break
        plant.step(0.0)
    if plant.entropy()[0] > target:
        return None
    z = plant.logits()[0]
    tau = min(0.95, float(np.exp(z.max())) - 0.05)
    base = RichConfig(plant=dataclasses.replace(config, tau=tau))
    k, b0 = _identify(bandit, z, base)
    _, b1 = _identify(bandit, z, dataclasses.replace(base, entropy_coef=1.0))
    want = (1.0 if direction == "up" else -1.0) * alpha_star * k
    # secant steps on β ↦ b(β) (nearly linear; k does not depend on β to first order)
    beta_prev, b_prev, beta, cfg = 0.0, b0, (want - b0) / (b1 - b0), base
    for _ in range(4):
        cfg = dataclasses.replace(base, entropy_coef=beta)
        k, b = _identify(bandit, z, cfg)
        if abs(b - alpha_star * k * np.sign(want)) <= 0.02 * abs(want) or b == b_prev:
            break
        want = np.sign(want) * alpha_star * k
        beta_prev, b_prev, beta = beta, b, beta + (want - b) * (beta - beta_prev) / (b - b_prev)
    return Case(bandit, z, target, cfg, k, b, direction)


@st.composite
def cases(draw, config: PlantConfig, *, drift: str = "any", alpha_star=(0.1, 0.6)) -> Case:
    """A case built by `build_case`; ``drift`` "up", "down" or "any" (drawn)."""
    bandit = draw(bandits())
    target = draw(st.floats(0.05, 0.2))
    seed = draw(st.integers(0, 2**31 - 1))
    direction = draw(st.sampled_from(DIRECTIONS)) if drift == "any" else drift
    u = draw(st.floats(*alpha_star))
    case = build_case(bandit, target, seed, config, direction, u)
    assume(case is not None)
    return case


def run_loops(case: Case, kp, ki, steps: int, *, target_step: float = 0.0, **controller_kwargs):
    """Run one loop per gain pair from the case's state; returns (errors (T, B), final logits, final α).

    ``target_step``: the setpoint is case.target + target_step (a step response; errors are
    measured against it)."""
    kp, ki = np.broadcast_arrays(np.atleast_1d(np.asarray(kp, float)), np.atleast_1d(np.asarray(ki, float)))
    plant = RichPlant(case.bandit, case.logits, loops=kp.size, config=case.config)
    target = case.target + target_step
    ctrl = PIController(kp, ki, target, **controller_kwargs)
    errors = np.empty((steps, kp.size))
    for t in range(steps):
        h = plant.entropy()
        errors[t] = h - target
        plant.step(ctrl.update(h))
    return errors, plant.logits(), np.atleast_1d(ctrl.alpha)
