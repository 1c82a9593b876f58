"""Random softmax bandits brought to a reachable operating point, for the convergence properties.

Shared by tests/property/test_p_control.py, test_pi_control.py and test_high_prob.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, assume, settings
from hypothesis import strategies as st

from pic import PIController
from sim.bandit import Bandit, logits_with_entropy
from sim.identify import local_linearisation
from sim.plant import BanditPlant, PlantConfig

# bandit examples are ~100x costlier than the linear-plant ones: scale the profile down
BANDIT_EXAMPLES = max(5, settings.default.max_examples // 12)
# About two thirds of random (bandit, target) pairs are outside the reachable band with margin
# and are rejected by `assume`: that is the domain of the theorems, so the filter is intended.
BANDIT_SETTINGS = settings(
    max_examples=BANDIT_EXAMPLES, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow]
)


@dataclass
class Case:
    bandit: Bandit
    logits: np.ndarray  # (S, K) state where the entropy first reached the target
    target: float
    config: PlantConfig
    k: float  # plant gain at that state (per rollout)
    b: float  # drift at that state


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


@st.composite
def cases(draw, config: PlantConfig, *, max_alpha_star: float = 0.6) -> Case:
    """A bandit, a target in [0.05, 0.2] nats and the state where GRPO first reaches it.

    Only targets inside the reachable band with margin are kept: |α*| = |b/k| ≤ max_alpha_star,
    and only states confident on the best arm.
    """
    bandit = draw(bandits())
    target = draw(st.floats(0.05, 0.2))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    z0 = logits_with_entropy(bandit, target + 0.15, rng)
    # start confident on the best arm (the regime of the theory: a policy confident on a worse
    # arm is about to switch arms, and its k and b with it)
    top, best = z0[0].argmax(), bandit.success[0].argmax()
    z0[0, [top, best]] = z0[0, [best, top]]
    plant = BanditPlant(bandit, z0, config=config)
    for _ in range(5000):
        if plant.entropy()[0] <= target:
            break
        plant.step(0.0)
    assume(plant.entropy()[0] <= target)
    z = plant.logits()[0]
    assume(z.argmax() == bandit.success.argmax())
    k, b = (float(x[0]) for x in local_linearisation(bandit, z, config))
    assume(k > 0 and abs(b) <= max_alpha_star * k)
    return Case(bandit, z, target, config, k, b)


def run_loops(case: Case, kp, ki, steps: int, **controller_kwargs):
    """Run one loop per gain pair from the case's state; returns (errors (T, B), final logits, final α)."""
    kp, ki = np.broadcast_arrays(np.atleast_1d(np.asarray(kp, float)), np.atleast_1d(np.asarray(ki, float)))
    plant = BanditPlant(case.bandit, case.logits, loops=kp.size, config=case.config)
    ctrl = PIController(kp, ki, case.target, **controller_kwargs)
    errors = np.empty((steps, kp.size))
    for t in range(steps):
        h = plant.entropy()
        errors[t] = h - case.target
        plant.step(ctrl.update(h))
    return errors, plant.logits(), np.atleast_1d(ctrl.alpha)
