"""The PI entropy controller.

One error convention everywhere in the project::

    e_t = H_t − H_target          (entropy too high → e > 0 → α > 0 → entropy falls)

and one control law, the official EntroPIC one::

    u_t   = kp·e_t + ki·S_t        (S_t = Σ_{j<t} e_j, the integral of *past* errors)
    α_t   = clip(u_t, lo, hi)
    S_t+1 = S_t + e_t              (updated after α, unclipped, unless anti-windup is on)

`pi_step` is the pure, vectorised law; `PIController` wraps it with state, a setpoint
schedule and a step counter. The same object drives the bandit simulator (with gain
arrays of shape (64, 64), say) and the LLM trainer (scalar gains).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .params import ANTI_WINDUP_MODES
from .validation import is_finite_number, need

__all__ = ["ANTI_WINDUP_MODES", "PIController", "ReachMonitor", "pi_step"]

_NONFINITE_MODES = ("raise", "hold")


def pi_step(
    error: np.ndarray,
    integral: np.ndarray,
    kp: np.ndarray | float,
    ki: np.ndarray | float,
    lo: float = -1.0,
    hi: float = 1.0,
    anti_windup: str = "none",
    tracking_gain: float = 1.0,
    integral_limit: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One step of the PI law; returns ``(alpha, next_integral)``.

    All array arguments broadcast. Units: ``error`` in nats, ``integral`` in nat·steps,
    ``alpha`` dimensionless.

    Integral update per ``anti_windup`` mode:

    - ``"none"``: S ← S + e (the official code).
    - ``"clamp"`` (conditional integration): S is frozen on steps where the output is
      saturated and e would push it further into saturation (u > hi and e > 0, or
      u < lo and e < 0). Since ki ≥ 0, the sign of e is the direction S moves u.
    - ``"back_calculation"``: the integral action I = ki·S tracks the saturated output,
      I ← I + ki·e + kt·(α − u), i.e. S ← S + e + (kt/ki)·(α − u). With kt = 1 a saturated
      step pulls the integral to where u sits on the limit. Elements with ki = 0 use S ← S + e.

    Finally ``integral_limit`` (if given) clips S to [−limit, +limit].
    """
    u = kp * error + ki * integral
    alpha = np.clip(u, lo, hi)
    if anti_windup == "none":
        nxt = integral + error
    elif anti_windup == "clamp":
        pushing_out = ((u > hi) & (error > 0)) | ((u < lo) & (error < 0))
        nxt = np.where(pushing_out, integral, integral + error)
    elif anti_windup == "back_calculation":
        ki_arr = np.asarray(ki, dtype=float)
        safe_ki = np.where(ki_arr > 0, ki_arr, 1.0)
        correction = np.where(ki_arr > 0, tracking_gain * (alpha - u) / safe_ki, 0.0)
        nxt = integral + error + correction
    else:  # validated by the class; kept for direct callers
        need(False, "anti_windup", f"one of {ANTI_WINDUP_MODES}", anti_windup)
    if integral_limit is not None:
        nxt = np.clip(nxt, -integral_limit, integral_limit)
    return alpha, nxt


def _as_gain(name: str, value: Any) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    need(bool(np.all(np.isfinite(arr)) and not np.any(arr < 0)), name, "finite and >= 0 (elementwise)", value)
    return arr


def _scalar_or_array(x: np.ndarray) -> float | np.ndarray:
    return float(x) if np.ndim(x) == 0 else x


def _to_json(x: np.ndarray) -> float | list:
    return x.tolist() if np.ndim(x) else float(x)


