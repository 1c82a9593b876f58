"""Lemma B checks: all pass; a wrong B(a) makes the identity and update checks FAIL.

Run: python -m pytest tests/proofs/test_lemma_b.py
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from proofs import lemma_b
from proofs.runner import Verdict, registered_checks, run_check

CHECKS = [
    lemma_b.check_identity_sympy,
    lemma_b.check_b_sign_sympy,
    lemma_b.check_b_sign_numeric,
    lemma_b.check_update_numeric,
]


def verdict(check, **kwargs):
    return run_check(functools.partial(check, **kwargs), timeout=60, name=check.check_name)


def b_without_h(p):
    """B with log π in place of c = log π + H."""
    p = np.asarray(p, dtype=float)
    logp = np.log(p)
    return p * logp - (p * p * logp).sum(axis=-1, keepdims=True)


def test_every_check_is_registered():
    assert {c.name for c in registered_checks("Lemma B:")} == {c.check_name for c in CHECKS}


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_check_passes(check, suite_report):
    result = suite_report.result(check.check_name)
    assert result["verdict"] == "PASS", result["detail"]


def test_wrong_sympy_formula_fails():
    def wrong(p, c, a):  # drops the Σ π_b² c_b term
        return p[a] * c[a]

    result = verdict(lemma_b.check_identity_sympy, formula=wrong, ks=(2,))
    assert result.verdict is Verdict.FAIL, result.detail


def test_wrong_b_fails_against_the_exact_update():
    result = verdict(lemma_b.check_update_numeric, b_fn=b_without_h)
    assert result.verdict is Verdict.FAIL
    assert "remainder O(η²)" in result.detail


def test_sign_flipped_b_fails_the_enumeration():
    result = verdict(lemma_b.check_b_sign_numeric, b_fn=lambda p: -lemma_b.sample_sign_coefficient(p))
    assert result.verdict is Verdict.FAIL


def test_b_of_argmax_is_nonnegative_and_low_tokens_can_be_negative():
    p = np.array([0.6, 0.3, 0.1])
    b = lemma_b.sample_sign_coefficient(p)
    assert b[0] > 0
    assert b[2] < 0  # a positive sample of the unlikely token raises entropy
    assert np.allclose(lemma_b.sample_sign_coefficient(np.full(4, 0.25)), 0.0, atol=1e-15)
