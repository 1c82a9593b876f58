"""The linearised entropy plant, and a closed loop that runs any plant with a controller.

`LinearPlant` is H_{t+1} = H_t + b − k·α_t (k > 0 actuator gain in nats per unit α per
step, b drift in nats per step), optionally with H clipped to [0, h_max]. Broadcasting
over k, b and the initial entropy gives many plants at once.

`run_loop` is the loop of the whole project::

    H = plant.entropy();  α = controller.update(H);  plant.step(α)

The bandit plants in `sim` and the trainer follow the same protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .controller import PIController
from .validation import need

__all__ = ["LinearPlant", "LoopHistory", "Plant", "run_loop"]


class Plant(Protocol):
    def entropy(self) -> float | np.ndarray: ...

    def step(self, alpha: float | np.ndarray) -> None: ...


class LinearPlant:
    """H_{t+1} = clip(H_t + b − k·α_t, 0, h_max)."""

    def __init__(self, k, b=0.0, h0=1.0, h_max: float = np.inf) -> None:
        k, b, h0 = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (k, b, h0)))
        need(not np.any(k <= 0), "k", "> 0 (actuator gain, nats per unit alpha)", k)
        need(not np.any(h0 < 0), "h0", ">= 0 nats", h0)
        self.k, self.b, self.h_max = k, b, h_max
        self._h = h0.astype(float).copy()

    def entropy(self) -> float | np.ndarray:
        return float(self._h) if self._h.ndim == 0 else self._h.copy()

    def step(self, alpha) -> None:
        self._h = np.clip(self._h + self.b - self.k * np.asarray(alpha, dtype=float), 0.0, self.h_max)


@dataclass
class LoopHistory:
    """Per-step records of a closed-loop run; arrays of shape (steps, ...)."""

    entropy: np.ndarray
    target: np.ndarray
    alpha: np.ndarray
    integral: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def error(self) -> np.ndarray:
        return self.entropy - self.target


def run_loop(plant: Plant, controller: PIController | None, steps: int) -> LoopHistory:
    """Run ``steps`` control steps; ``controller=None`` runs the plant open-loop (α ≡ 0).

    Row t holds H_t as measured, the target and α_t the controller returned for it, and the
    integral *after* that update.
    """
    rec: dict[str, list] = {"entropy": [], "target": [], "alpha": [], "integral": []}
    for _ in range(steps):
        h = plant.entropy()
        if controller is None:
            target, alpha, integral = np.nan, np.zeros_like(np.asarray(h, dtype=float)), 0.0
        else:
            target = controller.target_at()
            alpha = controller.update(h)
            integral = controller.integral
        plant.step(alpha)
        rec["entropy"].append(np.asarray(h, dtype=float))
        rec["target"].append(np.broadcast_to(np.asarray(target, dtype=float), np.shape(h)))
        rec["alpha"].append(np.asarray(alpha, dtype=float))
        rec["integral"].append(np.asarray(integral, dtype=float))
    return LoopHistory(**{name: np.stack(values) for name, values in rec.items()})
