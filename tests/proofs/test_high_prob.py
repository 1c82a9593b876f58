"""High-probability corollary checks: all pass; a sign-flipped or unmasked actuator FAILs.

Run: python -m pytest tests/proofs/test_high_prob.py
"""

from __future__ import annotations

import functools

import pytest

from pic import actuator
from proofs import high_prob
from proofs.runner import Verdict, registered_checks, run_check

CHECKS = [
    high_prob.check_argmax_sympy,
    high_prob.check_actuator_sign_sympy,
    high_prob.check_argmax_numeric,
    high_prob.check_actuator_numeric,
]


def verdict(check, **kwargs):
    return run_check(functools.partial(check, **kwargs), timeout=60, name=check.check_name)


def test_every_check_is_registered():
    assert {c.name for c in registered_checks("High-prob:")} == {c.check_name for c in CHECKS}


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_check_passes(check, suite_report):
    result = suite_report.result(check.check_name)
    assert result["verdict"] == "PASS", result["detail"]


def test_sign_flipped_actuator_fails():
    def flipped(prob, adv, alpha, tau=0.95):
        return 1.0 - alpha * actuator.advantage_sign(adv) * actuator.high_prob_mask(prob, tau)

    result = verdict(high_prob.check_actuator_numeric, entropic_weights=flipped)
    assert result.verdict is Verdict.FAIL
    assert "sign −α: FAIL" in result.detail


def test_unmasked_actuator_fails_the_rule():
    def unmasked(prob, adv, alpha, tau=0.95):
        return 1.0 + alpha * actuator.advantage_sign(adv)

    result = verdict(high_prob.check_actuator_numeric, entropic_weights=unmasked)
    assert result.verdict is Verdict.FAIL
    assert "w = 1 + α·sign(A)·1[π > τ]: FAIL" in result.detail


def test_b_without_entropy_term_fails_the_enumeration():
    import numpy as np

    def b_without_h(p):
        logp = np.log(p)
        return p * logp - (p * p * logp).sum(axis=-1, keepdims=True)

    result = verdict(high_prob.check_argmax_numeric, b_fn=b_without_h)
    assert result.verdict is Verdict.FAIL
