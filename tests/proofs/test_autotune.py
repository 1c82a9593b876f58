"""Self-tuning checks: all pass against pic; a wrong pole placement, a design without the delay
margin, or a controller that does not learn makes them FAIL."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from pic import autotune
from proofs import autotune as checks
from proofs.runner import Verdict, registered_checks, run_check

CHECKS = [checks.check_pole_placement, checks.check_margins, checks.check_rls_twin]


def verdict(check, **kwargs):
    return run_check(functools.partial(check, **kwargs), timeout=60, name=check.check_name).verdict


def test_every_check_is_registered():
    assert {c.check_name for c in CHECKS} <= {c.name for c in registered_checks()}


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_check_passes(check, suite_report):
    result = suite_report.result(check.check_name)
    assert result["verdict"] == "PASS", result["detail"]


def test_wrong_integral_gain_fails():
    def wrong(r, k):
        kp, ki = autotune.placed_gains(r, k)
        return kp, 1.1 * ki

    assert verdict(checks.check_pole_placement, placed_gains=wrong) == Verdict.FAIL


def test_design_without_the_delay_margin_fails():
    def fast(steps, margin=2.0, delay=1, max_noise_gain=1.5):
        return math.exp(-4.0 / steps) ** 3  # three times the requested speed, no margin check

    assert verdict(checks.check_margins, design_poles=fast) == Verdict.FAIL


def test_controller_with_frozen_estimate_fails():
    class Frozen(autotune.SelfTuningPI):
        def _identify(self, h: np.ndarray) -> None:  # never learns: k̂ stays at the prior
            pass

    assert verdict(checks.check_rls_twin, controller=Frozen) == Verdict.FAIL
