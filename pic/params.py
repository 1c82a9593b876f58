"""The EntroPIC parameters, declared once: units, defaults, ranges and the one-line errors.

`EntroPICParams` is the single declaration of what configures an EntroPIC controller and its
actuator. `PIController`, the ``entropic`` lever (`pic.levers.entropic`), the trainer's
``[control]`` table (`llm.config`) and the verl / TRL plug-ins all take their fields, defaults
and validation from here. Defaults are the official code's (Kp 1, Ki 0.01, τ 0.95, α ∈ [−1, 1],
no anti-windup) except the normalisation, which defaults to the paper's ``"all_tokens"``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, get_args

from .validation import is_finite_number, need

__all__ = ["ANTI_WINDUP_MODES", "NORMALIZATIONS", "EntroPICParams"]

Normalization = Literal["all_tokens", "high_prob_tokens"]
AntiWindup = Literal["none", "clamp", "back_calculation"]

NORMALIZATIONS: tuple[str, ...] = get_args(Normalization)
"""D of the EntroPIC term: N (all valid tokens, the paper) or N_h (confident tokens, the official code)."""
ANTI_WINDUP_MODES: tuple[str, ...] = get_args(AntiWindup)
"""How the integral behaves while α saturates (see `pic.controller.pi_step`)."""


@dataclasses.dataclass
class EntroPICParams:
    """Everything that configures EntroPIC: the PI law, its setpoint and the (1 ± α) actuator."""

    kp: float = 1.0
    """Proportional gain (α per nat of error), >= 0. Official: 1."""
    ki: float = 0.01
    """Integral gain (α per nat·step of summed error), >= 0; 0 is P control. Official: 0.01."""
    target: Any = 0.1
    """Entropy setpoint H* in nats (>= 0), or a `pic.setpoint` schedule table
    (e.g. ``{kind = "linear", start = 0.3, end = 0.1, steps = 100}``)."""
    tau: float = 0.95
    """The actuator acts on tokens whose current probability exceeds tau, in (0, 1). Official: 0.95."""
    normalization: Normalization = "all_tokens"
    """'all_tokens' (weights exactly 1 ± α, the paper) or 'high_prob_tokens' (1 ± α·N/N_h, the official code)."""
    alpha_limit: float = 1.0
    """α is clipped to [−alpha_limit, alpha_limit], > 0. Official: 1."""
    anti_windup: AntiWindup = "none"
    """'none' (official), 'clamp' (conditional integration) or 'back_calculation'."""
    integral_limit: float = 0.0
    """Bound on |integral| in nat·steps, >= 0 (0 = no bound)."""
    tracking_gain: float = 1.0
    """kt of back-calculation anti-windup, in (0, 1]; ignored by the other modes."""

    def check(self, prefix: str = "", fields: tuple[str, ...] | None = None) -> EntroPICParams:
        """Validate every field (or only ``fields``); errors name ``<prefix><field>`` (e.g. ``control.tau``).

        Returns self. A plug-in that exposes only some of the fields checks just those.
        """
        names = (
            tuple(f.name for f in dataclasses.fields(EntroPICParams)) if fields is None else fields
        )  # not a subclass's
        for name in sorted(names, key=lambda n: n == "target"):  # the target (a schedule) last
            if name == "target":
                self.schedule(prefix)
                continue
            ok, rule = _RULES[name]
            value = getattr(self, name)
            need(ok(value), f"{prefix}{name}", rule, value)
        return self

    def schedule(self, prefix: str = ""):
        """The target as a `pic.setpoint` schedule (a callable of the step, in nats)."""
        from .setpoint import schedule_from_dict
        from .validation import ParameterError

        if callable(self.target):
            return self.target
        try:
            return schedule_from_dict(self.target)
        except (ValueError, TypeError) as exc:
            raise ParameterError(f"{prefix}target: {exc}") from None

    def controller(self, **overrides: Any):
        """A fresh `pic.PIController` with these gains, target and limits."""
        from .controller import PIController

        return PIController(
            self.kp,
            self.ki,
            self.schedule(),
            output_limits=(-self.alpha_limit, self.alpha_limit),
            anti_windup=self.anti_windup,
            integral_limit=self.integral_limit or None,
            tracking_gain=self.tracking_gain,
            **overrides,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _number_in(lo: float, hi: float, *, low_open: bool = False, high_open: bool = False):
    def ok(x: Any) -> bool:
        if not is_finite_number(x):
            return False
        return (lo < x if low_open else lo <= x) and (x < hi if high_open else x <= hi)

    return ok


_INF = float("inf")
_RULES: dict[str, tuple[Any, str]] = {
    "kp": (_number_in(0.0, _INF), "a finite number >= 0"),
    "ki": (_number_in(0.0, _INF), "a finite number >= 0"),
    "tau": (_number_in(0.0, 1.0, low_open=True, high_open=True), "in (0, 1)"),
    "normalization": (lambda x: x in NORMALIZATIONS, f"one of {NORMALIZATIONS}"),
    "alpha_limit": (_number_in(0.0, _INF, low_open=True), "> 0"),
    "anti_windup": (lambda x: x in ANTI_WINDUP_MODES, f"one of {ANTI_WINDUP_MODES}"),
    "integral_limit": (_number_in(0.0, _INF), ">= 0 (0 = none)"),
    "tracking_gain": (_number_in(0.0, 1.0, low_open=True), "in (0, 1]"),
}
"""Field → (accepts(value), the rule as the error states it). ``target`` is checked by `EntroPICParams.schedule`."""
