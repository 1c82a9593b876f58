"""Identification, operating point, gain sweep and comparisons on a small bandit.

Run: python -m pytest tests/sim/test_sweep.py
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from pic.stability import simulate_linear
from sim.bandit import standard_problem
from sim.compare import compare_controllers, windup_experiment
from sim.identify import PlantMap, local_linearisation, map_along_trajectory
from sim.plant import BanditPlant, PlantConfig
from sim.sweep import find_operating_point, settling_metrics, sweep_gains

OFF = PlantConfig(lr=1.0, epochs=4)


@pytest.fixture(scope="module")
def problem():
    return standard_problem(1, arms=20)


@pytest.fixture(scope="module")
def op(problem):
    bandit, z0 = problem
    return find_operating_point(bandit, OFF, z0, 0.1, min_hold=1000, max_hold=4000, k_tol=0.02)


def test_linearisation_predicts_small_alpha_steps(problem):
    bandit, z0 = problem
    k, b = local_linearisation(bandit, z0, OFF)
    plant = BanditPlant(bandit, np.stack([z0] * 3), config=OFF)
    h0 = plant.entropy()
    alphas = np.array([0.0, 0.01, -0.01])
    plant.step(alphas)
    assert_allclose(plant.entropy() - h0, b - k * alphas, atol=1e-7)


def test_operating_point_holds_the_target(op, problem):
    bandit, _ = problem
    assert op.k > 0
    assert abs(op.alpha) < 1
    plant = BanditPlant(bandit, op.logits, config=OFF)
    assert plant.entropy()[0] == pytest.approx(0.1, abs=1e-4)
    # at the operating point the tangent model says ΔH(α*) ≈ 0
    assert abs(op.b - op.k * op.alpha) < 0.05 * op.k


def test_unreachable_target_is_reported(problem):
    bandit, z0 = problem
    with pytest.raises(ValueError, match="cannot be held|no authority|not reached"):
        find_operating_point(bandit, OFF, z0, 2.5, approach_steps=50, min_hold=100, max_hold=200)


def test_settling_metrics_on_known_trajectories():
    t = np.arange(400)[:, None]
    traj = np.hstack([0.5**t, 0.1 + 0.9 * 0.5**t, np.cos(t)])  # PI-like, P-like, oscillating
    m = settling_metrics(traj)
    assert m["converged"].tolist() == [True, True, False]
    assert m["final"][:2] == pytest.approx([0.0, 0.1], abs=1e-12)
    assert m["settling"][0] == 6  # 0.5^6 ≤ 2 % < 0.5^5
    assert np.isinf(m["settling"][2])
    under = settling_metrics(np.hstack([(-0.5) ** t]))  # alternating: 50 % overshoot
    assert under["overshoot"][0] == pytest.approx(50.0)


def test_sweep_agrees_with_the_linear_prediction(op, problem):
    bandit, _ = problem
    res = sweep_gains(bandit, OFF, op, np.linspace(0, 3.5, 8), np.linspace(0, 2.0, 8), steps=600)
    assert res.agreement >= 0.9
    assert res.sim["converged"].any() and (~res.sim["converged"]).any()
    # far outside the Jury region nothing converges; well inside everything does
    kpn, kin = np.meshgrid(res.kp_norm, res.ki_norm)
    far_out = (2 * kpn - kin > 5) | (kin > kpn + 0.5)
    well_in = (kin > 0.2) & (kpn > kin + 0.3) & (2 * kpn - kin < 3)
    assert not res.sim["converged"][far_out].any()
    assert res.sim["converged"][well_in].all()
    # P cells (ki = 0) settle where the linear model says
    p_ok = res.sim["converged"][0] & res.pred["converged"][0]
    assert p_ok.sum() >= 2
    assert_allclose(res.sim["final"][0][p_ok], res.pred["final"][0][p_ok], rtol=0.25)


def test_sweep_prediction_is_the_linear_loop(op, problem):
    bandit, _ = problem
    res = sweep_gains(bandit, OFF, op, np.array([0.5]), np.array([0.1]), steps=200)
    lin = simulate_linear(0.5 / op.k, 0.1 / op.k, op.k, b=op.b, e0=res.e0, s0=op.alpha / (0.1 / op.k), steps=199)
    assert res.pred["final"][0] == pytest.approx(settling_metrics(lin)["final"])


def test_plant_map_band():
    h = np.linspace(0.01, 1.0, 100)
    pm = PlantMap(h, k=np.where(h < 0.4, 1e-3, 0.0), b=np.full(100, -5e-4))
    lo, hi = pm.band()
    assert lo == pytest.approx(0.01)
    assert hi < 0.4
    assert pm.reachable(0.2) and not pm.reachable(0.6)
    assert pm.equilibrium_alpha(0.2) == pytest.approx(-0.5)


def test_band_along_grpo(problem):
    bandit, z0 = problem
    pm = map_along_trajectory(bandit, z0, OFF, steps=300, every=10)
    band = pm.band()
    assert band is not None and band[0] < 0.1 < band[1]


def test_p_misses_by_the_predicted_amount_and_pi_does_not(op, problem):
    bandit, z0 = problem
    runs = compare_controllers(bandit, OFF, z0, 0.1, op.k, steps=1500, kp_norm=0.3, ki_norm=0.03)
    grpo, p, pi = runs
    assert grpo.entropy[-1] < 0.05  # collapse
    assert abs(pi.tail_error()) < 1e-4
    assert p.tail_error() == pytest.approx(p.info["predicted_error"], rel=0.1)
    assert abs(p.tail_error()) > 10 * abs(pi.tail_error())


def test_windup_outside_the_band(op, problem):
    bandit, z0 = problem
    runs = windup_experiment(bandit, OFF, z0, high_target=0.8, low_target=0.1, switch_step=600, steps=1200, k_ref=op.k)
    none, clamp, back = (r.info for r in runs)
    assert none["max_integral"] > 50 * clamp["max_integral"]
    assert clamp["recovery_steps"] is not None and clamp["recovery_steps"] < 100
    assert none["recovery_steps"] is None or none["recovery_steps"] > 5 * clamp["recovery_steps"]
    assert back["recovery_steps"] is not None
