"""pic.autotune.SelfTuningPI: identification, pole placement, bumpless gains, reachability, exact resume."""

import json

import numpy as np
import pytest

from pic.autotune import SelfTuningPI, design_poles, placed_gains
from pic.controller import PIController, ReachMonitor
from pic.robustness import is_stable_delayed
from pic.stability import closed_loop_poles


def _run(ctrl, k, b, h0, steps, seed=0, noise=0.02):
    rng = np.random.default_rng(seed)
    h, hs = h0, []
    for _ in range(steps):
        a = ctrl.update(h)
        h = h + b - k * a + rng.normal(0.0, noise * k)
        hs.append(h)
    return np.array(hs)


@pytest.mark.parametrize("k", [1e-4, 1e-3, 1e-2, 1e-1])
def test_holds_the_target_with_defaults_over_three_decades_of_k(k):
    ctrl = SelfTuningPI(0.2)
    hs = _run(ctrl, k, -0.3 * k, 0.25, 600)
    tail = hs[400:]
    assert np.sqrt(np.mean((tail - 0.2) ** 2)) < 0.075 * 0.2
    assert ctrl.k_hat == pytest.approx(k, rel=0.3)
    assert ctrl.alpha_star == pytest.approx(-0.3, abs=0.1)
    assert ctrl.excited and ctrl.target_reachable == 1.0


def test_placed_gains_put_both_delay_free_poles_at_r():
    for r, k in [(0.8, 0.01), (0.5, 0.3), (0.95, 2e-4)]:
        kp, ki = placed_gains(r, k)
        poles = closed_loop_poles(kp, ki, k)
        np.testing.assert_allclose(np.abs(poles), r, rtol=1e-6)


def test_designed_pole_keeps_margins_and_respects_settling():
    r = design_poles(20, gain_margin=2.0, delay=1)
    assert r >= np.exp(-4 / 20) - 1e-12
    kp, ki = placed_gains(r, 1.0)
    assert np.all(is_stable_delayed(kp, ki, np.geomspace(0.5, 2.0, 41), delay=1))
    # a wider gain margin can only slow the design down
    assert design_poles(20, gain_margin=4.0) >= r


def test_gain_change_is_bumpless():
    ctrl = SelfTuningPI(0.2)
    rng = np.random.default_rng(1)
    h = 0.4
    for _ in range(30):
        kp_before, e_before, action_before = ctrl.kp, ctrl.error, ctrl.integral
        ki_before = ctrl.ki
        alpha = ctrl.update(h)
        if ctrl.kp != kp_before and abs(alpha) < 1:
            # the output moved only by the new gains' response to the new data
            u_prev = kp_before * e_before + action_before - ki_before * e_before
            u_prev_new_gains = ctrl.kp * e_before + ctrl.i_term - ki_before * e_before
            assert u_prev_new_gains == pytest.approx(u_prev, abs=1e-12)
        h = h - 0.01 * alpha - 0.003 + rng.normal(0, 1e-4)


def test_state_round_trip_is_bit_exact_and_resumes():
    first = SelfTuningPI(0.2)
    _run(first, 0.01, -0.003, 0.3, 40)
    resumed = SelfTuningPI(0.2)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert resumed.state_dict() == first.state_dict()
    a = _run(first, 0.01, -0.003, 0.25, 30, seed=5)
    b = _run(resumed, 0.01, -0.003, 0.25, 30, seed=5)
    np.testing.assert_array_equal(a, b)


def test_vectorised_loops_match_single_loops():
    many = SelfTuningPI(0.2)
    singles = [SelfTuningPI(0.2) for _ in range(3)]
    ks = np.array([1e-3, 1e-2, 1e-1])
    h = np.full(3, 0.3)
    for _ in range(50):
        a = many.update(h)
        a_single = np.array([c.update(x) for c, x in zip(singles, h, strict=True)])
        np.testing.assert_allclose(a, a_single, rtol=1e-12, atol=1e-15)
        h = h - 0.2 * ks - ks * a


