"""PI-control checks: all pass against pic; broken stability / charpoly / controller code FAILs,
while dropping the redundant fourth Jury condition still passes.

Run: python -m pytest tests/proofs/test_pi_control.py
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import pic
from pic import stability
from proofs import pi_control
from proofs.runner import Verdict, registered_checks, run_check

CHECKS = [
    pi_control.check_charpoly_sympy,
    pi_control.check_bilinear_sympy,
    pi_control.check_redundant_condition_sympy,
    pi_control.check_region_numeric,
    pi_control.check_linear_plant_numeric,
    pi_control.check_bandit_off_policy,
]


def verdict(check, **kwargs):
    return run_check(functools.partial(check, **kwargs), timeout=60, name=check.check_name)


def _arrays(*xs):
    return np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in xs))


def stable_without(dropped: str):
    """`pic.stability.is_stable` for PI with one of its four Jury conditions removed."""

    def is_stable(kp, ki, k):
        kp, ki, k = _arrays(kp, ki, k)
        conds = {name: v for name, v in stability.jury_conditions(kp, ki, k).items() if name != dropped}
        return np.logical_and.reduce(list(conds.values())) & (k > 0)

    return is_stable


def test_every_check_is_registered():
    assert {c.name for c in registered_checks("PI control:")} == {c.check_name for c in CHECKS}


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_check_passes(check, suite_report):
    result = suite_report.result(check.check_name)
    assert result["verdict"] == "PASS", result["detail"]


def test_is_stable_without_kp_gt_ki_fails():
    result = verdict(pi_control.check_region_numeric, is_stable=stable_without("kp > ki"))
    assert result.verdict is Verdict.FAIL
    assert "cells differ" in result.detail


def test_is_stable_without_the_redundant_condition_still_passes():
    result = verdict(pi_control.check_region_numeric, is_stable=stable_without("k(kp - ki) < 2"))
    assert result.verdict is Verdict.PASS, result.detail
    assert "redundant in pic: k(kp - ki) < 2" in result.detail


def test_jury_conditions_missing_a_needed_condition_fails():
    def jury(kp, ki, k):
        conds = stability.jury_conditions(kp, ki, k)
        conds.pop("k(2kp - ki) < 4")
        return conds

    result = verdict(pi_control.check_region_numeric, jury_conditions=jury)
    assert result.verdict is Verdict.FAIL
    assert "p(−1) > 0 is a pic condition" in result.detail


def test_wrong_char_poly_fails():
    def wrong(kp, ki, k):
        a1, a0 = stability.char_poly_coeffs(kp, ki, k)
        return a1, a0 - 2 * np.asarray(k) * np.asarray(ki)  # sign error on k·ki

    result = verdict(pi_control.check_charpoly_sympy, char_poly_coeffs=wrong)
    assert result.verdict is Verdict.FAIL


def test_wrong_closed_loop_matrix_fails():
    def wrong(kp, ki, k):
        a = stability.closed_loop_matrix(kp, ki, k)
        a[..., 0, 1] *= -1
        return a

    result = verdict(pi_control.check_charpoly_sympy, closed_loop_matrix=wrong)
    assert result.verdict is Verdict.FAIL


def test_controller_without_integral_fails_the_linear_twin():
    def p_only(kp, ki, target, **kw):
        return pic.PIController(kp, 0.0, target, **kw)

    result = verdict(pi_control.check_linear_plant_numeric, controller_cls=p_only)
    assert result.verdict is Verdict.FAIL


def test_derived_conditions_are_the_three_hurwitz_ones():
    conds = pi_control.derived_conditions()
    assert len(conds) == 3
    f = [c.lhs - c.rhs for c in conds]
    k, kp, ki = (pi_control._K, pi_control._KP, pi_control._KI)
    values = {k: 1, kp: 1, ki: 0.5}
    assert [float(e.subs(values)) for e in f] == pytest.approx([2.5, 1.0, 0.5])  # p(−1), 2(1 − a₀), p(1)


def test_steady_state_error_with_a_p_offset_fails():
    def p_offset_everywhere(kp, ki, k, b):  # forgets that the integral removes the offset
        stable = stability.is_stable(kp, ki, k)
        return np.where(stable, np.asarray(b) / (np.asarray(k) * np.asarray(kp)), np.nan)

    result = verdict(pi_control.check_charpoly_sympy, steady_state_error=p_offset_everywhere)
    assert result.verdict is Verdict.FAIL
    assert "steady_state_error" in result.detail


@pytest.mark.parametrize("factor", [3.0, 1 / 3])
def test_identified_gain_scaled_by_three_fails_the_off_policy_check(factor):
    from sim.identify import local_linearisation

    def scaled(bandit, logits, config):
        k, b = local_linearisation(bandit, logits, config)
        return k * factor, b

    result = verdict(pi_control.check_bandit_off_policy, identify=scaled)
    assert result.verdict is Verdict.FAIL
    assert "ratio" in result.detail
