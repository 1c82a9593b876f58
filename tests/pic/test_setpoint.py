"""Setpoint schedules: shapes, endpoints, validation, dict round trip.

Run: python -m pytest tests/pic/test_setpoint.py
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from pic.setpoint import (
    SCHEDULES,
    SETPOINT_SHAPES,
    SHAPED_ENTROPIC_METHODS,
    Constant,
    Cosine,
    DecreaseIncreaseDecrease,
    IncreaseThenDecrease,
    Linear,
    OscillatoryDecay,
    PiecewiseLinear,
    Step,
    schedule_from_dict,
    shaped_setpoints,
)

EXAMPLES = [
    Constant(0.1),
    Linear(0.5, 0.1, 100),
    Cosine(0.5, 0.1, 100),
    PiecewiseLinear(((0, 0.5), (40, 0.2), (80, 0.3))),
    Step((30, 60), (0.5, 0.3, 0.1)),
    IncreaseThenDecrease(0.1, 0.5, 0.2, 100),
    DecreaseIncreaseDecrease(0.5, 0.1, 0.4, 0.2, 90),
    OscillatoryDecay(0.5, 100, 20),
]


def test_every_kind_has_an_example():
    assert {s.kind for s in EXAMPLES} == set(SCHEDULES)


@pytest.mark.parametrize("sched", EXAMPLES, ids=lambda s: s.kind)
def test_dict_round_trip(sched):
    assert schedule_from_dict(sched.to_dict()) == sched


@pytest.mark.parametrize("sched", EXAMPLES, ids=lambda s: s.kind)
def test_scalar_and_array_calls_agree(sched):
    steps = np.arange(0, 130)
    arr = sched(steps)
    assert isinstance(sched(7), float)
    assert np.array_equal(arr, [sched(int(t)) for t in steps])
    assert np.all(arr >= 0)


def test_linear_and_cosine_endpoints_and_midpoint():
    assert Linear(1.0, 0.0, 10)(5) == pytest.approx(0.5)
    assert Cosine(1.0, 0.0, 10)(5) == pytest.approx(0.5)
    assert Cosine(1.0, 0.0, 10)(2) > Linear(1.0, 0.0, 10)(2)  # cosine is slow at the start
    assert Linear(1.0, 0.0, 10)(1000) == 0.0


def test_step_boundaries_are_inclusive_on_the_left():
    s = Step((100,), (0.5, 0.1))
    assert (s(99), s(100)) == (0.5, 0.1)


def test_increase_then_decrease_shape():
    s = IncreaseThenDecrease(0.1, 0.5, 0.2, 100, peak_fraction=0.4)
    assert (s(0), s(40), s(100)) == pytest.approx((0.1, 0.5, 0.2))
    assert s(20) == pytest.approx(0.3)


def test_decrease_increase_decrease_shape():
    s = DecreaseIncreaseDecrease(0.5, 0.1, 0.4, 0.2, 90)
    v = s(np.arange(91))
    assert v[0] == 0.5 and v[30] == pytest.approx(0.1) and v[60] == pytest.approx(0.4) and v[90] == 0.2
    assert np.all(np.diff(v[:31]) <= 0) and np.all(np.diff(v[30:61]) >= 0) and np.all(np.diff(v[60:]) <= 0)


def test_oscillatory_decay_envelope():
    s = OscillatoryDecay(0.5, 200, 20, floor_ratio=0.2)
    v = s(np.arange(201))
    assert v[0] == pytest.approx(0.5)
    assert v.min() >= 0.1 - 1e-12
    assert v[200] == pytest.approx(0.1)
    peaks = v[0:200:20]  # cos = 1 at multiples of the period: the ceiling
    assert np.all(np.diff(peaks) < 0)


@given(start=st.floats(0.0, 3.0), end=st.floats(0.0, 3.0), steps=st.integers(1, 500), t=st.integers(0, 1000))
def test_linear_and_cosine_stay_between_endpoints(start, end, steps, t):
    for sched in (Linear(start, end, steps), Cosine(start, end, steps)):
        v = sched(t)
        assert min(start, end) - 1e-12 <= v <= max(start, end) + 1e-12


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"kind": "spiral"}, "unknown schedule kind"),
        ({"kind": "linear", "start": 1, "end": 0}, "linear"),
        ({"kind": "linear", "start": 1, "end": 0, "steps": 10, "speed": 2}, "has no field"),
        ({"kind": "linear", "start": -1, "end": 0, "steps": 10}, "start must be a finite entropy"),
        ({"kind": "cosine", "start": 1, "end": 0, "steps": 0}, "steps must be an integer >= 1"),
        ({"kind": "step", "boundaries": [10], "values": [1.0]}, "len\\(boundaries\\) \\+ 1"),
        ({"kind": "piecewise_linear", "points": [[10, 0.1], [5, 0.2]]}, "strictly increasing"),
        ({"kind": "increase_then_decrease", "start": 0.5, "peak": 0.1, "end": 0.2, "total_steps": 10}, "peak"),
        ({"start": 1}, "'kind' key"),
    ],
)
def test_bad_specs_are_refused_with_the_field(spec, match):
    with pytest.raises(ValueError, match=match):
        schedule_from_dict(spec)


def test_a_bare_number_is_constant():
    assert schedule_from_dict(0.3) == Constant(0.3)
    assert math.isclose(schedule_from_dict(1)(99), 1.0)


# ------------------------------------------------------------ shaped setpoints
def test_shaped_setpoints_have_their_shapes():
    """rise-then-fall, fall-rise-fall and oscillating decay around H* = 0.2 over 120 steps, by hand."""
    tables = shaped_setpoints(0.2, 120)
    assert tuple(tables) == SETPOINT_SHAPES
    assert set(SHAPED_ENTROPIC_METHODS.values()) == set(SETPOINT_SHAPES)
    rise, dip, wave = (schedule_from_dict(tables[s]) for s in SETPOINT_SHAPES)
    t = np.arange(121)
    r = rise(t)
    assert r[0] == pytest.approx(0.2) and r[60] == pytest.approx(0.3) and r[120] == pytest.approx(0.1)
    assert np.all(np.diff(r[:61]) > 0) and np.all(np.diff(r[60:]) < 0)
    d = dip(t)
    assert (d[0], d[40], d[80], d[120]) == pytest.approx((0.2, 0.1, 0.26, 0.1))
    assert np.all(np.diff(d[:41]) < 0) and np.all(np.diff(d[40:81]) > 0) and np.all(np.diff(d[80:]) < 0)
    w = wave(t)
    floor = 0.1  # 1.5·H*/3
    ceiling = floor + (0.3 - floor) * (1 - t / 120)
    assert_allclose(w, floor + (ceiling - floor) * 0.5 * (1 + np.cos(2 * np.pi * t / 30)), atol=1e-12)
    with pytest.raises(ValueError, match=r"^target must be a finite entropy >= 0 nats, got -0\.1$"):
        shaped_setpoints(-0.1, 10)
