"""EntroPIC (arXiv 2511.15248) as a lever: the PI controller and the (1 ± α) actuator.

Per step, α = `pic.PIController.update(H)` (e = H − H*, α > 0 when entropy is too high).
Per token, the EntroPIC term of `pic.actuator.entropic_adjustment`::

    α · Σ_{mask ∧ π > τ} (−r·|A|) / D        D = N ("all_tokens", the paper) or N_h ("high_prob_tokens", official)

written as the extra per-token term c_t·r_t of `pic.levers.loss` with
c_t = −α·|A_t|·1[π_t > τ]·N/D (`pic.actuator.entropic_coefficient`, the one actuator formula),
so that Σ c_t r_t mask_t / N is exactly that sum (tested).
On-policy its gradient is the PG gradient with weights 1 ± α on confident tokens (Lemma B:
confident positives lower the entropy, confident negatives raise it). N_h counts the
behaviour policy's confident tokens of the whole mini-batch (`counts`). Defaults, ranges and
errors are those of `pic.params.EntroPICParams`, prefixed with the lever's name.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .._array import detach, namespace
from ..actuator import entropic_coefficient, high_prob_mask, normalization_scale
from ..params import EntroPICParams
from ..validation import ParameterError
from ._common import check_signal, column, measured
from .base import Lever, LossModifiers, StepStats, TokenBatch
from .registry import register_lever

__all__ = ["EntroPIC"]

_DEFAULTS = EntroPICParams()
log = logging.getLogger(__name__)


@register_lever("entropic")
@register_lever("entropic_p", preset={"ki": 0.0})
class EntroPIC(Lever):
    """The EntroPIC PI (or P, ``ki = 0``) entropy controller.

    Parameters (defaults and ranges: `pic.params.EntroPICParams`)
    ----------
    kp, ki : gains (≥ 0); official 1 and 0.01.
    target : entropy setpoint in nats, or a `pic.setpoint` schedule table / callable of the step.
    tau : the actuator acts on tokens with current π > τ, in (0, 1); official 0.95.
    normalization : "all_tokens" (weights exactly 1 ± α) or "high_prob_tokens" (official, 1 ± α·N/N_h).
    alpha_limit, anti_windup, integral_limit, tracking_gain : see `pic.PIController`
        (``integral_limit`` None or 0: no bound).
    signal : "entropy" (full-vocabulary H, the paper) or "nll" (sampled-token −log π_old).
    """

    name = "entropic"
    applied_metrics = ("alpha", "p_term", "i_term")

    def __init__(
        self,
        kp: float = _DEFAULTS.kp,
        ki: float = _DEFAULTS.ki,
        target: Any = _DEFAULTS.target,
        *,
        tau: float = _DEFAULTS.tau,
        normalization: str = _DEFAULTS.normalization,
        alpha_limit: float = _DEFAULTS.alpha_limit,
        anti_windup: str = _DEFAULTS.anti_windup,
        integral_limit: float | None = None,
        tracking_gain: float = _DEFAULTS.tracking_gain,
        signal: str = "entropy",
        loops: int = 1,
    ) -> None:
        super().__init__(loops)
        params = EntroPICParams(
            kp=kp,
            ki=ki,
            target=target,
            tau=tau,
            normalization=normalization,
            alpha_limit=alpha_limit,
            anti_windup=anti_windup,
            integral_limit=0.0 if integral_limit is None else integral_limit,
            tracking_gain=tracking_gain,
        )
        params.check(prefix=f"{self.name}.")
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
            self.controller = params.controller()
        except ValueError as exc:  # its messages start with the parameter's name ("kp must be …")
            raise ParameterError(f"{self.name}.{exc}") from None
        self.tau, self.normalization, self.signal = float(tau), normalization, signal
        self._alpha = np.zeros(self.loops)

    def config(self) -> dict[str, Any]:
        return dict(self._config)

    @property
    def alpha(self) -> np.ndarray:
        """α of the current step, shape (L,)."""
        return self._alpha

    @property
    def holds_target(self) -> bool:
        """PI (ki > 0) removes the steady-state error; P control (ki = 0) leaves one."""
        return bool(np.any(self.controller.ki > 0))

    def target_at(self, step: int) -> float:
        return self.controller.target_at(step)

    def update(self, stats: StepStats) -> None:
        h = measured(stats, self.signal)
        self._alpha = self._per_loop(self.controller.update(h if h.size > 1 else float(h.reshape(-1)[0])))
        if not getattr(self, "_warned", False) and np.min(self.controller.target_reachable) == 0.0:
            self._warned = True  # once per lever: the advice of the reachable-band monitor
            log.warning("%s (step %d)", self.unreachable_message(), stats.step)

    def unreachable_message(self) -> str:
        """The one-line warning for ``target_reachable == 0`` (what to change), at the last measured step."""
        return self.controller.monitor.advice(self.controller.target_at(self.controller.step - 1))

    def counts(self, old_logp, mask) -> dict[str, Any]:
        if self.normalization == "all_tokens":
            return {}
        high = high_prob_mask(namespace(old_logp).exp(old_logp), self.tau) * mask
        return {"high": high.sum(axis=-1, keepdims=True)}

    def modify(self, tok: TokenBatch) -> LossModifiers:
        if not np.any(self._alpha):
            return LossModifiers()
        n_high = tok.counts["high"] if self.normalization == "high_prob_tokens" else 1.0
        coef = entropic_coefficient(
            tok.xp.exp(detach(tok.logp)),
            tok.adv,
            column(self._alpha, tok.logp),
            tau=self.tau,
            mask=tok.mask,
            scale=normalization_scale(self.normalization, tok.num_tokens, n_high),
        )
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
