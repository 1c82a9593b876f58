"""AEPO: Arbitrary Entropy Policy Optimization (Wang et al., arXiv 2510.08141).

A bang-bang temperature actuator: each step, after measuring H of the behaviour policy, AEPO
re-samples a quarter of the step's prompts (G completions each) at a temperature T chosen by
the sign of the error, and trains on the *positive* extra samples with their advantage forced
to 1 (a REINFORCE term on samples of π_T). The authors' code (597358816/AEPO@b353a05,
``verl/trainer/ray_trainer.py``, ``AEPO`` branch)::

    T = T_high (1.2) if H ≤ H* else T_low (0.8)
    extra = first ¼ of the prompts × G samples at T; A_x = GRPO advantages among the extra groups
    kept = the first n of the extra samples with A_x > 0.05, A := 1,
        n = min(60, #positive)  if H ≤ H*,   min(60, #positive) // 2  otherwise

Sampling at T > 1 flattens the distribution, so the positive samples it finds carry more
low-probability tokens; raising their likelihood raises H. T < 1 sharpens, and the term lowers H.

Differences from the released code, by design of the plant interface (documented in
docs/methods/aepo.md): the cap 60 of its 512 × 5 = 2560 main samples is a share
(``reinforce_share`` = 60/2560) of the plant's main samples; the kept samples are *added* to the
step's batch (the code overwrites the first n main samples with them); H is the rollout's
full-vocabulary entropy of this step (the code reads the previous update's ``actor/entropy_loss``,
0 before the first).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..validation import is_finite_number, need
from ._common import check_signal, column, measured, to_json
from .base import ExtraSamples, Lever, StepStats
from .registry import register_lever

__all__ = ["AEPO"]


@register_lever("aepo")
class AEPO(Lever):
    """Bang-bang temperature of an extra rollout, REINFORCE (A = 1) on its positive samples.

    Parameters (defaults: the authors' config and script)
    ----------
    target : H* (nats), ``entropy_base``; 0.5.
    temperature_high, temperature_low : T when H ≤ H* / H > H*; 1.2, 0.8.
    fraction : share of the step's prompts re-sampled; ¼.
    threshold : an extra sample is positive when A_x > threshold; 0.05.
    reinforce_share : cap on kept samples as a share of the main samples; 60/2560.
    signal : "entropy" (full-vocabulary H) or "nll" (sampled-token −log π_old).
    """

    name = "aepo"
    applied_metrics = ("extra_kept",)
    holds_target = True

    def __init__(
        self,
        target: float = 0.5,
        *,
        temperature_high: float = 1.2,
        temperature_low: float = 0.8,
        fraction: float = 0.25,
        threshold: float = 0.05,
        reinforce_share: float = 60 / 2560,
        signal: str = "entropy",
        loops: int = 1,
    ) -> None:
        super().__init__(loops)
        n = self.name
        need(is_finite_number(target) and target >= 0, f"{n}.target", "a finite entropy >= 0 nats", target)
        for field, value in (("temperature_high", temperature_high), ("temperature_low", temperature_low)):
            need(is_finite_number(value) and value > 0, f"{n}.{field}", "a finite temperature > 0", value)
        need(is_finite_number(fraction) and 0 < fraction <= 1, f"{n}.fraction", "in (0, 1]", fraction)
        need(is_finite_number(threshold), f"{n}.threshold", "a finite number", threshold)
        need(
            is_finite_number(reinforce_share) and 0 < reinforce_share <= 1,
            f"{n}.reinforce_share",
            "in (0, 1]",
            reinforce_share,
        )
        check_signal(n, signal)
        self.target, self.signal = float(target), signal
        self.temperature_high, self.temperature_low = float(temperature_high), float(temperature_low)
        self.fraction, self.threshold, self.reinforce_share = float(fraction), float(threshold), float(reinforce_share)
        self._low = np.ones(self.loops)  # 1 where H ≤ H* (raise the entropy): T_high and the full cap
        self._kept = np.zeros(self.loops)

    def config(self) -> dict[str, Any]:
        keys = ("target", "temperature_high", "temperature_low", "fraction", "threshold", "reinforce_share", "signal")
        return {k: getattr(self, k) for k in keys}

    def target_at(self, step: int) -> float:
        return self.target

    def update(self, stats: StepStats) -> None:
        self._low = (self._per_loop(measured(stats, self.signal)) <= self.target) * 1.0

    @property
    def temperature(self) -> np.ndarray:
        """T of this step's extra rollout, shape (L,)."""
        return np.where(self._low > 0, self.temperature_high, self.temperature_low)

    def extra_samples(self, stats: StepStats) -> ExtraSamples:
        return ExtraSamples(temperature=self.temperature, fraction=self.fraction)

    def extra_advantages(self, adv, main_samples: int):
        """A = 1 on the first n positive extra samples (A_x > threshold), the rest dropped; (adv, keep), (L, n_x)."""
        positive = (adv > self.threshold) * 1.0
        cap = math.floor(self.reinforce_share * main_samples)  # 60 of the code's 2560
        n = positive.sum(-1, keepdims=True)
        n = n * (n <= cap) + cap * (n > cap)  # min(cap, #positive)
        low = column(self._low, adv)
        n = low * n + (1.0 - low) * (n // 2)  # halved when H > H*
        keep = positive * (positive.cumsum(-1) <= n)
        self._kept = np.asarray(keep.sum(-1).cpu() if hasattr(keep, "cpu") else keep.sum(-1), dtype=float)
        return keep + (1.0 - keep) * adv, keep

    def metrics(self) -> dict[str, float]:
        return {"temperature": float(np.mean(self.temperature)), "extra_kept": float(np.mean(self._kept))}

    def state_dict(self) -> dict[str, Any]:
        return {"low": to_json(self._low), "kept": to_json(self._kept)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._low = self._per_loop(state["low"])
        self._kept = self._per_loop(state["kept"])
