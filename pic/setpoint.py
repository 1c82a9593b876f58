"""Entropy setpoint schedules: callables ``step -> target`` (nats).

Every schedule is a frozen dataclass, so it is hashable, printable and can be rebuilt from
a plain dict (`schedule_from_dict`, used by the TOML configs). Calling one with an int
returns a float; calling it with a numpy array of steps returns an array.

Besides the classic constant / linear / cosine / piecewise-linear / step shapes, three
shapes come from the flexible-entropy-control work (arXiv 2602.09782), where they were
clip-bound schedules; here they are *setpoints* for the PI controller:

- `IncreaseThenDecrease` (ID): rise to a peak at ``peak_fraction`` of the run, then fall.
- `DecreaseIncreaseDecrease` (DID): fall, rise, fall.
- `OscillatoryDecay` (OD): oscillate between a fixed floor (0.2·start by default, the
  paper's H_min) and a ceiling that decays linearly from ``start`` to the floor.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .validation import need

__all__ = [
    "SCHEDULES",
    "SETPOINT_SHAPES",
    "SHAPED_ENTROPIC_METHODS",
    "AutoTarget",
    "Constant",
    "Cosine",
    "DecreaseIncreaseDecrease",
    "IncreaseThenDecrease",
    "Linear",
    "OscillatoryDecay",
    "PiecewiseLinear",
    "Schedule",
    "Step",
    "auto_target",
    "schedule_from_dict",
    "shaped_setpoints",
]


def _entropy(name: str, value: float) -> None:
    need(math.isfinite(value) and value >= 0, name, "a finite entropy >= 0 nats", value)


def _steps(name: str, value: int) -> None:
    need(int(value) == value and value >= 1, name, "an integer >= 1", value)


def _progress(step, total: int):
    """step/total clipped to [0, 1]; works on ints and arrays."""
    return np.clip(np.asarray(step, dtype=float) / total, 0.0, 1.0)


def _out(x):
    return float(x) if np.ndim(x) == 0 else x


class Schedule(abc.ABC):
    """Base class: subclasses implement ``_value(step_array) -> array``."""

    kind: str = ""

    def __call__(self, step):
        return _out(self._value(np.asarray(step, dtype=float)))

    @abc.abstractmethod
    def _value(self, step: np.ndarray) -> np.ndarray:
        """Target (nats) at each step of a float array."""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict that `schedule_from_dict` turns back into this schedule."""
        return {"kind": self.kind, **dataclasses.asdict(self)}


@dataclasses.dataclass(frozen=True)
class Constant(Schedule):
    value: float
    kind = "constant"

    def __post_init__(self):
        _entropy("value", self.value)

    def _value(self, step):
        return np.full(step.shape, float(self.value))


@dataclasses.dataclass(frozen=True)
class Linear(Schedule):
    """start → end linearly over ``steps``, then held at ``end``."""

    start: float
    end: float
    steps: int
    kind = "linear"

    def __post_init__(self):
        _entropy("start", self.start)
        _entropy("end", self.end)
        _steps("steps", self.steps)

    def _value(self, step):
        return self.start + (self.end - self.start) * _progress(step, self.steps)


@dataclasses.dataclass(frozen=True)
class Cosine(Schedule):
    """start → end along half a cosine over ``steps``, then held at ``end``."""

    start: float
    end: float
    steps: int
    kind = "cosine"

    def __post_init__(self):
        _entropy("start", self.start)
        _entropy("end", self.end)
        _steps("steps", self.steps)

    def _value(self, step):
        p = _progress(step, self.steps)
        return self.end + (self.start - self.end) * 0.5 * (1.0 + np.cos(np.pi * p))


