"""Closed-loop analysis of the linear plant, checked against numpy eigenvalues and simulation.

Run: python -m pytest tests/pic/test_stability.py
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from strategies import drift, drifts, gain, plant_gain, stable_pi_gains, unstable_pi_gains

from pic import LinearPlant, PIController, run_loop
from pic.stability import (
    char_poly_coeffs,
    closed_loop_matrix,
    closed_loop_poles,
    is_stable,
    jury_conditions,
    settling_steps,
    simulate_linear,
    spectral_radius,
    stable_region,
    steady_state_error,
)
from pic.tuning import gain_margin, gains_for_settling, place_poles


def numpy_radius(kp, ki, k):
    """Independent reference: eigenvalues of the loop that feeds back."""
    if ki == 0:
        return abs(1 - k * kp)
    return max(abs(np.linalg.eigvals(closed_loop_matrix(kp, ki, k))))


@given(kp=gain, ki=st.floats(0.0, 20.0), k=plant_gain)
def test_is_stable_agrees_with_numpy_eigenvalues(kp, ki, k):
    rho = numpy_radius(kp, ki, k)
    assume(abs(rho - 1.0) > 1e-7)  # the boundary itself is a measure-zero tie
    if ki == 0 and kp == 0:
        assert not is_stable(kp, ki, k)  # a pole at exactly 1: not asymptotically stable
        return
    assert bool(is_stable(kp, ki, k)) == (rho < 1)


@given(kp=gain, ki=st.floats(0.0, 20.0), k=plant_gain)
def test_spectral_radius_matches_eigvals(kp, ki, k):
    assert spectral_radius(kp, ki, k) == pytest.approx(numpy_radius(kp, ki, k), rel=1e-6, abs=1e-9)


@given(kp=gain, ki=gain, k=plant_gain)
def test_char_poly_is_det_of_the_matrix(kp, ki, k):
    a = closed_loop_matrix(kp, ki, k)
    a1, a0 = char_poly_coeffs(kp, ki, k)
    assert a1 == pytest.approx(-np.trace(a), abs=1e-9)
    assert a0 == pytest.approx(np.linalg.det(a), rel=1e-9, abs=1e-9)


def test_jury_conditions_are_the_documented_ones():
    # one point violating exactly one condition each
    k = 1.0
    assert not jury_conditions(1.0, 0.0, k)["ki > 0"]
    assert not jury_conditions(0.5, 0.6, k)["kp > ki"]
    assert not jury_conditions(2.5, 0.4, k)["k(kp - ki) < 2"]
    c = jury_conditions(2.2, 0.3, k)  # k(kp−ki) = 1.9 < 2 but k(2kp − ki) = 4.1 > 4
    assert c["k(kp - ki) < 2"] and not c["k(2kp - ki) < 4"]


def test_p_condition_is_zero_to_two():
    k = 0.5
    kp = np.array([0.0, 0.1, 3.9, 4.0, 4.1])
    assert is_stable(kp, 0.0, k).tolist() == [False, True, True, False, False]


def test_poles_for_p_control_are_one_minus_k_kp():
    assert_allclose(closed_loop_poles(1.5, 0.0, 0.4), [0.4, 0.4])


@given(k=plant_gain, data=st.data(), b=drift, e0=st.floats(-1, 1))
def test_stable_pi_loop_converges_to_zero_error(k, data, b, e0):
    kp, ki = data.draw(stable_pi_gains(k))
    assume(spectral_radius(kp, ki, k) < 0.9)
    # the PIController itself, driving the linear plant, unsaturated
    plant = LinearPlant(k=k, b=b, h0=3.0 + e0)
    hist = run_loop(plant, PIController(kp, ki, 3.0, output_limits=None), 600)
    assert abs(hist.error[-1]) < 1e-8
    assert hist.integral[-1] == pytest.approx(b / (k * ki), rel=1e-6, abs=1e-9)


@given(k=plant_gain, kk=st.floats(0.15, 1.85), b=drift, e0=st.floats(-1, 1))
def test_stable_p_loop_settles_at_b_over_k_kp(k, kk, b, e0):
    kp = kk / k
    assume(spectral_radius(kp, 0.0, k) < 0.9)
    # target 3 nats keeps H = target + b/(k·kp) >= 0 (the plant clips H at 0)
    plant = LinearPlant(k=k, b=b, h0=3.0 + e0)
    hist = run_loop(plant, PIController(kp, 0.0, 3.0, output_limits=None), 600)
    assert hist.error[-1] == pytest.approx(float(steady_state_error(kp, 0.0, k, b)), abs=1e-8)
    assert float(steady_state_error(kp, 0.0, k, b)) == pytest.approx(b / (k * kp))


@given(k=plant_gain, kp=gain, ki=st.floats(0.0, 20.0))
def test_unstable_gains_diverge(k, kp, ki):
    rho = spectral_radius(kp, ki, k)
    assume(rho > 1.05)
    traj = simulate_linear(kp, ki, k, e0=1.0, steps=2000)
    assert not np.all(np.abs(traj[-50:]) < 1.0)


def test_simulate_linear_equals_the_controller_loop_with_saturation():
    k, b = 0.3, 0.05
    traj = simulate_linear(2.0, 0.2, k, b=b, e0=2.0, steps=100, alpha_limits=(-1, 1))
    hist = run_loop(LinearPlant(k=k, b=b, h0=3.0), PIController(2.0, 0.2, 1.0), 101)
    assert_allclose(hist.error, traj, atol=1e-12)


def test_steady_state_error_is_nan_when_unstable():
    assert np.isnan(steady_state_error(10.0, 0.0, 1.0, 0.1))
    assert steady_state_error(1.0, 0.1, 1.0, 0.1) == 0.0


def test_settling_steps_of_a_first_order_loop():
    # e_t = (1 − k·kp)^t: with k·kp = 0.5 the first t with 0.5^t ≤ 0.02 is 6
    assert settling_steps(1.0, 0.0, 0.5, tol=0.02) == 6
    assert settling_steps(1.0, 0.0, 1.0) == 1  # dead-beat
    assert np.isinf(settling_steps(5.0, 0.0, 1.0))


def test_stable_region_grid_orientation():
    kp = np.linspace(0, 3, 31)
    ki = np.linspace(0, 1, 11)
    reg = stable_region(kp, ki, 1.0)
    assert reg.stable.shape == (11, 31)
    for i, kiv in enumerate(ki):
        for j, kpv in enumerate(kp):
            assert reg.stable[i, j] == is_stable(kpv, kiv, 1.0)
    assert 0 < reg.fraction_stable < 1


@given(k=plant_gain, re=st.floats(0.0, 0.9), im=st.floats(0.0, 0.4))
def test_place_poles_places_them(k, re, im):
    assume(re**2 + im**2 < 0.95**2)
    try:
        kp, ki = place_poles(k, complex(re, im), complex(re, -im))
    except ValueError:
        return  # the pair needs kp <= ki; documented refusal
    poles = np.sort_complex(closed_loop_poles(kp, ki, k))
    assert_allclose(poles, np.sort_complex(np.array([complex(re, -im), complex(re, im)])), atol=1e-6)
    assert is_stable(kp, ki, k)


@pytest.mark.parametrize("steps", [5, 20, 100])
def test_gains_for_settling_settle_in_time(steps):
    kp, ki = gains_for_settling(0.3, steps, tol=0.02)
    assert settling_steps(kp, ki, 0.3, tol=0.02) <= steps


@given(k=plant_gain, data=st.data())
def test_gain_margin_is_the_stability_boundary(k, data):
    kp, ki = data.draw(stable_pi_gains(k))
    g = float(gain_margin(kp, ki, k))
    assert g > 1
    assert is_stable(kp, ki, 0.99 * g * k)
    assert not is_stable(kp, ki, 1.01 * g * k)


# ---------------------------------------------------------------- plug-in defaults and delay
def test_plugin_default_gains_are_inside_the_one_step_delay_region_with_margin():
    """The verl and TRL plug-ins apply the α of step t − 1 (delay d = 1). Their defaults
    (EntroPICParams: Kp 1, Ki 0.01) must stay stable for plant gains up to 0.45 nats per unit α
    per step even if the true gain is twice the assumed one; they lose stability just below k = 1."""
    from pic.params import EntroPICParams

    p = EntroPICParams()
    ks = np.logspace(-5, np.log10(0.45), 200)
    assert np.all(is_stable(p.kp, p.ki, ks, delay=1))
    assert np.all(is_stable(p.kp, p.ki, 2 * ks, delay=1))
    assert not is_stable(p.kp, p.ki, 1.0, delay=1)  # K_p = 1: the P bound of the delayed loop
    assert is_stable(p.kp, p.ki, 1.5)  # ... which the delay-free region would still accept


@given(k=plant_gain, b=drifts(), pair=st.data())
def test_linear_loop_outside_diverges_and_the_inside_point_on_the_same_ray_converges(k, b, pair):
    (kp, ki), (kp_in, ki_in) = pair.draw(unstable_pi_gains(k))
    assert not is_stable(kp, ki, k) and is_stable(kp_in, ki_in, k)
    out = simulate_linear(kp, ki, k, b=b, e0=0.1, steps=400)
    inside = simulate_linear(kp_in, ki_in, k, b=b, e0=0.1, steps=3000)
    assert not np.abs(out[-1]) < 1.0  # grew (or overflowed) from 0.1
    assert abs(inside[-1] - (b / (k * kp_in) if ki_in == 0 else 0.0)) < 1e-6


@given(k=plant_gain, up=drifts("up"), down=drifts("down"))
def test_drift_strategies_have_the_requested_sign(k, up, down):
    assert up > 0 > down