class ReachMonitor:
    """Watches whether the target is inside the reachable band of the actuator.

    The target is declared *unreachable* when the unclipped output u has sat beyond a limit for
    ``patience`` consecutive steps while the error keeps pushing it out (u > hi with e > 0: the
    entropy stays too high at full α; u < lo with e < 0: too low), or, for a controller that
    estimates the plant, when α* = b̂/k̂ (the α that holds the entropy still) has lain outside [lo, hi]
    for ``patience`` steps. State: the signed run length (+n: n steps pushing the upper limit, −n: the
    lower one) and the run length of α* outside the limits.
    """

    def __init__(self, lo: float, hi: float, *, patience: int = 50) -> None:
        need(isinstance(patience, int | np.integer) and patience >= 1, "reach_patience", "an integer >= 1", patience)
        self.lo, self.hi, self.patience = float(lo), float(hi), int(patience)
        self.reset()

    def reset(self) -> None:
        self.run = np.zeros(())
        self.star_run = np.zeros(())

    def observe(self, u: np.ndarray, error: np.ndarray, alpha_star: Any = None) -> None:
        """Count one step of output u (unclipped) and error e = H − target, and, for an estimating
        controller, whether its α* (NaN: not estimated yet) lies outside [lo, hi]."""
        up = (u > self.hi) & (error > 0)
        down = (u < self.lo) & (error < 0)
        run = np.broadcast_to(self.run, np.shape(up))
        self.run = np.where(up, np.maximum(run, 0) + 1, np.where(down, np.minimum(run, 0) - 1, 0))
        if alpha_star is not None:
            star = np.asarray(alpha_star, dtype=float)
            self.star_run = np.where((star > self.hi) | (star < self.lo), self.star_run + 1, 0)

    def reachable(self) -> float | np.ndarray:
        """1.0 where the target looks reachable, 0.0 where not (array for array controllers): α pushed
        out of its limits, or α* outside them, for ``patience`` consecutive steps."""
        ok = (np.abs(self.run) < self.patience) & (self.star_run < self.patience)
        return _scalar_or_array(np.asarray(ok, dtype=float))

    def advice(self, target: float, alpha_star: Any = None) -> str:
        """One line: which side is out of reach and what to change."""
        high = float(np.max(self.run)) >= self.patience or (
            alpha_star is not None and float(np.max(alpha_star)) > self.hi
        )
        if high:
            side = (
                f"the entropy stays above the target {target:g} nats with α at its upper limit {self.hi:g}: "
                "raise the target"
            )
        else:
            side = (
                f"the entropy stays below the target {target:g} nats with α at its lower limit {self.lo:g}: "
                "lower the target"
            )
        return (
            f"target unreachable: {side}, or give the actuator more authority (a lower τ so more tokens are "
            "acted on, a larger alpha_limit, a higher learning rate or more epochs × mini-batches)"
        )

    def state_dict(self) -> dict[str, Any]:
        return {"run": _to_json(self.run), "star_run": _to_json(self.star_run)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run = np.asarray(state.get("run", 0.0), dtype=float)
        self.star_run = np.asarray(state.get("star_run", 0.0), dtype=float)


class PIController:
    """PI controller of policy entropy: ``update(H)`` returns the EntroPIC coefficient α.

    Parameters
    ----------
    kp, ki : float or array, >= 0
        Proportional and integral gains. Arrays broadcast against each other and the
        measurement, so a whole gain grid is one controller. ``ki = 0`` is P control.
    target : float or callable
        The entropy setpoint in nats, or a schedule ``step -> target`` (see `pic.setpoint`).
        The controller counts its own steps, starting at 0.
    output_limits : (lo, hi) or None
        α is clipped to [lo, hi]; ``None`` disables clipping. Official: (−1, 1).
    anti_windup : {"none", "clamp", "back_calculation"}
        How the integral behaves while α saturates (see `pi_step`). Official: "none".
    integral_limit : float > 0 or None
        Bound on |S| (nat·steps).
    tracking_gain : float in (0, 1]
        kt of back-calculation; ignored by the other modes.
    on_nonfinite : {"raise", "hold"}
        A NaN/inf measurement raises, or (``"hold"``) leaves α and the state of the affected
        elements unchanged. The step counter advances only if some element was finite.
    max_entropy : float > 0 or None
        Upper bound of the entropy in nats where it is known, log K for a K-way softmax (log V for
        a vocabulary of V tokens). A target above it is rejected: at construction for a constant
        target, at the `update` that reaches it for a schedule. None: only target >= 0 is checked.
    """

    def __init__(
        self,
        kp: float | np.ndarray,
        ki: float | np.ndarray,
        target: float | Callable[[int], float],
        *,
        output_limits: tuple[float, float] | None = (-1.0, 1.0),
        anti_windup: str = "none",
        integral_limit: float | None = None,
        tracking_gain: float = 1.0,
        on_nonfinite: str = "raise",
        max_entropy: float | None = None,
    ) -> None:
        self.kp = _as_gain("kp", kp)
        self.ki = _as_gain("ki", ki)
        try:
            self._shape = np.broadcast_shapes(self.kp.shape, self.ki.shape)
        except ValueError:
            raise ValueError(
                f"kp and ki must broadcast together, got shapes {self.kp.shape} and {self.ki.shape}"
            ) from None
        need(
            max_entropy is None or (is_finite_number(max_entropy) and max_entropy > 0),
            "max_entropy",
            "a finite number > 0 (nats) or None",
            max_entropy,
        )
        self.max_entropy = None if max_entropy is None else float(max_entropy)
        if callable(target):
            self.target = target
        else:
            self.target = self._checked_target(target)
        if output_limits is None:
            self.output_limits = (-math.inf, math.inf)
        else:
            lo, hi = (float(v) for v in output_limits)
            need(lo < hi, "output_limits", "(lo, hi) with lo < hi", output_limits)  # False for NaN too
            self.output_limits = (lo, hi)
        need(anti_windup in ANTI_WINDUP_MODES, "anti_windup", f"one of {ANTI_WINDUP_MODES}", anti_windup)
        self.anti_windup = anti_windup
        need(integral_limit is None or integral_limit > 0, "integral_limit", "> 0 or None", integral_limit)
        self.integral_limit = None if integral_limit is None else float(integral_limit)
        need(0 < tracking_gain <= 1, "tracking_gain", "in (0, 1]", tracking_gain)
        self.tracking_gain = float(tracking_gain)
        need(on_nonfinite in _NONFINITE_MODES, "on_nonfinite", f"one of {_NONFINITE_MODES}", on_nonfinite)
        self.on_nonfinite = on_nonfinite
        self.monitor = ReachMonitor(*self.output_limits)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Zero the integral, the last output and error, and the step counter."""
        self._integral = np.zeros(self._shape)
        self._alpha = np.zeros(self._shape)
        self._error = np.zeros(self._shape)
        self._prev_integral = np.zeros(self._shape)
        self.step = 0
        self.monitor.reset()

    @property
    def integral(self) -> float | np.ndarray:
        """S, the running sum of past errors (nat·steps)."""
        return _scalar_or_array(self._integral)

    @property
    def alpha(self) -> float | np.ndarray:
        """The last output α (0 before the first update)."""
        return _scalar_or_array(self._alpha)

    @property
    def error(self) -> float | np.ndarray:
        """The last error e = H − target (0 before the first update)."""
        return _scalar_or_array(self._error)

    def _checked_target(self, value: Any) -> float:
        """A setpoint value as a float, or one `need` line: finite, >= 0 and at most ``max_entropy``."""
        if self.max_entropy is None:
            ok, allowed = is_finite_number(value) and value >= 0, "a finite entropy >= 0 nats"
        else:
            ok = is_finite_number(value) and 0 <= value <= self.max_entropy
            allowed = f"a finite entropy in [0, max_entropy = {self.max_entropy:.4g}] nats"
        need(ok, "target", allowed, value)
        return float(value)

    def target_at(self, step: int | None = None) -> float:
        """The setpoint at ``step`` (default: the step the next `update` will use)."""
        step = self.step if step is None else step
        return float(self.target(step)) if callable(self.target) else self.target

    @property
    def target_reachable(self) -> float | np.ndarray:
        """1.0 while the target looks reachable, 0.0 once α has saturated for ``monitor.patience`` steps
        with the error pushing out (`ReachMonitor`)."""
        return self.monitor.reachable()

    @property
    def p_term(self) -> float | np.ndarray:
        """kp·e of the last update."""
        return _scalar_or_array(self.kp * self._error)

    @property
    def i_term(self) -> float | np.ndarray:
        """ki·S with the integral *before* the last update (what entered the last α)."""
        return _scalar_or_array(self.ki * self._prev_integral)

    # ---------------------------------------------------------------- control
    def update(self, measured: float | np.ndarray) -> float | np.ndarray:
        """Feed the measured entropy H (nats); return α for this step."""
        h = np.asarray(measured, dtype=float)
        finite = np.isfinite(h)
        if not np.all(finite):
            if self.on_nonfinite == "raise":
                need(False, "measured entropy", "finite", measured)
            if not np.any(finite):
                return self.alpha
        target = self._checked_target(self.target_at()) if callable(self.target) else self.target
        error = h - target
        lo, hi = self.output_limits
        alpha, nxt = pi_step(
            np.where(finite, error, 0.0),
            self._integral,
            self.kp,
            self.ki,
            lo,
            hi,
            self.anti_windup,
            self.tracking_gain,
            self.integral_limit,
        )
        integral_in = self._integral.copy()
        self.monitor.observe(np.where(finite, self.kp * error + self.ki * integral_in, 0.0), error)
        if np.all(finite):
            self._alpha, self._integral, self._error = alpha, nxt, np.broadcast_to(error, alpha.shape)
        else:
            self._alpha = np.where(finite, alpha, self._alpha)
            self._integral = np.where(finite, nxt, self._integral)
            self._error = np.where(finite, error, self._error)
        # the integral that entered this α (i_term); on a partly non-finite step the held elements keep theirs
        self._prev_integral = np.where(finite, integral_in, self._prev_integral)
        self.step += 1
        return self.alpha

    # ------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state; `load_state_dict` restores it exactly."""
        return {
            "step": self.step,
            "integral": _to_json(self._integral),
            "alpha": _to_json(self._alpha),
            "error": _to_json(self._error),
            "prev_integral": _to_json(self._prev_integral),
            "reach_run": _to_json(self.monitor.run),  # flat, so states compare as flat dicts of numbers
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from `state_dict` (gains and target come from the constructor).

        States written before ``prev_integral`` was saved get S − e for it, the integral before the
        last update when S ← S + e (exact for anti_windup "none" without an integral limit); α and
        every later output do not depend on it, only the reported ``i_term`` of the last step.
        """
        missing = {"step", "integral", "alpha", "error"} - set(state)
        if missing:
            raise ValueError(f"controller state is missing keys {sorted(missing)}")
        arrays = {}
        state = dict(state)
        if "prev_integral" not in state:
            state["prev_integral"] = (np.asarray(state["integral"], float) - np.asarray(state["error"], float)).tolist()
        for key in ("integral", "alpha", "error", "prev_integral"):
            arr = np.asarray(state[key], dtype=float)
            if arr.shape != self._shape:
                try:
                    arr = np.broadcast_to(arr, np.broadcast_shapes(arr.shape, self._shape)).copy()
                except ValueError:
                    raise ValueError(
                        f"controller state {key!r} has shape {arr.shape}, expected {self._shape}"
                    ) from None
            arrays[key] = arr
        step = int(state["step"])
        need(step >= 0, "controller state 'step'", ">= 0", step)
        self._integral, self._alpha, self._error = arrays["integral"], arrays["alpha"], arrays["error"]
        self._prev_integral = arrays["prev_integral"]
        self.step = step
        self.monitor.run = np.asarray(state.get("reach_run", 0.0), dtype=float)  # absent in older states

    def __repr__(self) -> str:
        def fmt(x: np.ndarray) -> str:
            return f"{float(x):g}" if np.ndim(x) == 0 else f"array(shape={x.shape})"

        target = self.target if callable(self.target) else f"{self.target:g}"
        lo, hi = self.output_limits
        parts = [
            f"kp={fmt(self.kp)}",
            f"ki={fmt(self.ki)}",
            f"target={target}",
            f"output_limits=({lo:g}, {hi:g})",
            f"anti_windup={self.anti_windup!r}",
        ]
        if self.integral_limit is not None:
            parts.append(f"integral_limit={self.integral_limit:g}")
        parts += [f"step={self.step}", f"integral={fmt(self._integral)}", f"alpha={fmt(self._alpha)}"]
        return f"PIController({', '.join(parts)})"
