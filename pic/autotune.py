"""Self-tuning EntroPIC: identify the entropy plant online and place the PI gains from the estimate.

Plant (per step, `pic.stability`): ΔH_t = H_{t+1} − H_t = b − k·α_t, with the actuator gain k > 0
(nats per unit α) and the drift b (nats per step) unknown and slowly varying. The loop only depends
on the normalised gains K_p = k·kp and K_i = k·ki, so a controller that knows k can place them.

**Identification** (recursive least squares with exponential forgetting λ). Regressor φ_t = (1, −α_t) (α of
``delay`` + 1 updates earlier where α acts with a delay), parameter θ = (b, k), observation
y_t = H_{t+1} − H_t::

    ε = y − φᵀθ̂,   g = Pφ / (λ + φᵀPφ),   θ̂ ← θ̂ + g ε,   P ← (P − g φᵀP) / λ

with the prior θ̂₀ = (0, √(k_lo·k_hi)), P₀ = diag(p_b, p_k), trace(P) capped at trace(P₀) (no covariance
windup while α is constant) and k̂ clipped to the prior's bounds [k_lo, k_hi], so it stays positive
and finite.

**Bias compensation** (closed-loop identification with a noisy measurement). The entropy is measured
with noise, H_t = x_t + n_t (an LLM's batch entropy: σ_n ≈ 0.03 nats). Then y_t = b − k·α_{t−1} +
n_t − n_{t−1}, and with delay 0 the regressor α_{t−1} = kp·e_{t−1} + I contains kp·n_{t−1}, so
E[φ·(n_t − n_{t−1})] = (0, kp·σ_n²) and least squares converges to θ + R⁻¹(0, kp·σ_n²): k̂ is biased
*upwards*, by up to 1/kp when α is mostly the P-term of noise. The placed gains kp ∝ 1/k̂ then shrink,
which makes the bias larger — the estimate drifts to k_hi and the loop becomes too timid to act. The
compensated estimate subtracts the accumulated bias (bias-compensated least squares)::

    c ← λ·c + (0, kp_{t−1}·σ̂_n²)   (0 while α_{t−1} sat on a limit, or with delay ≥ 1),   θ̂ = θ̂_LS − P·c

with σ̂_n² = max(0, −γ), γ an exponential average of ε_t·ε_{t−1}: the residual n_t − n_{t−1} + w_t has
lag-one autocovariance −σ_n² whatever the process noise w. θ̂_LS is the plain RLS estimate above (k̂_LS
not clipped; the compensated k̂ is). Without measurement noise γ ≥ 0 on average, c ≈ 0 and θ̂ ≈ θ̂_LS.

The residual variance s² (an exponential average of ε²) scales P into the covariance of θ̂: the
estimate is *excited* once √(s²·P_kk) < ``excitation`` · k̂ (a metric says so; it latches).

**Gain placement.** Both roots of λ² − (2 − K_p)λ + (1 − K_p + K_i) at r::

    K_p = 2(1 − r),   K_i = (1 − r)²,   kp = K_p / k̂,   ki = K_i / k̂

with r = exp(−4/``settling_steps``) (envelope r^n = e⁻⁴ ≈ 2 % after n steps), then raised (slower)
until the margins of `pic.robustness` hold: the loop with one step of measurement delay is stable
for every true gain in [k̂/m, m·k̂] (m = ``gain_margin``), and the steady noise gain Var e/σ² of the
delay-free loop is at most ``max_noise_gain``. These depend only on K_p, K_i, so the design is done
once (`design_poles`). The gains are placed for the cautious k_design = min(k_hi, k̂ + 2·std k̂): before
any data that is k_hi (stable on the whole prior range; α ramps through the integral and excites the
estimate), and it tends to k̂ as the estimate becomes excited.

**Law** (as `pic.PIController`, with the integral kept as the action I = Σ_j ki_j·e_j so a change
of ki does not move the output)::

    u_t = kp_t·e_t + I_t,   α_t = clip(u_t, lo, hi),   I_{t+1} = I_t + ki_t·e_t  (clamp anti-windup)

**Bumpless.** When the gains change from kp to kp' before step t, I_t ← I_t + (kp − kp')·e_{t−1}: the
previous output would be reproduced by the new gains, so only new data moves α.

**Reachable band** (`pic.controller.ReachMonitor`): α* = b̂/k̂ is the α that holds the entropy still;
|α*| beyond the output limit, or α saturated for ``reach_patience`` steps while the error keeps pushing
out, means the target cannot be held with this actuator (metric ``target_reachable``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .controller import ReachMonitor
from .robustness import is_stable_delayed, noise_gain
from .setpoint import AutoTarget, auto_target
from .validation import is_finite_number, need

__all__ = ["SelfTuningPI", "design_poles", "placed_gains"]


def placed_gains(r, k_hat) -> tuple[np.ndarray, np.ndarray]:
    """(kp, ki) that put both closed-loop poles of the delay-free loop at r for the gain k̂."""
    r, k_hat = np.broadcast_arrays(np.asarray(r, float), np.asarray(k_hat, float))
    return 2.0 * (1.0 - r) / k_hat, (1.0 - r) ** 2 / k_hat


def _margins_hold(r: float, gain_margin: float, delay: int, max_noise_gain: float) -> bool:
    kp, ki = placed_gains(r, 1.0)
    spread = np.geomspace(1.0 / gain_margin, gain_margin, 25)
    if not bool(np.all(is_stable_delayed(kp, ki, spread, delay=delay))):
        return False
    var_e, _ = noise_gain(kp, ki, 1.0)
    return bool(np.isfinite(var_e) and var_e <= max_noise_gain)


def design_poles(settling_steps: float, gain_margin: float = 2.0, delay: int = 1, max_noise_gain: float = 1.5):
    """The double pole r of the design: exp(−4/settling_steps), raised until the margins hold.

    Returns r in (0, 1). Margins (see the module docstring): stable with ``delay`` steps of
    measurement delay for every gain in [k̂/gain_margin, gain_margin·k̂], and Var e/σ² ≤ max_noise_gain.
    """
    r = math.exp(-4.0 / settling_steps)
    while r < 0.999 and not _margins_hold(r, gain_margin, delay, max_noise_gain):
        r = 1.0 - 0.95 * (1.0 - r)
    return r


def _check(name: str, ok: bool, rule: str, value: Any) -> None:
    need(ok, name, rule, value)


class SelfTuningPI:
    """PI entropy controller that identifies k and b online and places its own gains.

    Same surface as `pic.PIController`: ``update(H) -> α``, ``reset()``, ``state_dict()`` /
    ``load_state_dict()`` (JSON, exact), ``target_at(step)``, ``alpha``, ``integral``, ``p_term``,
    ``i_term``; plus ``k_hat``, ``b_hat``, ``kp``, ``ki``, ``alpha_star``, ``excited``,
    ``target_reachable``. Measurements may be arrays (independent loops, estimated separately).

    Parameters
    ----------
    target : float >= 0, callable step -> nats, "initial" or {"relative": f, "window": W, "shape": …}
        The last two are `pic.setpoint.AutoTarget`: f times the entropy of the first W steps.
    settling_steps : float > 1
        Requested settling time (steps) of the designed loop; the margins may make it slower.
    output_limits : (lo, hi)
    k_bounds : (k_lo, k_hi), 0 < k_lo < k_hi
        Prior range of the plant gain (nats per unit α per step); k̂ starts at the geometric mean.
    forgetting : float in (0.5, 1]
        λ of the RLS (memory ≈ 1/(1 − λ) steps).
    gain_margin : float >= 1
        The design stays stable (with one step of delay) for k in [k̂/m, m·k̂].
    excitation : float > 0
        The estimate counts as excited once its relative standard error is below this.
    delay : int >= 0
        Steps between computing α and its effect on the measurement: 0 in the trainer and the simulator,
        1 in the verl/TRL plug-ins (α of step t comes from step t − 1's entropy). The RLS regresses
        ΔH on the α of ``delay + 1`` updates earlier.
    reach_patience : int >= 1 or None
        Steps of α saturated with the error pushing out (or α* outside the limits) before the target is
        declared unreachable; None: 2·settling_steps, so a slow transient does not raise the alarm.
    """

    def __init__(
        self,
        target: float | Callable[[int], float] = 0.1,
        *,
        settling_steps: float = 20.0,
        output_limits: tuple[float, float] = (-1.0, 1.0),
        k_bounds: tuple[float, float] = (1e-5, 1.0),
        forgetting: float = 0.98,
        gain_margin: float = 2.0,
        max_noise_gain: float = 1.5,
        excitation: float = 0.3,
        reach_patience: int | None = None,
        anti_windup: str = "clamp",
        delay: int = 0,
    ) -> None:
        auto = auto_target(target)
        if auto is not None:
            self.target = auto
        elif callable(target):
            self.target = target
        else:
            _check("target", is_finite_number(target) and target >= 0, "a finite entropy >= 0 nats", target)
            self.target = float(target)
        _check("settling_steps", is_finite_number(settling_steps) and settling_steps > 1, "> 1", settling_steps)
        lo, hi = (float(v) for v in output_limits)
        _check("output_limits", lo < 0 < hi, "(lo, hi) with lo < 0 < hi", output_limits)
        k_lo, k_hi = (float(v) for v in k_bounds)
        _check("k_bounds", 0 < k_lo < k_hi < math.inf, "(k_lo, k_hi) with 0 < k_lo < k_hi finite", k_bounds)
        _check("forgetting", is_finite_number(forgetting) and 0.5 < forgetting <= 1, "in (0.5, 1]", forgetting)
        _check("gain_margin", is_finite_number(gain_margin) and gain_margin >= 1, ">= 1", gain_margin)
        _check("max_noise_gain", is_finite_number(max_noise_gain) and max_noise_gain > 0, "> 0", max_noise_gain)
        _check("excitation", is_finite_number(excitation) and excitation > 0, "> 0", excitation)
        _check("anti_windup", anti_windup in ("none", "clamp"), "one of ('none', 'clamp')", anti_windup)
        _check("delay", isinstance(delay, int) and 0 <= delay <= 8, "an integer in [0, 8] (steps)", delay)
        self.delay = delay
        self.settling_steps, self.output_limits = float(settling_steps), (lo, hi)
        self.k_bounds, self.forgetting = (k_lo, k_hi), float(forgetting)
        self.gain_margin, self.max_noise_gain, self.excitation = float(gain_margin), float(max_noise_gain), excitation
        self.anti_windup = anti_windup
        self.pole = design_poles(settling_steps, gain_margin, 1, max_noise_gain)
        self.fallback_gains = tuple(float(g) for g in placed_gains(self.pole, k_hi))
        self._k_prior = math.sqrt(k_lo * k_hi)
        self._p0 = np.diag([1.0, (k_hi / 0.05) ** 2])  # b free; k̂ reaches k_hi from α ≈ 0.05 of data
        patience = max(1, round(2 * settling_steps)) if reach_patience is None else reach_patience
        self.monitor = ReachMonitor(lo, hi, patience=patience)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Back to the prior: k̂ = √(k_lo·k_hi), b̂ = 0, fallback gains, zero integral, step 0."""
        self._shape: tuple[int, ...] = ()
        self._theta = np.array([0.0, self._k_prior])
        self._ls = self._theta.copy()  # θ̂_LS, the uncompensated RLS estimate
        self._bias = np.zeros(2)  # c, the accumulated noise bias of the normal equations
        self._autocov = np.asarray(0.0)  # γ, average of ε_t·ε_{t−1} (−σ_n²)
        self._last_resid = np.asarray(0.0)
        self._cov = self._p0.copy()
        self._noise = np.asarray(0.0)
        self._excited = np.asarray(False)
        self._kp, self._ki = (np.asarray(g) for g in self.fallback_gains)
        self._action = np.asarray(0.0)  # I, the integral action in α units
        self._prev_action = np.asarray(0.0)
        self._alpha = np.asarray(0.0)
        self._history = np.zeros(self.delay + 1)  # α of the last delay + 1 updates, newest first
        self._error = np.asarray(0.0)
        self._last_h = np.asarray(np.nan)
        self.step = 0
        self.monitor.reset()
        if isinstance(self.target, AutoTarget):
            self.target.reset()

    def _broadcast(self, shape: tuple[int, ...]) -> None:
        if shape == self._shape:
            return
        self._shape = shape

        def grow(x: np.ndarray, tail: tuple[int, ...] = ()) -> np.ndarray:
            return np.broadcast_to(x, (*shape, *tail)).copy()

        self._theta, self._cov = grow(self._theta, (2,)), grow(self._cov, (2, 2))
        self._ls, self._bias = grow(self._ls, (2,)), grow(self._bias, (2,))
        self._history = grow(self._history, (self.delay + 1,))
        shaped = ("_theta", "_ls", "_bias", "_cov", "_history")  # grown above, with their trailing shapes
        for name in (*(n for n in self._ARRAYS if n not in shaped), "_last_h"):
            setattr(self, name, grow(getattr(self, name)))

    @staticmethod
    def _out(x: np.ndarray):
        return float(x) if np.ndim(x) == 0 else x.copy()

    @property
    def k_hat(self):
        """k̂, nats per unit α per step."""
        return self._out(self._theta[..., 1])

    @property
    def b_hat(self):
        """b̂, nats per step."""
        return self._out(self._theta[..., 0])

    @property
    def kp(self):
        return self._out(self._kp)

    @property
    def ki(self):
        return self._out(self._ki)

    @property
    def alpha(self):
        return self._out(self._alpha)

    @property
    def error(self):
        return self._out(self._error)

    @property
    def integral(self):
        """The integral action I = Σ ki·e (in α units; `PIController.integral` is S = I/ki)."""
        return self._out(self._action)

    @property
    def p_term(self):
        return self._out(self._kp * self._error)

    @property
    def i_term(self):
        return self._out(self._prev_action)

    @property
    def excited(self):
        """True once the relative standard error of k̂ fell below ``excitation`` (latched)."""
        return self._out(self._excited)

    @property
    def k_std(self):
        """Standard error of k̂, √(s²·P_kk) (nats per unit α per step)."""
        return self._out(np.sqrt(np.maximum(self._noise * self._cov[..., 1, 1], 0.0)))

    @property
    def k_design(self):
        """The gain the PI gains are placed for: min(k_hi, k̂ + 2·std k̂), a cautious upper bound on k."""
        return self._out(np.clip(self._theta[..., 1] + 2.0 * np.asarray(self.k_std), *self.k_bounds))

    @property
    def alpha_star(self):
        """α* = b̂/k̂, the α that holds the entropy still at the current operating point."""
        return self._out(self._theta[..., 0] / self._theta[..., 1])

    @property
    def target_reachable(self):
        return self.monitor.reachable()

    def target_at(self, step: int | None = None) -> float:
        step = self.step if step is None else step
        return float(self.target(step)) if callable(self.target) else self.target

    # ---------------------------------------------------------------- control
    @property
    def noise_std(self):
        """σ̂_n, the estimated standard deviation of the entropy measurement (nats)."""
        return self._out(np.sqrt(np.maximum(-self._autocov, 0.0)))

    def _identify(self, h: np.ndarray) -> None:
        """One RLS step with y = H_t − H_{t−1} and φ = (1, −α_{t−1}), then the bias compensation."""
        lam = self.forgetting
        alpha_prev = self._history[..., -1]
        phi = np.stack([np.ones_like(h), -alpha_prev], axis=-1)
        y = h - self._last_h
        p_phi = np.einsum("...ij,...j->...i", self._cov, phi)
        denom = lam + np.einsum("...i,...i->...", phi, p_phi)
        gain = p_phi / denom[..., None]
        ls = self._ls + gain * (y - np.einsum("...i,...i->...", phi, self._ls))[..., None]
        cov = (self._cov - gain[..., :, None] * p_phi[..., None, :]) / lam
        cov = 0.5 * (cov + np.swapaxes(cov, -1, -2))
        cap = np.minimum(1.0, np.trace(self._p0) / np.maximum(np.trace(cov, axis1=-2, axis2=-1), 1e-300))
        self._cov = cov * cap[..., None, None]
        # residual of the compensated model; its lag-one autocovariance is −σ_n²
        resid = y - np.einsum("...i,...i->...", phi, self._theta)
        if self.step > 1:
            self._autocov = lam * self._autocov + (1 - lam) * resid * self._last_resid
        self._noise = np.where(self.step > 1, lam * self._noise + (1 - lam) * resid**2, resid**2)
        self._last_resid = resid
        lo, hi = self.output_limits
        free = (alpha_prev > lo) & (alpha_prev < hi)  # a saturated α does not carry the noise
        kp_n = np.where(free, self._kp, 0.0) if self.delay == 0 else np.zeros_like(h)
        step_bias = np.stack([np.zeros_like(h), kp_n * np.maximum(-self._autocov, 0.0)], axis=-1)
        self._bias = (lam * self._bias + step_bias) / cap[..., None]  # P scaled by cap: R, and c, by 1/cap
        self._ls = ls
        theta = ls - np.einsum("...ij,...j->...i", self._cov, self._bias)
        theta[..., 1] = np.clip(theta[..., 1], *self.k_bounds)
        self._theta = theta
        std_k = np.sqrt(np.maximum(self._noise * self._cov[..., 1, 1], 0.0))
        self._excited = self._excited | (std_k < self.excitation * theta[..., 1])

    def update(self, measured: float | np.ndarray) -> float | np.ndarray:
        """Feed the measured entropy H (nats); return α for this step."""
        h = np.asarray(measured, dtype=float)
        need(bool(np.all(np.isfinite(h))), "measured entropy", "finite", measured)
        self._broadcast(np.broadcast_shapes(h.shape, self._shape))
        h = np.broadcast_to(h, self._shape)
        if self.step > 0:
            self._identify(h)
        kp_new, ki_new = placed_gains(self.pole, self.k_design if self.step > 0 else self.k_bounds[1])
        self._action = self._action + (self._kp - kp_new) * self._error  # bumpless: keeps kp·e_{t−1} + I
        self._kp, self._ki = kp_new, ki_new
        if isinstance(self.target, AutoTarget):
            self.target.observe(h, self.step)
            error = h - self.target.value(self.step)
        else:
            error = h - self.target_at()
        lo, hi = self.output_limits
        u = self._kp * error + self._action
        alpha = np.clip(u, lo, hi)
        grow = self._ki * error
        if self.anti_windup == "clamp":
            grow = np.where(((u > hi) & (error > 0)) | ((u < lo) & (error < 0)), 0.0, grow)
        self._prev_action = self._action
        self._action = self._action + grow
        self._alpha, self._error, self._last_h = alpha, np.asarray(error, float), h.copy()
        self._history = np.concatenate([alpha[..., None], self._history[..., :-1]], axis=-1)
        self.monitor.observe(u, error, np.where(self._excited, self._theta[..., 0] / self._theta[..., 1], np.nan))
        self.step += 1
        return self.alpha

    # ------------------------------------------------------------ persistence
    _ARRAYS = (
        "_theta",
        "_ls",
        "_bias",
        "_autocov",
        "_last_resid",
        "_cov",
        "_noise",
        "_excited",
        "_kp",
        "_ki",
        "_action",
        "_prev_action",
        "_alpha",
        "_error",
        "_history",
    )

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state (floats round-trip exactly through JSON); see `load_state_dict`."""
        state: dict[str, Any] = {"step": self.step, "shape": list(self._shape), "monitor": self.monitor.state_dict()}
        if isinstance(self.target, AutoTarget):
            state["auto_target"] = self.target.state_dict()
        for name in self._ARRAYS:
            arr = getattr(self, name)
            state[name[1:]] = arr.tolist() if arr.ndim else arr.item()
        last = self._last_h
        state["last_h"] = np.where(np.isfinite(last), last, 0.0).tolist() if last.ndim else float(np.nan_to_num(last))
        return state

    @staticmethod
    def _compat_defaults(state: dict[str, Any]) -> dict[str, Any]:
        """Keys of states saved before the bias compensation: θ̂_LS = θ̂, no bias, no noise estimate."""
        if "theta" not in state:
            return {}
        zeros = np.zeros(np.shape(state["theta"])[:-1]).tolist()
        return {
            "ls": state["theta"],
            "bias": np.zeros(np.shape(state["theta"])).tolist(),
            "autocov": zeros,
            "last_resid": zeros,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict` (the design parameters come from the constructor)."""
        state = {**self._compat_defaults(state), **state}
        missing = {"step", "shape", "monitor", "last_h", *(n[1:] for n in self._ARRAYS)} - set(state)
        if missing:
            raise ValueError(f"self-tuning controller state is missing keys {sorted(missing)}")
        step = int(state["step"])
        need(step >= 0, "controller state 'step'", ">= 0", step)
        self._shape = tuple(int(n) for n in state["shape"])
        for name in self._ARRAYS:
            dtype = bool if name == "_excited" else float
            setattr(self, name, np.asarray(state[name[1:]], dtype=dtype))
        self._last_h = np.asarray(state["last_h"], dtype=float)
        self.monitor.load_state_dict(state["monitor"])
        if isinstance(self.target, AutoTarget):
            self.target.load_state_dict(state["auto_target"])
        self.step = step

    def __repr__(self) -> str:
        return (
            f"SelfTuningPI(target={self.target!r}, settling_steps={self.settling_steps:g}, pole={self.pole:.4f}, "
            f"k_bounds={self.k_bounds}, step={self.step})"
        )
