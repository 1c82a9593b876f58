"""sim.gain_map and the ``gain-map`` / ``delay-region`` subcommands.

Run: python -m pytest tests/sim/test_gain_map.py
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from pic.stability import simulate_linear
from sim import cli
from sim.gain_map import BASE, K_I, K_P, GainPoint, factor_settings, linear_response, measure_point, response_deviation
from sim.rich_plant import spread_problem


@pytest.fixture(scope="module")
def problem():
    return spread_problem(16, 12, seed=5)


def _measure(problem, **change):
    return measure_point(*problem, {**BASE, **change}, band_steps=6, every=6, response_steps=12)


def test_sgd_gain_and_drift_scale_with_the_step_size(problem):
    _, k1, b1, _, _ = _measure(problem, lr=0.05)
    _, k2, b2, _, _ = _measure(problem, lr=0.1)
    assert k2 / k1 == pytest.approx(2.0, rel=0.02)  # first order in η
    assert b2 / b1 == pytest.approx(2.0, rel=0.02)


def test_temperature_divides_the_sgd_gain_by_t_squared(problem):
    _, k1, _, _, _ = _measure(problem, lr=0.05)
    _, k_hot, _, _, _ = _measure(problem, lr=0.05, temperature=0.5)
    assert k_hot / k1 == pytest.approx(4.0, rel=0.03)


def test_gain_falls_with_tau_and_drift_does_not_depend_on_it(problem):
    measured = [_measure(problem, tau=t) for t in (0.5, 0.7, 0.9)]
    ks = [m[1] for m in measured]
    assert ks[0] > ks[1] > ks[2] > 0
    assert np.ptp([m[2] for m in measured]) == 0.0  # b is GRPO's drift at α = 0


def test_adam_gain_is_much_smaller_than_sgd_at_the_same_policy(problem):
    h_sgd, k_sgd, _, _, _ = _measure(problem)
    h_adam, k_adam, _, _, _ = _measure(problem, optimizer="adam")
    assert h_adam == pytest.approx(h_sgd, abs=1e-9)  # same policy: the moments warm up frozen
    assert 0 < k_adam < 0.2 * k_sgd


def test_the_loop_sees_only_k_times_the_gains_for_small_steps(problem):
    *_, resp = _measure(problem, lr=0.02)
    point = GainPoint("lr", "0.02", {}, 0.0, 1.0, 0.0, None, tuple(resp))
    assert response_deviation(point) < 0.02
    *_, fast = _measure(problem, lr=0.8)
    assert response_deviation(GainPoint("lr", "0.8", {}, 0.0, 1.0, 0.0, None, tuple(fast))) > 0.1


def test_linear_response_is_the_normalised_linear_loop():
    np.testing.assert_allclose(linear_response(30), simulate_linear(K_P, K_I, 1.0, e0=1.0, steps=29))
    np.testing.assert_allclose(linear_response(30), simulate_linear(K_P / 7, K_I / 7, 7.0, e0=1.0, steps=29))


def test_factor_settings_vary_one_factor_at_a_time():
    for factor, _, setting in factor_settings():
        changed = {key for key in BASE if setting[key] != BASE[key]}
        allowed = {"updates": {"epochs", "minibatches"}}.get(factor, {factor})
        assert changed <= allowed


def test_cli_gain_map_quick_writes_table_json_and_figure(tmp_path, capsys):
    assert cli.main(["gain-map", "--quick", "--out", str(tmp_path), "--contexts", "8", "--arms", "6"]) == 0
    data = json.loads((tmp_path / "gain_map.json").read_text())
    assert {d["factor"] for d in data} == {"tau", "lr", "temperature", "optimizer", "updates"}
    assert (tmp_path / "gain_map.png").stat().st_size > 10_000
    assert "| factor |" in (tmp_path / "gain_map.md").read_text()
    assert "settings in" in capsys.readouterr().out


def test_cli_delay_region_writes_the_figure(tmp_path):
    assert cli.main(["delay-region", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "delay_region.png").stat().st_size > 10_000


def test_cli_bad_contexts_is_one_line(tmp_path, capsys):
    assert cli.main(["gain-map", "--out", str(tmp_path), "--contexts", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --contexts must be an integer >= 1, got 0"