def test_unreachable_target_is_flagged_with_advice():
    ctrl = SelfTuningPI(0.2, reach_patience=10)
    _run(ctrl, 0.01, -0.02, 0.3, 200)  # needs α* = −2, beyond the limit
    assert ctrl.target_reachable == 0.0
    assert "lower the target" in ctrl.monitor.advice(0.2, ctrl.alpha_star)


def test_pi_controller_reports_reachability_and_keeps_old_states_loadable():
    ctrl = PIController(1.0, 0.01, 0.1, anti_windup="clamp")
    for _ in range(49):
        ctrl.update(5.0)
    assert ctrl.target_reachable == 1.0
    for _ in range(2):
        ctrl.update(5.0)  # far above the target: α pinned at +1
    assert ctrl.target_reachable == 0.0
    state = ctrl.state_dict()
    assert (
        set(state) == {"step", "integral", "alpha", "error", "prev_integral", "reach_run"} and state["reach_run"] == 51
    )
    old = {k: v for k, v in state.items() if k != "reach_run"}
    fresh = PIController(1.0, 0.01, 0.1)
    fresh.load_state_dict(old)
    assert fresh.target_reachable == 1.0 and fresh.integral == ctrl.integral


def test_reach_monitor_counts_only_steps_pushing_out():
    m = ReachMonitor(-1.0, 1.0, patience=3)
    for u, e in [(2.0, 0.1), (2.0, 0.1), (2.0, -0.1), (2.0, 0.1), (2.0, 0.1)]:
        m.observe(np.asarray(u), np.asarray(e))
    assert m.reachable() == 1.0  # the wrong-signed error reset the run
    m.observe(np.asarray(2.0), np.asarray(0.1))
    assert m.reachable() == 0.0
    star = ReachMonitor(-1.0, 1.0, patience=3)
    for a_star in (1.5, 1.5, np.nan, 1.5, -1.2):
        star.observe(np.asarray(0.0), np.asarray(0.1), a_star)
    assert star.reachable() == 1.0  # a NaN (not estimated) step reset the run
    star.observe(np.asarray(0.0), np.asarray(0.1), 2.0)
    assert star.reachable() == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [{"settling_steps": 1}, {"k_bounds": (0.1, 0.01)}, {"forgetting": 0.2}, {"target": -1.0}, {"anti_windup": "x"}],
)
def test_bad_parameters_name_the_field(kwargs):
    field = next(iter(kwargs))
    with pytest.raises(ValueError, match=field):
        SelfTuningPI(**{"target": 0.2, **kwargs})


def test_initial_target_holds_the_starting_entropy():
    ctrl = SelfTuningPI("initial")
    rng = np.random.default_rng(0)
    h, first = 0.5, []
    for t in range(300):
        if t < 10:
            first.append(h)
        a = ctrl.update(h)
        h = h - 0.002 - 0.01 * a + rng.normal(0, 2e-4)  # drifts down without control
    assert ctrl.target.initial == pytest.approx(np.mean(first), rel=1e-12)
    assert h == pytest.approx(np.mean(first), abs=0.01)


def test_relative_shaped_target_and_resume():
    spec = {"relative": 0.8, "window": 5, "shape": "rise_then_fall", "total_steps": 100}
    ctrl = SelfTuningPI(spec)
    for _ in range(5):
        ctrl.update(np.array([0.5, 1.0]))
    np.testing.assert_allclose(ctrl.target.value(0), [0.4, 0.8])
    np.testing.assert_allclose(ctrl.target.value(50), [0.6, 1.2])  # the peak: 1.5 × 0.8 × H₀
    assert ctrl.target_at(50) == pytest.approx(0.9)
    other = SelfTuningPI(dict(spec))
    other.load_state_dict(json.loads(json.dumps(ctrl.state_dict())))
    np.testing.assert_array_equal(other.update(np.array([0.45, 0.9])), ctrl.update(np.array([0.45, 0.9])))


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"relative": -1}, "target.relative"),
        ({"relative": 1, "window": 0}, "target.window"),
        ({"relative": 1, "shape": "zigzag"}, "target.shape"),
    ],
)
def test_bad_auto_target_names_the_field(spec, field):
    with pytest.raises(ValueError, match=field):
        SelfTuningPI(spec)