@dataclasses.dataclass(frozen=True)
class PiecewiseLinear(Schedule):
    """Linear interpolation through ``points`` = ((step, value), ...), held at both ends."""

    points: tuple[tuple[float, float], ...]
    kind = "piecewise_linear"

    def __post_init__(self):
        pts = tuple((float(s), float(v)) for s, v in self.points)
        need(len(pts) > 0, "points", "at least one (step, value) pair", self.points)
        steps = [s for s, _ in pts]
        increasing = all(b > a for a, b in zip(steps, steps[1:], strict=False))
        need(increasing, "points", "at strictly increasing steps", steps)
        for _, v in pts:
            _entropy("points value", v)
        object.__setattr__(self, "points", pts)

    def _value(self, step):
        xs, ys = zip(*self.points, strict=True)
        return np.interp(step, xs, ys)


@dataclasses.dataclass(frozen=True)
class Step(Schedule):
    """Piecewise constant: ``values[i]`` from ``boundaries[i-1]`` (inclusive) on.

    ``values`` has one more entry than ``boundaries``: Step((100,), (0.5, 0.1)) is 0.5 for
    steps 0–99 and 0.1 from step 100.
    """

    boundaries: tuple[int, ...]
    values: tuple[float, ...]
    kind = "step"

    def __post_init__(self):
        b = tuple(int(x) for x in self.boundaries)
        v = tuple(float(x) for x in self.values)
        need(len(v) == len(b) + 1, "values", f"len(boundaries) + 1 = {len(b) + 1} entries", v)
        need(all(y > x for x, y in zip(b, b[1:], strict=False)), "boundaries", "strictly increasing", b)
        for x in v:
            _entropy("values entry", x)
        object.__setattr__(self, "boundaries", b)
        object.__setattr__(self, "values", v)

    def _value(self, step):
        idx = np.searchsorted(np.asarray(self.boundaries, dtype=float), step, side="right")
        return np.asarray(self.values)[idx]


@dataclasses.dataclass(frozen=True)
class IncreaseThenDecrease(Schedule):
    """start → peak (linearly, until ``peak_fraction``·total_steps) → end (at total_steps)."""

    start: float
    peak: float
    end: float
    total_steps: int
    peak_fraction: float = 0.5
    kind = "increase_then_decrease"

    def __post_init__(self):
        for name in ("start", "peak", "end"):
            _entropy(name, getattr(self, name))
        _steps("total_steps", self.total_steps)
        need(0 < self.peak_fraction < 1, "peak_fraction", "in (0, 1)", self.peak_fraction)
        need(self.peak >= max(self.start, self.end), "peak", f">= start and end ({self.start}, {self.end})", self.peak)

    def _value(self, step):
        t = self.total_steps
        return np.interp(step, [0.0, self.peak_fraction * t, t], [self.start, self.peak, self.end])


@dataclasses.dataclass(frozen=True)
class DecreaseIncreaseDecrease(Schedule):
    """start → trough (at fractions[0]) → peak (at fractions[1]) → end (at total_steps)."""

    start: float
    trough: float
    peak: float
    end: float
    total_steps: int
    fractions: tuple[float, float] = (1 / 3, 2 / 3)
    kind = "decrease_increase_decrease"

    def __post_init__(self):
        for name in ("start", "trough", "peak", "end"):
            _entropy(name, getattr(self, name))
        _steps("total_steps", self.total_steps)
        f = tuple(float(x) for x in self.fractions)
        need(len(f) == 2 and 0 < f[0] < f[1] < 1, "fractions", "(a, b) with 0 < a < b < 1", self.fractions)
        object.__setattr__(self, "fractions", f)
        if not (self.trough <= min(self.start, self.peak) and self.peak >= self.end):
            raise ValueError(
                "need trough <= start, trough <= peak and peak >= end, got "
                f"start={self.start}, trough={self.trough}, peak={self.peak}, end={self.end}"
            )

    def _value(self, step):
        t = self.total_steps
        a, b = self.fractions
        return np.interp(step, [0.0, a * t, b * t, t], [self.start, self.trough, self.peak, self.end])


