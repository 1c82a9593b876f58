"""AEnt (Shen, arXiv 2509.03493): a clamped-entropy bonus with a dead-band integral coefficient.

The bonus is −c·mean_t H^c_t, where H^c_t is the entropy of the next-token distribution after
dropping the ⌊f·V⌋ lowest logits (f = ``clamp`` 0.2) and renormalising over the rest (the
"clamped" token space): with S the kept set and q = softmax(z_S),

    H^c = −Σ_{b∈S} q_b log q_b,        ∂H^c/∂z_b = −q_b (log q_b + H^c) on S, 0 off S

(Lemma A on the restricted softmax; S is piecewise constant in z). After warm-up the coefficient
follows a dead-band integral of the measured clamped entropy H̄ (token mean over the step's
updates, current policy)::

    c ← clip(c − lr·(min(0, H̄ − H_low) + max(0, H̄ − H_high)), c_min, c_max)

so c grows while H̄ < H_low, shrinks while H̄ > H_high and holds inside the band. Defaults are
AReaL's ``recipe/AEnt/aent_args.py``: clamp 0.2, c₀ 1e-3, H_low 0.1, H_high 0.5, lr 1e-3,
c ∈ [1e-5, 0.01], warm-up 0 steps; AReaL updates c after step j's updates when j > warm-up
(``global_step > warmup_steps``, 0-based), from the step's token-mean clamped entropy of its
updates, and the next step uses it. This lever does the same: `modify` accumulates Σ H^c·mask
and Σ mask of the micro-batches it sees, `update` applies the rule for the previous step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._array import detach
from ..validation import is_finite_number, need
from ._common import column, to_json
from .base import Lever, LossModifiers, StepStats, TokenBatch
from .registry import register_lever

__all__ = ["AEnt", "clamped_count", "clamped_entropy"]


def clamped_count(vocab: int, fraction: float) -> int:
    """k = ⌊fraction·V⌋, the number of lowest logits dropped (AReaL: ``int(V * entropy_clamp)``)."""
    return int(vocab * fraction)


def clamped_entropy(z: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(H^c, q) of logits ``z`` (..., V) in numpy: the entropy (nats, shape (...)) and the clamped
    distribution q (..., V; 0 on the dropped entries) after dropping the ⌊fraction·V⌋ lowest logits."""
    z = np.asarray(z, dtype=float)
    k = clamped_count(z.shape[-1], fraction)
    keep = np.ones(z.shape, dtype=bool)
    if k > 0:
        low = np.argsort(z, axis=-1, kind="stable")[..., :k]
        np.put_along_axis(keep, low, False, axis=-1)
    zk = np.where(keep, z, -np.inf)
    zk = zk - zk.max(axis=-1, keepdims=True)
    e = np.where(keep, np.exp(zk), 0.0)
    q = e / e.sum(axis=-1, keepdims=True)
    logq = np.where(keep, zk - np.log(e.sum(axis=-1, keepdims=True)), 0.0)
    return -(q * logq).sum(axis=-1), q


