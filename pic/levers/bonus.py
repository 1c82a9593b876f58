"""Levers that act through a loss coefficient: entropy bonus, KL penalty, adaptive coefficients, SAC-α.

By the covariance law (Cui et al., arXiv 2505.22617; our Lemma A) a PG step moves the entropy
by ΔH ≈ −Cov(log π, Δz). An entropy bonus −c·H adds Δz ∝ −c·∂(−H)/∂z = −c·π(log π + H), whose
covariance with log π is negative: it raises H on every token, confident or not, in proportion
to c. These levers differ only in how c is chosen.

- `EntropyBonus`: constant c (verl ``entropy_coeff``; 0.001 was verl's default until it caused
  entropy explosions, now 0).
- `KLPenalty`: κ·k3(π_ref/π_θ) per token (verl ``use_kl_loss``, ``low_var_kl``, κ = 0.001): it pulls
  the policy back to a reference and so, indirectly, to the reference's entropy.
- `AdaptiveEntropy`: the sign-step integral controller of Skywork-OR1 (arXiv 2505.22312) and TRL
  (``use_adaptive_entropy``, PR #6140). After each step's measurement e::

      c ← clip(c + Δ, c_min, c_max) if e < tgt (Skywork) / e ≤ tgt (TRL), else clip(c − Δ, …)
      gate ← 1[e < tgt] / 1[e ≤ tgt]

  and the *next* step applies c·gate. They differ (see `SKYWORK`, `TRL`): Skywork measures
  e = −mean log π_old (sampled-token NLL of the pre-update policy), TRL the full-vocabulary
  entropy of the current policy; the comparison is strict for Skywork; Skywork's released
  scripts use tgt 0.2, Δ 1e-4, c_max 0.005, c₀ 0 while TRL defaults to tgt 0.2, Δ 0.005,
  c_max 1, c₀ 0 and applies no bonus before its first measurement (last H = +∞).
- `AEnt` (Shen, arXiv 2509.03493): the bonus on a clamped entropy H^c (the lowest-logit fraction
  of the vocabulary dropped), with a dead-band integral coefficient; see the class.
- `SACTemperature`: SAC's automatic temperature (Haarnoja et al., arXiv 1812.05905): Adam on
  log c with J(log c) = −log c·(log π + H̄), so ∂J/∂log c = Ĥ − H̄ (Ĥ = −mean log π): an integral
  controller in log space. As in the paper's Algorithm 1 and SB3's ``SAC.train``, a step's policy
  update uses c as it was *before* that step's Adam step on log c (one step of delay).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._array import detach
from ..validation import is_finite_number, need
from ._common import check_signal, column, measured, to_json
from .base import Lever, LossModifiers, StepStats, TokenBatch
from .registry import register_lever

__all__ = [
    "SKYWORK",
    "TRL",
    "AEnt",
    "AdaptiveEntropy",
    "EntropyBonus",
    "KLPenalty",
    "SACTemperature",
    "clamped_count",
    "clamped_entropy",
]


@register_lever("entropy_bonus")
class EntropyBonus(Lever):
    """Constant entropy bonus: loss −= coef·mean_t H_t (full vocabulary, with gradient)."""

    name = "entropy_bonus"
    applied_metrics = ("entropy_coef",)
    needs_entropy = True

    def __init__(self, coef: float = 0.001, *, loops: int = 1) -> None:
        super().__init__(loops)
        need(is_finite_number(coef) and coef >= 0, f"{self.name}.coef", "a finite number >= 0", coef)
        self.coef = float(coef)

    def config(self) -> dict[str, Any]:
        return {"coef": self.coef}

    def modify(self, tok: TokenBatch) -> LossModifiers:
        return LossModifiers(entropy_coef=self.coef)

    def metrics(self) -> dict[str, float]:
        return {"entropy_coef": self.coef}


@register_lever("kl_penalty")
class KLPenalty(Lever):
    """KL penalty to a frozen reference policy: loss += coef·mean_t k3 (verl low_var_kl)."""

    name = "kl_penalty"
    applied_metrics = ("kl_coef",)
    needs_reference = True

    def __init__(self, coef: float = 0.001, *, loops: int = 1) -> None:
        super().__init__(loops)
        need(is_finite_number(coef) and coef > 0, f"{self.name}.coef", "a finite number > 0", coef)
        self.coef = float(coef)

    def config(self) -> dict[str, Any]:
        return {"coef": self.coef}

    def modify(self, tok: TokenBatch) -> LossModifiers:
        return LossModifiers(kl_coef=self.coef)

    def metrics(self) -> dict[str, float]:
        return {"kl_coef": self.coef}


SKYWORK = {
    "target": 0.2,
    "delta": 1e-4,
    "coef_init": 0.0,
    "coef_max": 0.005,
    "strict": True,
    "signal": "nll",
    "gate_init": True,
}
"""Skywork-OR1's released-script settings (7B/32B): tgt 0.2, Δ 1e-4, c_max 0.005, c₀ 0, e = −mean log π_old."""

