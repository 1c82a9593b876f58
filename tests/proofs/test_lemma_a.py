"""Lemma A checks: all pass on the true formula; a wrong dH/dz makes them FAIL.

Run: python -m pytest tests/proofs/test_lemma_a.py
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from proofs import lemma_a
from proofs.runner import Verdict, registered_checks, run_check
from proofs.softmax import entropy, log_softmax

CHECKS = [
    lemma_a.check_grad_sympy,
    lemma_a.check_grad_general_k,
    lemma_a.check_covariance_sympy,
    lemma_a.check_grad_numeric,
    lemma_a.check_first_order_numeric,
]


def verdict(check, **kwargs):
    return run_check(functools.partial(check, **kwargs), timeout=60, name=check.check_name)


def wrong_formula(p, logp, h):
    """Sign error on H."""
    return -p * (logp - h)


def wrong_grad(z):
    """Forgets the H term."""
    logp = log_softmax(z)
    return -np.exp(logp) * logp


def test_every_check_is_registered():
    assert {c.name for c in registered_checks("Lemma A:")} == {c.check_name for c in CHECKS}


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_check_passes(check, suite_report):
    result = suite_report.result(check.check_name)
    assert result["verdict"] == "PASS", result["detail"]


@pytest.mark.parametrize(
    ("check", "kwargs"),
    [
        (lemma_a.check_grad_sympy, {"formula": wrong_formula, "ks": (2, 3)}),
        (lemma_a.check_grad_general_k, {"formula": wrong_formula}),
        (lemma_a.check_covariance_sympy, {"formula": wrong_formula, "ks": (3,)}),
        (lemma_a.check_grad_numeric, {"grad": wrong_grad}),
        (lemma_a.check_first_order_numeric, {"grad": wrong_grad}),
    ],
    ids=["sympy-K", "sympy-general", "sympy-cov", "numeric-fd", "numeric-first-order"],
)
def test_wrong_gradient_fails(check, kwargs):
    result = verdict(check, **kwargs)
    assert result.verdict is Verdict.FAIL, result.detail


def test_slightly_wrong_gradient_fails_numerically():
    result = verdict(lemma_a.check_grad_numeric, grad=lambda z: lemma_a.entropy_grad(z) * (1 + 1e-4))
    assert result.verdict is Verdict.FAIL


def test_entropy_grad_matches_a_direct_difference():
    z = np.array([0.3, -1.2, 2.0, 0.0])
    h = 1e-6
    e0 = np.eye(4)[0] * h
    assert lemma_a.entropy_grad(z)[0] == pytest.approx(
        (entropy(z + e0) - entropy(z - e0)) / (2 * h), rel=1e-7
    )


def test_covariance_is_centred():
    p = np.array([0.2, 0.3, 0.5])
    x = np.array([1.0, 2.0, 4.0])
    assert lemma_a.covariance(p, x, x + 7.0) == pytest.approx(lemma_a.covariance(p, x, x))
    assert lemma_a.covariance(p, x, np.ones(3)) == pytest.approx(0.0, abs=1e-15)