def test_delayed_loop_is_identified_with_the_delay():
    """α computed at step t acts on the step after (the plug-ins): with delay=1 k̂ is right."""
    ctrl = SelfTuningPI(0.2, delay=1)
    rng = np.random.default_rng(2)
    h, pending = 0.25, 0.0
    for _ in range(600):
        applied, pending = pending, ctrl.update(h)
        h = h - 0.003 - 0.01 * applied + rng.normal(0, 2e-4)
    assert ctrl.k_hat == pytest.approx(0.01, rel=0.3)
    assert h == pytest.approx(0.2, abs=0.01)
    state = json.loads(json.dumps(ctrl.state_dict()))
    other = SelfTuningPI(0.2, delay=1)
    other.load_state_dict(state)
    assert other.update(0.21) == ctrl.update(0.21)


def _run_measured(ctrl, k, b, x0, steps, noise, seed):
    """Plant x ← x + b − k·α with the entropy *measured* with noise: H = x + n, n ~ N(0, noise²)."""
    rng = np.random.default_rng(seed)
    x, xs, k_hats = x0, [], []
    for _ in range(steps):
        a = ctrl.update(x + rng.normal(0.0, noise))
        x = x + b - k * a + rng.normal(0.0, 0.1 * k)
        xs.append(x)
        k_hats.append(ctrl.k_hat)
    return np.array(xs), np.array(k_hats)


def test_measurement_noise_does_not_bias_k_hat_upwards():
    """An LLM's batch entropy is noisy (σ_n ≈ 0.03 nats ≫ k·Δα). Plain closed-loop least squares then
    converges to k + kp·σ_n²/Var α (the second-half mean of k̂ is ≈ 12 k here); the compensated estimate
    stays within a factor 2 of k, estimates σ_n, and the loop holds the (true) entropy at the target."""
    k, b, sigma = 0.01, -0.004, 0.03
    k_hats, noise_stds, tails = [], [], []
    for seed in range(6):
        ctrl = SelfTuningPI(0.4)
        xs, k_hat = _run_measured(ctrl, k, b, 0.52, 300, sigma, seed)
        k_hats.append(np.mean(k_hat[150:]))
        noise_stds.append(ctrl.noise_std)
        tails.append(np.sqrt(np.mean((xs[150:] - 0.4) ** 2)))
    assert 0.5 * k < np.median(k_hats) < 2 * k
    assert np.median(noise_stds) == pytest.approx(sigma, rel=0.3)
    assert np.median(tails) < 0.1 * 0.4


def test_noise_free_plant_gets_no_compensation():
    ctrl = SelfTuningPI(0.2)
    _run(ctrl, 1e-2, -3e-3, 0.25, 400, noise=0.0)
    assert ctrl.noise_std < 1e-4
    assert ctrl.k_hat == pytest.approx(1e-2, rel=0.05)


def test_state_from_before_the_bias_compensation_loads():
    ctrl = SelfTuningPI(0.2)
    _run(ctrl, 1e-2, -3e-3, 0.25, 50)
    old = {key: v for key, v in ctrl.state_dict().items() if key not in ("ls", "bias", "autocov", "last_resid")}
    other = SelfTuningPI(0.2)
    other.load_state_dict(json.loads(json.dumps(old)))
    assert other.k_hat == ctrl.k_hat and other.alpha == ctrl.alpha
    assert other.noise_std == 0.0  # re-estimated from the next residuals
    other.update(0.21)
