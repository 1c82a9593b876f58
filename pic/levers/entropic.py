"""EntroPIC (arXiv 2511.15248) as a lever: the PI controller and the (1 ± α) actuator.

Per step, α = `pic.PIController.update(H)` (e = H − H*, α > 0 when entropy is too high).
Per token, the EntroPIC term of `pic.actuator.entropic_adjustment`::

    α · Σ_{mask ∧ π > τ} (−r·|A|) / D        D = N ("all_tokens", the paper) or N_h ("high_prob_tokens", official)

written as the extra per-token term c_t·r_t of `pic.levers.loss` with
c_t = −α·|A_t|·1[π_t > τ]·N/D, so that Σ c_t r_t mask_t / N is exactly that sum (tested).
On-policy its gradient is the PG gradient with weights 1 ± α on confident tokens (Lemma B:
confident positives lower the entropy, confident negatives raise it). N_h counts the
behaviour policy's confident tokens of the whole mini-batch (`counts`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._array import detach, namespace
from ..actuator import NORMALIZATIONS, high_prob_mask
from ..controller import PIController
from ..setpoint import schedule_from_dict
from ._common import check_signal, column, measured, need
from .base import Lever, LossModifiers, StepStats, TokenBatch

__all__ = ["EntroPIC"]


class EntroPIC(Lever):
    """The EntroPIC PI (or P, ``ki = 0``) entropy controller.

    Parameters
    ----------
    kp, ki : gains (≥ 0); official 1 and 0.01.
    target : entropy setpoint in nats, or a `pic.setpoint` schedule table / callable of the step.
    tau : the actuator acts on tokens with current π > τ, in (0, 1); official 0.95.
    normalization : "all_tokens" (weights exactly 1 ± α) or "high_prob_tokens" (official, 1 ± α·N/N_h).
    alpha_limit, anti_windup, integral_limit, tracking_gain : see `pic.PIController`.
    signal : "entropy" (full-vocabulary H, the paper) or "nll" (sampled-token −log π_old).
    """

    name = "entropic"
    applied_metrics = ("alpha", "p_term", "i_term")

    def __init__(
        self,
        kp: float = 1.0,
        ki: float = 0.01,
        target: Any = 0.1,
        *,
        tau: float = 0.95,
        normalization: str = "all_tokens",
        alpha_limit: float = 1.0,
        anti_windup: str = "none",
        integral_limit: float | None = None,
        tracking_gain: float = 1.0,
        signal: str = "entropy",
        loops: int = 1,
    ) -> None:
        super().__init__(loops)
        need(0 < tau < 1, self.name, "tau", "in (0, 1)", tau)
        need(normalization in NORMALIZATIONS, self.name, "normalization", f"one of {NORMALIZATIONS}", normalization)
        need(alpha_limit > 0, self.name, "alpha_limit", "> 0", alpha_limit)
        check_signal(self.name, signal)
        self._config = {
            "kp": kp,
            "ki": ki,
            "target": target if not callable(target) else repr(target),
            "tau": tau,
            "normalization": normalization,
            "alpha_limit": alpha_limit,
            "anti_windup": anti_windup,
            "integral_limit": integral_limit,
            "signal": signal,
        }
        try:
            schedule = target if callable(target) else schedule_from_dict(target)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{self.name}.target: {exc}") from None
        try:
            self.controller = PIController(
                kp,
                ki,
                schedule,
                output_limits=(-alpha_limit, alpha_limit),
                anti_windup=anti_windup,
                integral_limit=integral_limit or None,
                tracking_gain=tracking_gain,
            )
        except ValueError as exc:  # its messages start with the parameter's name ("kp must be …")
            raise ValueError(f"{self.name}.{exc}") from None
        self.tau, self.normalization, self.signal = float(tau), normalization, signal
        self._alpha = np.zeros(self.loops)

    def config(self) -> dict[str, Any]:
        return dict(self._config)

    @property
    def alpha(self) -> np.ndarray:
        """α of the current step, shape (L,)."""
        return self._alpha

    def target_at(self, step: int) -> float:
        return self.controller.target_at(step)

    def update(self, stats: StepStats) -> None:
        h = measured(stats, self.signal)
        self._alpha = self._per_loop(self.controller.update(h if h.size > 1 else float(h.reshape(-1)[0])))

    def counts(self, old_logp, mask) -> dict[str, Any]:
        if self.normalization == "all_tokens":
            return {}
        high = high_prob_mask(namespace(old_logp).exp(old_logp), self.tau) * mask
        return {"high": high.sum(axis=-1, keepdims=True)}

    def modify(self, tok: TokenBatch) -> LossModifiers:
        if not np.any(self._alpha):
            return LossModifiers()
        xp = tok.xp
        alpha = column(self._alpha, tok.logp)
        high = high_prob_mask(xp.exp(detach(tok.logp)), self.tau) * tok.mask
        coef = -alpha * xp.abs(tok.adv) * high
        if self.normalization == "high_prob_tokens":
            n_high = tok.counts["high"]
            coef = coef * tok.num_tokens / (n_high + (n_high == 0))
        return LossModifiers(ratio_coef=coef)

    def metrics(self) -> dict[str, float]:
        c = self.controller
        return {
            "alpha": float(np.mean(self._alpha)),
            "integral": float(np.mean(c.integral)),
            "p_term": float(np.mean(c.p_term)),
            "i_term": float(np.mean(c.i_term)),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"controller": self.controller.state_dict(), "alpha": [float(a) for a in self._alpha]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self._alpha = self._per_loop(state["alpha"])