@dataclasses.dataclass(frozen=True)
class OscillatoryDecay(Schedule):
    """Oscillate between a floor and a linearly decaying ceiling.

    target(t) = floor + (ceiling(t) − floor)·(1 + cos(2πt/period))/2,
    ceiling(t) = floor + (start − floor)·(1 − t/total_steps), floor = floor_ratio·start.
    Starts at ``start``, ends at the floor.
    """

    start: float
    total_steps: int
    period: int
    floor_ratio: float = 0.2
    kind = "oscillatory_decay"

    def __post_init__(self):
        _entropy("start", self.start)
        _steps("total_steps", self.total_steps)
        _steps("period", self.period)
        need(0 <= self.floor_ratio < 1, "floor_ratio", "in [0, 1)", self.floor_ratio)

    def _value(self, step):
        floor = self.floor_ratio * self.start
        ceiling = floor + (self.start - floor) * (1.0 - _progress(step, self.total_steps))
        return floor + (ceiling - floor) * 0.5 * (1.0 + np.cos(2.0 * np.pi * step / self.period))


SCHEDULES: dict[str, type[Schedule]] = {
    cls.kind: cls
    for cls in (
        Constant,
        Linear,
        Cosine,
        PiecewiseLinear,
        Step,
        IncreaseThenDecrease,
        DecreaseIncreaseDecrease,
        OscillatoryDecay,
    )
}


SETPOINT_SHAPES = ("rise_then_fall", "fall_rise_fall", "oscillating_decay")
"""The time-varying setpoint shapes of `shaped_setpoints`."""

SHAPED_ENTROPIC_METHODS: dict[str, str] = {
    "entropic_pi_id": "rise_then_fall",
    "entropic_pi_did": "fall_rise_fall",
    "entropic_pi_od": "oscillating_decay",
}
"""Comparison method label → the setpoint shape its EntroPIC PI controller tracks. The labels keep the
flexible-entropy-control names (ID = increase-then-decrease, DID = decrease-increase-decrease,
OD = oscillatory decay) because configs use them."""


