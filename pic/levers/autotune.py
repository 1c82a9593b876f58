"""Self-tuning EntroPIC as a lever (``entropic_auto``): `pic.autotune.SelfTuningPI` drives the (1 ± α) actuator.

Per step α = ``SelfTuningPI.update(H)``; the per-token term is EntroPIC's (`pic.levers.entropic`),
c_t = −α·|A_t|·1[π_t > τ]·N/D. No gains are given: the controller identifies the plant gain k and the
drift b and places kp, ki for ``settling_steps``. Metrics: α, the P and I terms, k̂, b̂, kp, ki,
α* = b̂/k̂, ``excited`` (1 once the gains follow k̂) and ``target_reachable`` (0: the warning of
`unreachable_message` applies).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autotune import SelfTuningPI
from ..params import EntroPICParams
from ..setpoint import auto_target, schedule_from_dict
from ..validation import ParameterError
from ._common import check_signal
from .base import Lever
from .entropic import EntroPIC
from .registry import register_lever

__all__ = ["EntroPICAuto"]

_DEFAULTS = EntroPICParams()


@register_lever("entropic_auto", compared=False)
class EntroPICAuto(EntroPIC):
    """EntroPIC with self-tuned gains (the actuator, α, targets and state are `EntroPIC`'s).

    Parameters
    ----------
    target : entropy setpoint in nats, a `pic.setpoint` schedule table / callable, "initial" or
        {"relative": f, "window": W, "shape": …, "total_steps": N} (`pic.setpoint.AutoTarget`).
    tau, normalization, alpha_limit, signal : as the ``entropic`` lever.
    settling_steps : requested settling time of the loop in steps (> 1).
    k_bounds : prior range (k_lo, k_hi) of the plant gain, nats per unit α per step.
    """

    name = "entropic_auto"
    holds_target = True
    applied_metrics = ("alpha", "p_term", "i_term")

    def __init__(
        self,
        target: Any = _DEFAULTS.target,
        *,
        tau: float = _DEFAULTS.tau,
        normalization: str = _DEFAULTS.normalization,
        alpha_limit: float = _DEFAULTS.alpha_limit,
        settling_steps: float = 20.0,
        k_bounds: tuple[float, float] = (1e-5, 1.0),
        signal: str = "entropy",
        loops: int = 1,
    ) -> None:
        Lever.__init__(self, loops)
        EntroPICParams(tau=tau, normalization=normalization, alpha_limit=alpha_limit).check(
            prefix=f"{self.name}.", fields=("tau", "normalization", "alpha_limit")
        )
        check_signal(self.name, signal)
        self._config = {
            "target": target if not callable(target) else repr(target),
            "tau": tau,
            "normalization": normalization,
            "alpha_limit": alpha_limit,
            "settling_steps": settling_steps,
            "k_bounds": list(k_bounds),
            "signal": signal,
        }
        try:
            schedule = auto_target(target) or (target if callable(target) else schedule_from_dict(target))
            self.controller = SelfTuningPI(
                schedule,
                settling_steps=settling_steps,
                output_limits=(-alpha_limit, alpha_limit),
                k_bounds=tuple(k_bounds),
            )
        except (ValueError, TypeError) as exc:
            raise ParameterError(f"{self.name}.{exc}") from None
        self.tau, self.normalization, self.signal = float(tau), normalization, signal
        self._alpha = np.zeros(self.loops)
        self._warned = False

    def metrics(self) -> dict[str, float]:
        c = self.controller
        identified = {"k_hat": c.k_hat, "b_hat": c.b_hat, "kp": c.kp, "ki": c.ki, "alpha_star": c.alpha_star}
        identified["noise_std"] = c.noise_std  # σ of the entropy measurement noise the identification removes
        own = {key: float(np.mean(value)) for key, value in identified.items()}
        own |= {"excited": float(np.mean(c.excited)), "target_reachable": float(np.min(c.target_reachable))}
        return super().metrics() | own

    def unreachable_message(self) -> str:
        """The one-line warning for ``target_reachable == 0`` (what to change)."""
        c = self.controller
        return c.monitor.advice(c.target_at(c.step - 1), c.alpha_star)
