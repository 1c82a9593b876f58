"""P-control checks: all pass against pic; a wrong e_ss, stability test or gain makes them FAIL.

Run: python -m pytest tests/proofs/test_p_control.py
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import pic
from pic import stability
from proofs import p_control
from proofs.runner import Verdict, registered_checks, run_check

CHECKS = [
    p_control.check_closed_form_sympy,
    p_control.check_stability_sympy,
    p_control.check_linear_plant_numeric,
    p_control.check_on_policy_bandit,
]


def verdict(check, **kwargs):
    return run_check(functools.partial(check, **kwargs), timeout=60, name=check.check_name)


def test_every_check_is_registered():
    assert {c.name for c in registered_checks("P control:")} == {c.check_name for c in CHECKS}


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_check_passes(check, suite_report):
    result = suite_report.result(check.check_name)
    assert result["verdict"] == "PASS", result["detail"]


def test_wrong_steady_state_error_fails():
    def halved(kp, ki, k, b):
        return stability.steady_state_error(kp, ki, k, b) / 2

    result = verdict(p_control.check_closed_form_sympy, steady_state_error=halved)
    assert result.verdict is Verdict.FAIL
    assert "e_ss" in result.detail


def test_steady_state_error_defined_outside_the_region_fails():
    def no_nan(kp, ki, k, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(b, dtype=float) / (np.asarray(k, dtype=float) * np.asarray(kp, dtype=float))

    result = verdict(p_control.check_closed_form_sympy, steady_state_error=no_nan)
    assert result.verdict is Verdict.FAIL
    assert "NaN" in result.detail


def test_closed_interval_stability_fails_on_the_boundary():
    def closed(kp, ki, k):
        x = np.asarray(k, dtype=float) * np.asarray(kp, dtype=float)
        return (x > 0) & (x <= 2)  # includes the marginal pole −1

    result = verdict(p_control.check_stability_sympy, is_stable=closed)
    assert result.verdict is Verdict.FAIL


def test_controller_with_wrong_gain_fails_the_closed_form():
    def sloppy(kp, ki, target, **kw):
        return pic.PIController(kp * 1.01, ki, target, **kw)

    result = verdict(p_control.check_linear_plant_numeric, controller_cls=sloppy)
    assert result.verdict is Verdict.FAIL


def test_integral_action_removes_the_p_offset_on_the_bandit():
    def with_integral(kp, ki, target, **kw):  # PI in disguise: no offset left to match b/(k·kp)
        return pic.PIController(kp, 0.1 * kp, target, **kw)

    result = verdict(p_control.check_on_policy_bandit, controller_cls=with_integral)
    assert result.verdict is Verdict.FAIL
    assert "ratio" in result.detail


def test_closed_form_helper():
    e = p_control.closed_form(0.5, 0.02, 0.8, 0.5, 200)
    assert e[0] == pytest.approx(0.5)
    assert e[-1] == pytest.approx(0.02 / 0.4)


@pytest.mark.parametrize("factor", [3.0, 1 / 3])
def test_identified_gain_scaled_by_three_fails_the_bandit_check(factor):
    from sim.identify import local_linearisation

    def scaled(bandit, logits, config):
        k, b = local_linearisation(bandit, logits, config)
        return k * factor, b

    result = verdict(p_control.check_on_policy_bandit, identify=scaled)
    assert result.verdict is Verdict.FAIL
    assert "ratio" in result.detail and "Lemma B" in result.detail


def test_lemma_b_gain_scaled_fails_the_link_to_the_plant():
    from sim.identify import lemma_b_gain

    def scaled(bandit, logits, config):
        return 3.0 * lemma_b_gain(bandit, logits, config)

    result = verdict(p_control.check_on_policy_bandit, lemma_gain=scaled)
    assert result.verdict is Verdict.FAIL
    assert "Lemma B" in result.detail