TRL = {
    "target": 0.2,
    "delta": 0.005,
    "coef_init": 0.0,
    "coef_max": 1.0,
    "strict": False,
    "signal": "entropy",
    "gate_init": False,
}
"""TRL ``use_adaptive_entropy`` defaults: tgt 0.2, δ 0.005, max 1, initial 0, full-vocabulary H."""


def _check_coef_box(name: str, coef_min: float, coef_max: float, coef_init: float) -> None:
    """One-line errors unless 0 ≤ coef_min ≤ coef_init ≤ coef_max, all finite (a coefficient's clip box)."""
    need(is_finite_number(coef_min) and coef_min >= 0, f"{name}.coef_min", "a finite number >= 0", coef_min)
    need(
        is_finite_number(coef_max) and coef_max >= coef_min,
        f"{name}.coef_max",
        f"a finite number >= coef_min={coef_min}",
        coef_max,
    )
    need(
        is_finite_number(coef_init) and coef_min <= coef_init <= coef_max,
        f"{name}.coef_init",
        "in [coef_min, coef_max]",
        coef_init,
    )


@register_lever("adaptive_entropy_trl", preset=TRL)
@register_lever("adaptive_entropy_skywork", preset=SKYWORK)
class AdaptiveEntropy(Lever):
    """Sign-step adaptive entropy coefficient with a one-sided gate (Skywork-OR1 / TRL rules).

    Parameters
    ----------
    target : entropy target (nats) of the chosen ``signal``.
    delta : step Δ of the coefficient per RL step (> 0).
    coef_init, coef_min, coef_max : initial value and clip range of c.
    strict : gate and step on e < tgt (Skywork) or e ≤ tgt (TRL).
    signal : "nll" (Skywork: −mean log π_old) or "entropy" (TRL: full-vocabulary H).
    gate_init : whether the first step applies c₀ (Skywork: yes; TRL: no, last H = +∞).
    """

    name = "adaptive_entropy"
    applied_metrics = ("entropy_coef",)
    holds_target = True
    needs_entropy = True

    def __init__(
        self,
        target: float = 0.2,
        delta: float = 0.005,
        *,
        coef_init: float = 0.0,
        coef_min: float = 0.0,
        coef_max: float = 1.0,
        strict: bool = False,
        signal: str = "entropy",
        gate_init: bool = False,
        loops: int = 1,
    ) -> None:
        super().__init__(loops)
        n = self.name
        need(is_finite_number(target) and target >= 0, f"{n}.target", "a finite entropy >= 0 nats", target)
        need(is_finite_number(delta) and delta > 0, f"{n}.delta", "a finite number > 0", delta)
        _check_coef_box(n, coef_min, coef_max, coef_init)
        check_signal(n, signal)
        self.target, self.delta = float(target), float(delta)
        self.coef_init, self.coef_min, self.coef_max = float(coef_init), float(coef_min), float(coef_max)
        self.strict, self.signal, self.gate_init = bool(strict), signal, bool(gate_init)
        self._coef = np.full(self.loops, self.coef_init)
        self._gate = np.full(self.loops, 1.0 if self.gate_init else 0.0)
        self._applied = self._coef * self._gate

    def config(self) -> dict[str, Any]:
        keys = ("target", "delta", "coef_init", "coef_min", "coef_max", "strict", "signal", "gate_init")
        return {k: getattr(self, k) for k in keys}

    def target_at(self, step: int) -> float:
        return self.target

    def update(self, stats: StepStats) -> None:
        self._applied = self._coef * self._gate  # this step uses the previous step's (c, gate)
        e = self._per_loop(measured(stats, self.signal))
        low = e < self.target if self.strict else e <= self.target
        self._coef = np.clip(
            np.where(low, self._coef + self.delta, self._coef - self.delta), self.coef_min, self.coef_max
        )
        self._gate = low * 1.0

    def modify(self, tok: TokenBatch) -> LossModifiers:
        if not np.any(self._applied):
            return LossModifiers()
        return LossModifiers(entropy_coef=column(self._applied, tok.logp))

    def metrics(self) -> dict[str, float]:
        return {"entropy_coef": float(np.mean(self._applied)), "coef_next": float(np.mean(self._coef))}

    def state_dict(self) -> dict[str, Any]:
        return {"coef": to_json(self._coef), "gate": to_json(self._gate), "applied": to_json(self._applied)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._coef = self._per_loop(state["coef"])
        self._gate = self._per_loop(state["gate"])
        self._applied = self._per_loop(state["applied"])


@register_lever("sac_temperature")
class SACTemperature(Lever):
    """SAC automatic entropy temperature on log c, optimised by Adam, as an entropy-bonus coefficient.

    Per RL step, with Ĥ the measured ``signal``: the step's policy update uses c = exp(log c) as it
    stands, then g = Ĥ − target (= ∂J/∂log c) drives one Adam step on log c (m ← β₁m + (1−β₁)g,
    v ← β₂v + (1−β₂)g², log c ← log c − lr·m̂/(√v̂ + eps)) for the next step — SB3's order
    (``ent_coef = exp(log_ent_coef.detach())`` is read before ``ent_coef_optimizer.step()``).
    SB3 starts at c = 1 for continuous control; a language model's token-mean loss needs a far
    smaller start (``coef_init``, default 1e-3).
    """

    name = "sac_temperature"
    holds_target = True
    applied_metrics = ("entropy_coef",)
    needs_entropy = True

    def __init__(
        self,
        target: float = 0.2,
        *,
        coef_init: float = 1e-3,
        lr: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        signal: str = "nll",
        loops: int = 1,
    ) -> None:
        super().__init__(loops)
        n = self.name
        need(is_finite_number(target) and target >= 0, f"{n}.target", "a finite entropy >= 0 nats", target)
        need(is_finite_number(coef_init) and coef_init > 0, f"{n}.coef_init", "a finite number > 0", coef_init)
        need(is_finite_number(lr) and lr > 0, f"{n}.lr", "a finite number > 0", lr)
        b1, b2 = (float(b) for b in betas)
        need(0 <= b1 < 1 and 0 <= b2 < 1, f"{n}.betas", "two numbers in [0, 1)", betas)
        need(is_finite_number(eps) and eps > 0, f"{n}.eps", "a finite number > 0", eps)
        check_signal(n, signal)
        self.target, self.coef_init, self.lr, self.betas, self.eps = (
            float(target),
            float(coef_init),
            float(lr),
            (b1, b2),
            float(eps),
        )
        self.signal = signal
        self._log_coef = np.full(self.loops, math.log(self.coef_init))
        self._applied = np.exp(self._log_coef)  # the coefficient of this step's update
        self._m = np.zeros(self.loops)
        self._v = np.zeros(self.loops)
        self._t = 0

    def config(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "coef_init": self.coef_init,
            "lr": self.lr,
            "betas": self.betas,
            "eps": self.eps,
            "signal": self.signal,
        }

    def target_at(self, step: int) -> float:
        return self.target

    @property
    def coef(self) -> np.ndarray:
        """The coefficient this step's update uses, shape (L,)."""
        return self._applied

    def update(self, stats: StepStats) -> None:
        self._applied = np.exp(self._log_coef)  # read before the Adam step, as SB3 does
        g = self._per_loop(measured(stats, self.signal)) - self.target
        b1, b2 = self.betas
        self._t += 1
        self._m = b1 * self._m + (1 - b1) * g
        self._v = b2 * self._v + (1 - b2) * g * g
        m_hat = self._m / (1 - b1**self._t)
        v_hat = self._v / (1 - b2**self._t)
        self._log_coef = self._log_coef - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)

    def modify(self, tok: TokenBatch) -> LossModifiers:
        return LossModifiers(entropy_coef=column(self.coef, tok.logp))

    def metrics(self) -> dict[str, float]:
        return {"entropy_coef": float(np.mean(self.coef)), "log_coef": float(np.mean(self._log_coef))}

    def state_dict(self) -> dict[str, Any]:
        return {
            "log_coef": to_json(self._log_coef),
            "applied": to_json(self._applied),
            "m": to_json(self._m),
            "v": to_json(self._v),
            "t": self._t,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._log_coef = self._per_loop(state["log_coef"])
        self._applied = self._per_loop(state["applied"])
        self._m, self._v = self._per_loop(state["m"]), self._per_loop(state["v"])
        self._t = int(state["t"])


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
    (Shen, arXiv 2509.03493; AReaL ``recipe/AEnt``.)

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
        _check_coef_box(n, coef_min, coef_max, coef_init)
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

    def sync(self, all_reduce) -> None:
        """Σ H^c·mask and Σ mask over every rank's tokens (the trainer: L = 1), so c stays identical on all
        ranks, as AReaL's all-reduced statistic."""
        if self.loops != 1:
            raise ValueError(f"lever {self.name!r}: sync needs loops = 1 (a data-parallel trainer), got {self.loops}")
        total = all_reduce({"sum": float(self._sum[0]), "count": float(self._count[0])})
        self._sum, self._count = np.array([total["sum"]]), np.array([total["count"]])

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
