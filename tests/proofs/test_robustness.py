"""Robustness checks: all pass against pic; dropping the delay, a wrong noise gain or ramp error,
or a bogus Lyapunov certificate makes them FAIL.

Run: python -m pytest tests/proofs/test_robustness.py
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from pic import robustness, stability
from proofs import robustness as checks
from proofs.runner import Verdict, registered_checks, run_check

CHECKS = [
    checks.check_delay_charpoly_sympy,
    checks.check_delay_jury_sympy,
    checks.check_delay_simulation,
    checks.check_varying_gain,
    checks.check_noise_gain,
    checks.check_ramp_drift,
]


def verdict(check, **kwargs):
    return run_check(functools.partial(check, **kwargs), timeout=60, name=check.check_name)


def test_every_check_is_registered():
    names = {c.name for c in registered_checks()}
    assert {c.check_name for c in CHECKS} <= names


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_check_passes(check, suite_report):
    result = suite_report.result(check.check_name)
    assert result["verdict"] == "PASS", result["detail"]


def _delay_dropped(kp, ki, k, *, delay=0):
    return stability.is_stable(kp, ki, k)  # ignores the delay


def test_dropping_the_delay_fails_the_jury_check():
    result = verdict(checks.check_delay_jury_sympy, is_stable=_delay_dropped)
    assert result.verdict is Verdict.FAIL
    assert "delay=1" in result.detail


def test_dropping_the_delay_fails_the_simulation_check():
    result = verdict(checks.check_delay_simulation, is_stable=_delay_dropped)
    assert result.verdict is Verdict.FAIL
    assert "simulation" in result.detail


def test_dropping_the_delay_from_the_polynomial_fails():
    def no_delay_poly(kp, ki, k, delay=0):
        return robustness.delayed_char_poly(kp, ki, k, 0)

    assert verdict(checks.check_delay_charpoly_sympy, char_poly=no_delay_poly).verdict is Verdict.FAIL


def test_wrong_jury_condition_fails():
    def delay_free_jury(kp, ki, k):
        return stability.jury_conditions(kp, ki, k)

    assert verdict(checks.check_delay_jury_sympy, jury=delay_free_jury).verdict is Verdict.FAIL


def test_frozen_gain_stability_is_not_a_certificate():
    def frozen(kp, ki, k_lo, k_hi):  # "stable at both ends" passed off as a certificate
        return np.eye(2)

    result = verdict(checks.check_varying_gain, common_lyapunov=frozen)
    assert result.verdict is Verdict.FAIL


def test_noise_gain_of_the_p_loop_misapplied_fails():
    def open_loop(kp, ki, k):  # the measurement noise passed straight through: Var α = kp²σ²
        var_e, _ = robustness.noise_gain(kp, ki, k)
        return var_e, np.asarray(kp, dtype=float) ** 2

    assert verdict(checks.check_noise_gain, noise_gain=open_loop).verdict is Verdict.FAIL


def test_ramp_error_with_kp_instead_of_ki_fails():
    def wrong(kp, ki, k, r):
        return robustness.ramp_error(kp, ki, k, r) * np.asarray(ki) / np.asarray(kp)

    assert verdict(checks.check_ramp_drift, ramp_error=wrong).verdict is Verdict.FAIL


def test_delay_zero_is_the_delay_free_region():
    rng = np.random.default_rng(0)
    kp, ki, k = rng.uniform(0, 4, 5000), rng.uniform(0, 2, 5000), 10 ** rng.uniform(-2, 1, 5000)
    ki[:500] = 0.0
    assert np.array_equal(stability.is_stable(kp, ki, k, delay=0), robustness.is_stable_delayed(kp, ki, k, 0))


def test_bad_delay_is_one_clear_line():
    with pytest.raises(ValueError, match="delay must be an integer >= 0"):
        stability.is_stable(1.0, 0.1, 1.0, delay=-1)
