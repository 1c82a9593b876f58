"""PIController: the control law, its order of operations, limits, anti-windup, state.

Run: python -m pytest tests/pic/test_controller.py
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from pic import LinearPlant, PIController, pi_step, run_loop
from pic.setpoint import Linear


def reference_pi(measurements, kp, ki, target, lo=-1.0, hi=1.0):
    """The official law written out by hand: α from the integral of *past* errors."""
    s, out = 0.0, []
    for h in measurements:
        e = h - target
        out.append(min(max(kp * e + ki * s, lo), hi))
        s += e
    return out, s


def test_matches_the_official_law_step_by_step():
    hs = [0.5, 0.3, 0.12, 0.05, 0.02, 0.2, 0.9, 2.0]
    ctrl = PIController(1.0, 0.01, 0.1)
    got = [ctrl.update(h) for h in hs]
    want, s = reference_pi(hs, 1.0, 0.01, 0.1)
    assert got == want  # exact: same float operations in the same order
    assert ctrl.integral == pytest.approx(s, abs=0, rel=0)


def test_first_alpha_uses_no_integral():
    # the integral is updated *after* α: the first output is the P term alone
    ctrl = PIController(2.0, 100.0, 0.1, output_limits=None)
    assert ctrl.update(0.4) == pytest.approx(2.0 * 0.3)
    assert ctrl.integral == pytest.approx(0.3)
    assert ctrl.update(0.4) == pytest.approx(2.0 * 0.3 + 100.0 * 0.3)


def test_sign_convention_high_entropy_gives_positive_alpha():
    ctrl = PIController(1.0, 0.01, 0.1)
    assert ctrl.update(0.5) > 0  # too high → α > 0 → positive confident tokens weigh more
    ctrl.reset()
    assert ctrl.update(0.01) < 0  # too low → α < 0 → negative confident tokens weigh more


def test_closes_the_loop_on_the_linear_plant():
    # with k > 0 the sign convention makes the loop converge; a flipped sign diverges
    plant = LinearPlant(k=0.3, b=0.02, h0=1.0)
    hist = run_loop(plant, PIController(1.0, 0.1, 0.2), 400)
    assert abs(hist.entropy[-1] - 0.2) < 1e-6


def test_output_is_clipped_but_integral_is_not():
    ctrl = PIController(1.0, 1.0, 0.0)
    for _ in range(5):
        a = ctrl.update(3.0)
    assert a == 1.0
    assert ctrl.integral == pytest.approx(15.0)  # official: no anti-windup


def test_p_control_is_ki_zero():
    ctrl = PIController(0.7, 0.0, 0.1, output_limits=None)
    for h in (0.5, 0.2, 0.9):
        assert ctrl.update(h) == pytest.approx(0.7 * (h - 0.1))


def test_schedule_target_follows_the_step_count():
    sched = Linear(1.0, 0.0, 10)
    ctrl = PIController(1.0, 0.0, sched, output_limits=None)
    outs = [ctrl.update(0.5) for _ in range(12)]
    assert outs == pytest.approx([0.5 - sched(t) for t in range(12)])
    assert ctrl.target_at() == 0.0 and ctrl.step == 12


def test_clamp_freezes_integral_while_pushing_into_saturation():
    ctrl = PIController(1.0, 0.5, 0.0, anti_windup="clamp")
    ctrl.update(3.0)  # u = 3 > 1 and e > 0: frozen
    assert ctrl.integral == 0.0
    ctrl.update(-0.5)  # e < 0 pulls out of saturation: integrates
    assert ctrl.integral == -0.5


def test_back_calculation_tracks_the_limit():
    ctrl = PIController(1.0, 0.5, 0.0, anti_windup="back_calculation", tracking_gain=1.0)
    ctrl.update(3.0)
    # I = ki·S moves by ki·e + (α − u) = 1.5 + (1 − 3) = −0.5 → S = −1
    assert ctrl.integral == pytest.approx(-1.0)


def test_integral_limit_bounds_s():
    ctrl = PIController(0.0, 0.1, 0.0, integral_limit=2.0, output_limits=None)
    for _ in range(10):
        ctrl.update(1.0)
    assert ctrl.integral == 2.0
    for _ in range(10):
        ctrl.update(-1.0)
    assert ctrl.integral == -2.0


def test_array_gains_broadcast_against_the_measurement():
    kp = np.array([[0.5], [1.0]])
    ki = np.array([0.0, 0.1, 0.2])
    ctrl = PIController(kp, ki, 0.1, output_limits=None)
    a1 = ctrl.update(0.3)
    assert a1.shape == (2, 3)
    assert_allclose(a1, kp * 0.2 + ki * 0.0)
    a2 = ctrl.update(np.full((2, 3), 0.5))
    assert_allclose(a2, kp * 0.4 + ki * 0.2)
    # each element equals a scalar controller with those gains
    for i in range(2):
        for j in range(3):
            c = PIController(float(kp[i, 0]), float(ki[j]), 0.1, output_limits=None)
            c.update(0.3)
            assert c.update(0.5) == pytest.approx(a2[i, j])


def test_nonfinite_raises_by_default():
    ctrl = PIController(1.0, 0.01, 0.1)
    with pytest.raises(ValueError, match="measured entropy must be finite"):
        ctrl.update(float("nan"))


def test_nonfinite_hold_keeps_alpha_and_state():
    ctrl = PIController(1.0, 0.01, 0.1, on_nonfinite="hold")
    a = ctrl.update(0.4)
    before = ctrl.state_dict()
    assert ctrl.update(float("inf")) == a
    assert ctrl.state_dict() == before


def test_nonfinite_hold_is_elementwise():
    ctrl = PIController(np.array([1.0, 2.0]), 0.1, 0.1, on_nonfinite="hold", output_limits=None)
    ctrl.update(np.array([0.3, 0.3]))
    a = ctrl.update(np.array([np.nan, 0.5]))
    assert a[0] == pytest.approx(0.2) and a[1] == pytest.approx(2 * 0.4 + 0.1 * 0.2)
    assert_allclose(ctrl.integral, [0.2, 0.6])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kp": -1.0}, "kp must be finite and >= 0"),
        ({"ki": np.array([0.1, -0.1])}, "ki must be finite and >= 0"),
        ({"kp": float("nan")}, "kp must be finite"),
        ({"target": -0.1}, "target must be a finite entropy >= 0"),
        ({"output_limits": (1.0, -1.0)}, r"output_limits must be \(lo, hi\) with lo < hi"),
        ({"output_limits": (0.5, 0.5)}, "lo < hi"),
        ({"anti_windup": "reset"}, "anti_windup must be one of"),
        ({"integral_limit": 0.0}, "integral_limit must be > 0"),
        ({"tracking_gain": 1.5}, r"tracking_gain must be in \(0, 1\]"),
        ({"on_nonfinite": "ignore"}, "on_nonfinite must be one of"),
        ({"kp": np.ones(3), "ki": np.ones(4)}, "must broadcast together"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, match):
    args = {"kp": 1.0, "ki": 0.01, "target": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        PIController(args.pop("kp"), args.pop("ki"), args.pop("target"), **args)


def test_state_dict_is_json_and_round_trips_exactly():
    ctrl = PIController(np.array([1.0, 3.0]), 0.013, 0.1)
    for h in (0.7, 0.31, 0.123456789):
        ctrl.update(np.array([h, h / 3]))
    state = json.loads(json.dumps(ctrl.state_dict()))
    other = PIController(np.array([1.0, 3.0]), 0.013, 0.1)
    other.load_state_dict(state)
    assert_array_equal(other.integral, ctrl.integral)
    assert_array_equal(other.alpha, ctrl.alpha)
    assert other.step == ctrl.step


def test_load_state_dict_rejects_bad_state():
    ctrl = PIController(np.ones(3), 0.1, 0.1)
    with pytest.raises(ValueError, match="missing keys"):
        ctrl.load_state_dict({"step": 1})
    with pytest.raises(ValueError, match="shape"):
        ctrl.load_state_dict({"step": 1, "integral": [1.0, 2.0], "alpha": 0.0, "error": 0.0})


def test_repr_is_readable():
    r = repr(PIController(1.0, 0.01, 0.1, integral_limit=20.0))
    assert r.startswith("PIController(kp=1, ki=0.01, target=0.1, output_limits=(-1, 1)")
    assert "integral_limit=20" in r


def test_reset_clears_everything():
    ctrl = PIController(1.0, 0.01, 0.1)
    ctrl.update(1.0)
    ctrl.reset()
    assert (ctrl.integral, ctrl.alpha, ctrl.step) == (0.0, 0.0, 0)


def test_p_and_i_terms_reported():
    ctrl = PIController(2.0, 0.5, 0.0, output_limits=None)
    ctrl.update(1.0)
    a = ctrl.update(0.5)
    assert ctrl.p_term == pytest.approx(1.0)
    assert ctrl.i_term == pytest.approx(0.5)
    assert a == pytest.approx(ctrl.p_term + ctrl.i_term)


measurement_sequences = st.lists(st.floats(0.0, 3.0, allow_nan=False), min_size=2, max_size=60)


@given(hs=measurement_sequences, split=st.integers(0, 60), mode=st.sampled_from(["none", "clamp", "back_calculation"]))
def test_state_round_trip_resumes_the_identical_alpha_sequence(hs, split, mode):
    split = min(split, len(hs))
    full = PIController(1.3, 0.07, 0.4, anti_windup=mode, integral_limit=50.0)
    want = [full.update(h) for h in hs]
    first = PIController(1.3, 0.07, 0.4, anti_windup=mode, integral_limit=50.0)
    got = [first.update(h) for h in hs[:split]]
    resumed = PIController(1.3, 0.07, 0.4, anti_windup=mode, integral_limit=50.0)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    got += [resumed.update(h) for h in hs[split:]]
    assert got == want


@given(
    hs=st.lists(st.floats(-5.0, 5.0, allow_nan=False), min_size=1, max_size=80),
    kp=st.floats(0.0, 5.0),
    ki=st.floats(0.0, 2.0),
    limit=st.floats(0.05, 2.0),
)
def test_clamp_never_exceeds_limit_nor_winds_up(hs, kp, ki, limit):
    ctrl = PIController(kp, ki, 0.0, output_limits=(-limit, limit), anti_windup="clamp")
    for h in hs:
        s_before = ctrl.integral
        u = kp * h + ki * s_before
        a = ctrl.update(h)
        assert abs(a) <= limit
        if u > limit:  # saturated high: S must not grow
            assert ctrl.integral <= s_before
        if u < -limit:  # saturated low: S must not shrink
            assert ctrl.integral >= s_before


@given(x=st.floats(-3, 3), s=st.floats(-50, 50), kp=st.floats(0, 4), ki=st.floats(0, 1))
def test_pi_step_matches_the_formula(x, s, kp, ki):
    alpha, nxt = pi_step(np.float64(x), np.float64(s), kp, ki)
    assert float(alpha) == min(max(kp * x + ki * s, -1.0), 1.0)
    assert float(nxt) == s + x
    assert math.isfinite(float(alpha))


@pytest.mark.parametrize("target", [float("nan"), float("inf"), -1e-9, 100.0])
def test_target_outside_zero_to_max_entropy_is_one_line(target):
    """Entropy of a K-way softmax lies in [0, log K]; with max_entropy = log 10 a target of 100 is refused."""
    with pytest.raises(ValueError, match=r"target must be a finite entropy in \[0, max_entropy = 2\.303\] nats"):
        PIController(1.0, 0.01, target, max_entropy=math.log(10))


def test_target_at_max_entropy_is_accepted_and_unbounded_without_it():
    assert PIController(1.0, 0.01, math.log(10), max_entropy=math.log(10)).target == math.log(10)
    assert PIController(1.0, 0.01, 100.0).target == 100.0  # no bound known: only >= 0 is checked
    with pytest.raises(ValueError, match="target must be a finite entropy >= 0 nats"):
        PIController(1.0, 0.01, float("inf"))


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), "2.3"])
def test_bad_max_entropy_names_the_field(bad):
    with pytest.raises(ValueError, match=r"max_entropy must be a finite number > 0 \(nats\) or None"):
        PIController(1.0, 0.01, 0.1, max_entropy=bad)


def test_schedule_leaving_the_entropy_range_fails_at_the_step_that_reaches_it():
    ctrl = PIController(1.0, 0.01, Linear(1.0, 3.0, 2), max_entropy=2.0)  # 1.0, 2.0, then 3.0 > log K
    ctrl.update(1.5)
    ctrl.update(1.5)
    with pytest.raises(ValueError, match=r"target must be a finite entropy in \[0, max_entropy = 2\] nats, got 3"):
        ctrl.update(1.5)
    assert ctrl.step == 2  # the refused step changed nothing


@pytest.mark.parametrize("mode", ["none", "clamp", "back_calculation"])
def test_resume_is_exact_including_the_i_term(mode):
    """N steps, save (through JSON), load into a fresh controller, continue: the same α, p_term, i_term and
    state as an uninterrupted run at every step, including the first step after loading."""
    rng = np.random.default_rng(3)
    hs = 0.4 + 0.3 * rng.standard_normal(40)

    def make():
        return PIController(1.3, 0.07, 0.4, anti_windup=mode, output_limits=(-0.5, 0.5))

    full = make()
    want = []
    for h in hs:
        a = full.update(h)
        want.append((a, full.p_term, full.i_term))
    first, n = make(), 17
    got = []
    for h in hs[:n]:
        a = first.update(h)
        got.append((a, first.p_term, first.i_term))
    resumed = make()
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert (resumed.p_term, resumed.i_term) == got[-1][1:]  # before any new data: the last step's terms
    for h in hs[n:]:
        a = resumed.update(h)
        got.append((a, resumed.p_term, resumed.i_term))
    assert got == want
    assert resumed.state_dict() == full.state_dict()


def test_state_without_prev_integral_still_loads():
    """States saved before prev_integral existed: S − e stands in for it (exact for anti_windup "none")."""
    ctrl = PIController(2.0, 0.5, 0.0, output_limits=None)
    for h in (1.0, 0.5, 0.25):
        ctrl.update(h)
    old = {k: v for k, v in ctrl.state_dict().items() if k != "prev_integral"}
    other = PIController(2.0, 0.5, 0.0, output_limits=None)
    other.load_state_dict(old)
    assert other.i_term == pytest.approx(ctrl.i_term) == pytest.approx(0.5 * (1.0 + 0.5))
    assert other.update(0.1) == ctrl.update(0.1)