def shaped_setpoints(target: float, steps: int) -> dict[str, dict[str, Any]]:
    """Three time-varying setpoints around ``target`` (nats), as `schedule_from_dict` tables over ``steps``.

    - ``rise_then_fall``: from target up to 1.5·target at mid-run, down to target/2 at the end;
    - ``fall_rise_fall``: down to target/2 at a third, up to 1.3·target at two thirds, down to target/2;
    - ``oscillating_decay``: oscillates (period steps/4) under a ceiling decaying from 1.5·target
      to the floor target/2.

    They are the shapes of the flexible-entropy-control clip-bound schedules (arXiv 2602.09782),
    turned into setpoints an entropy controller can track.
    """
    _entropy("target", target)
    _steps("steps", steps)
    return {
        "rise_then_fall": {
            "kind": "increase_then_decrease",
            "start": target,
            "peak": 1.5 * target,
            "end": 0.5 * target,
            "total_steps": steps,
        },
        "fall_rise_fall": {
            "kind": "decrease_increase_decrease",
            "start": target,
            "trough": 0.5 * target,
            "peak": 1.3 * target,
            "end": 0.5 * target,
            "total_steps": steps,
        },
        "oscillating_decay": {
            "kind": "oscillatory_decay",
            "start": 1.5 * target,
            "total_steps": steps,
            "period": max(steps // 4, 1),
            "floor_ratio": 1 / 3,
        },
    }


def schedule_from_dict(spec: dict[str, Any] | float | Sequence) -> Schedule:
    """Build a schedule from ``{"kind": name, **fields}``; a bare number is `Constant`."""
    if isinstance(spec, int | float):
        return Constant(float(spec))
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ValueError(f"a schedule must be a number or a table with a 'kind' key, got {spec!r}")
    fields = dict(spec)
    kind = fields.pop("kind")
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule kind {kind!r}; choose from {sorted(SCHEDULES)}")
    cls = SCHEDULES[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(fields) - names
    if unknown:
        raise ValueError(f"schedule {kind!r} has no field(s) {sorted(unknown)}; fields: {sorted(names)}")
    for key in ("points",):
        if key in fields:
            fields[key] = tuple(tuple(p) for p in fields[key])
    for key in ("boundaries", "values", "fractions"):
        if key in fields:
            fields[key] = tuple(fields[key])
    try:
        return cls(**fields)
    except TypeError as exc:
        raise ValueError(f"schedule {kind!r}: {exc}") from None


class AutoTarget:
    """A target relative to the entropy the run starts from: H*(t) = f·H₀·s(t).

    H₀ is the mean measured entropy over the first ``window`` steps (per loop for array
    measurements); during the window the target is f times the running mean. ``shape`` (one of
    `SETPOINT_SHAPES`, over ``total_steps``) multiplies it by the shape of `shaped_setpoints` for a
    unit target, e.g. ``rise_then_fall`` goes 1 → 1.5 → 0.5 times f·H₀. This chooses a feasible,
    stable target (one the run demonstrably has at its start), not a provably optimal one.

    The controller calls ``observe(h, step)`` before ``value(step)``; the state round-trips as JSON.
    """

    def __init__(
        self, relative: float = 1.0, window: int = 10, shape: str | None = None, total_steps: int | None = None
    ) -> None:
        need(
            isinstance(relative, int | float) and 0 < relative < math.inf,
            "target.relative",
            "a number > 0",
            relative,
        )
        need(isinstance(window, int) and window >= 1, "target.window", "an integer >= 1 (steps)", window)
        need(shape is None or shape in SETPOINT_SHAPES, "target.shape", f"one of {SETPOINT_SHAPES} or None", shape)
        need(
            shape is None or (isinstance(total_steps, int) and total_steps >= 1),
            "target.total_steps",
            "an integer >= 1 with a shape",
            total_steps,
        )
        self.relative, self.window, self.shape, self.total_steps = float(relative), window, shape, total_steps
        self._unit = None if shape is None else schedule_from_dict(shaped_setpoints(1.0, total_steps)[shape])
        self.reset()

    def reset(self) -> None:
        self._sum, self._count = np.zeros(()), 0

    def observe(self, measured: Any, step: int) -> None:
        """Accumulate H₀ from the measurements of steps 0..window−1."""
        if step < self.window:
            self._sum = self._sum + np.asarray(measured, dtype=float)
            self._count += 1

    @property
    def initial(self) -> float | np.ndarray:
        """H₀ so far (the running mean during the window), NaN before any measurement."""
        return _out(self._sum / self._count) if self._count else math.nan

    def value(self, step: int) -> float | np.ndarray:
        """H*(step) per loop."""
        scale = 1.0 if self._unit is None else self._unit(step)
        return _out(self.relative * np.asarray(self.initial) * scale)

    def __call__(self, step: int) -> float:
        """The target averaged over loops (what is logged)."""
        return float(np.mean(self.value(step)))

    def to_dict(self) -> dict[str, Any]:
        return {"relative": self.relative, "window": self.window, "shape": self.shape, "total_steps": self.total_steps}

    def state_dict(self) -> dict[str, Any]:
        return {"sum": self._sum.tolist(), "count": self._count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._sum, self._count = np.asarray(state["sum"], dtype=float), int(state["count"])

    def __repr__(self) -> str:
        return f"AutoTarget({self.to_dict()})"


def auto_target(spec: Any) -> AutoTarget | None:
    """`AutoTarget` for ``"initial"`` or a table with a ``relative`` key (window, shape, total_steps);
    None for anything else (a number or a `schedule_from_dict` table)."""
    if isinstance(spec, AutoTarget):
        return spec
    if spec == "initial":
        return AutoTarget()
    if isinstance(spec, dict) and "relative" in spec:
        unknown = set(spec) - {"relative", "window", "shape", "total_steps"}
        if unknown:
            raise ValueError(f"target has no field(s) {sorted(unknown)}; fields: relative, window, shape, total_steps")
        return AutoTarget(**spec)
    return None
