"""The shared bandit operating point for the closed-loop numeric twins.

One context with 100 arms (best arm success 0.7, others in [0.05, 0.6]), logits drawn at
entropy 2.5 nats and trained by plain GRPO (α = 0, lr 1, 4 epochs, exact mode) until
H ≤ 0.11 nats. The gains of the twins are scaled by the plant gain k identified there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["OperatingPoint", "operating_point", "plant_config"]

log = logging.getLogger(__name__)

WARM_ENTROPY = 0.11
"""GRPO runs until the entropy (nats) is at most this."""
TARGET = 0.1
"""Entropy setpoint of the twins (nats)."""


def plant_config(epochs: int):
    """The twins' `sim.plant.PlantConfig`: exact mode, lr 1, τ = 0.95, G = 16."""
    from sim.plant import PlantConfig

    return PlantConfig(lr=1.0, epochs=epochs, mode="exact", tau=0.95, group_size=16)


@dataclass(frozen=True)
class OperatingPoint:
    bandit: object
    logits: np.ndarray
    """(S, K) log-probabilities at H ≈ WARM_ENTROPY."""
    grpo_steps: int
    entropy: float


@lru_cache(maxsize=1)
def operating_point(max_steps: int = 2000) -> OperatingPoint:
    """Warm the bandit up with GRPO (α = 0) until H ≤ 0.11 nats (cached; ~80 steps)."""
    from sim.bandit import Bandit, logits_with_entropy
    from sim.plant import BanditPlant

    rng = np.random.default_rng(1)
    bandit = Bandit.random(1, 100, rng, best=(0.7, 0.7), others=(0.05, 0.6))
    plant = BanditPlant(bandit, logits_with_entropy(bandit, 2.5, rng), loops=1, config=plant_config(4))
    steps = 0
    while plant.entropy()[0] > WARM_ENTROPY and steps < max_steps:
        plant.step(0.0)
        steps += 1
    log.debug("GRPO warm-up: %d steps to H = %.4f", steps, plant.entropy()[0])
    z = plant.logits()[0]
    z.setflags(write=False)
    return OperatingPoint(bandit, z, steps, float(plant.entropy()[0]))