@register_lever("aent")
class AEnt(Lever):
    """Clamped-entropy bonus −c·mean H^c with AEnt's dead-band integral on c (after ``warmup_steps``).

    Parameters
    ----------
    clamp : fraction f of the vocabulary (lowest logits) dropped before the entropy, in [0, 1).
    coef_init : c₀.
    entropy_low, entropy_high : the band [H_low, H_high] of the clamped entropy (nats).
    lr : step size of the integral.
    coef_min, coef_max : clip range of c.
    warmup_steps : c is held until the step after step ``warmup_steps`` (0-based).
    adaptive : False keeps c = c₀ (AReaL's ``adaptive_coeff``; the method is the adaptive one).
    """

    name = "aent"
    applied_metrics = ("entropy_coef",)

    def __init__(
        self,
        clamp: float = 0.2,
        *,
        coef_init: float = 1e-3,
        entropy_low: float = 0.1,
        entropy_high: float = 0.5,
        lr: float = 1e-3,
        coef_min: float = 1e-5,
        coef_max: float = 0.01,
        warmup_steps: int = 0,
        adaptive: bool = True,
        loops: int = 1,
    ) -> None:
        super().__init__(loops)
        n = self.name
        need(is_finite_number(clamp) and 0 <= clamp < 1, f"{n}.clamp", "a fraction in [0, 1)", clamp)
        need(is_finite_number(entropy_low) and entropy_low >= 0, f"{n}.entropy_low", ">= 0 nats", entropy_low)
        need(
            is_finite_number(entropy_high) and entropy_high >= entropy_low,
            f"{n}.entropy_high",
            f"a finite entropy >= entropy_low={entropy_low}",
            entropy_high,
        )
        need(is_finite_number(lr) and lr > 0, f"{n}.lr", "a finite number > 0", lr)
        need(is_finite_number(coef_min) and coef_min >= 0, f"{n}.coef_min", "a finite number >= 0", coef_min)
        need(
            is_finite_number(coef_max) and coef_max >= coef_min,
            f"{n}.coef_max",
            f"a finite number >= coef_min={coef_min}",
            coef_max,
        )
        need(
            is_finite_number(coef_init) and coef_min <= coef_init <= coef_max,
            f"{n}.coef_init",
            "in [coef_min, coef_max]",
            coef_init,
        )
        need(
            isinstance(warmup_steps, int | np.integer) and warmup_steps >= 0,
            f"{n}.warmup_steps",
            "an integer >= 0",
            warmup_steps,
        )
        self.clamp, self.coef_init, self.lr = float(clamp), float(coef_init), float(lr)
        self.band = (float(entropy_low), float(entropy_high))
        self.coef_box = (float(coef_min), float(coef_max))
        self.warmup_steps, self.adaptive = int(warmup_steps), bool(adaptive)
        self.clamped_entropy_fraction = self.clamp
        self._coef = np.full(self.loops, self.coef_init)
        self._sum = np.zeros(self.loops)  # Σ H^c·mask of the micro-batches since the last update
        self._count = np.zeros(self.loops)
        self._measured = np.full(self.loops, np.nan)  # H̄ of the last finished step
        self._step = -1  # the step whose updates are being accumulated

    def config(self) -> dict[str, Any]:
        return {
            "clamp": self.clamp,
            "coef_init": self.coef_init,
            "band": self.band,
            "lr": self.lr,
            "coef_box": self.coef_box,
            "warmup_steps": self.warmup_steps,
            "adaptive": self.adaptive,
        }

    def update(self, stats: StepStats) -> None:
        """Close the previous step: H̄ from its updates, then the dead-band step on c if past warm-up."""
        if self._step >= 0 and np.all(self._count > 0):
            h = self._sum / self._count
            self._measured = h
            if self.adaptive and self._step > self.warmup_steps:
                low, high = self.band
                drive = np.minimum(0.0, h - low) + np.maximum(0.0, h - high)
                self._coef = np.clip(self._coef - self.lr * drive, *self.coef_box)
        self._sum, self._count = np.zeros(self.loops), np.zeros(self.loops)
        self._step = int(stats.step)

    def modify(self, tok: TokenBatch) -> LossModifiers:
        if tok.clamped_entropy is None:
            raise ValueError(f"lever {self.name!r} needs TokenBatch.clamped_entropy (clamped_entropy_fraction > 0)")
        h = detach(tok.clamped_entropy) * tok.mask
        self._sum = self._sum + np.asarray(h.sum(-1).tolist(), dtype=float).reshape(-1)
        self._count = self._count + np.asarray(tok.mask.sum(-1).tolist(), dtype=float).reshape(-1)
        return LossModifiers(clamped_entropy_coef=column(self._coef, tok.logp))

    def metrics(self) -> dict[str, float]:
        """c of this step's updates and H̄ of the updates seen so far this step (the last step's before any)."""
        seen = self._count > 0
        h = np.where(seen, self._sum / np.where(seen, self._count, 1.0), self._measured)
        return {"entropy_coef": float(np.mean(self._coef)), "clamped_entropy": float(np.mean(h))}

    def state_dict(self) -> dict[str, Any]:
        return {
            "coef": to_json(self._coef),
            "sum": to_json(self._sum),
            "count": to_json(self._count),
            "measured": [None if np.isnan(v) else float(v) for v in self._measured],
            "step": self._step,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._coef = self._per_loop(state["coef"])
        self._sum, self._count = self._per_loop(state["sum"]), self._per_loop(state["count"])
        self._measured = self._per_loop([np.nan if v is None else v for v in state["measured"]])
        self._step = int(state["step"])
