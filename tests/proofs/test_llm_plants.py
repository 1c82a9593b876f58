"""LLM-like plant checks: they pass, and an α-term put under the PPO clip, a stability test that
ignores Adam's memory, or a wrong noise gain makes them FAIL.

Run: python -m pytest tests/proofs/test_llm_plants.py
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from pic import robustness, stability
from pic.actuator import entropic_weights
from proofs import llm_plants
from proofs.runner import Verdict, registered_checks, run_check
from sim.plant import _clip_masks

CHECKS = [
    llm_plants.check_clip_keeps_alpha_term,
    llm_plants.check_jury_on_adam_plant,
    llm_plants.check_noise_on_sampled_entropy,
]


def verdict(check, **kwargs):
    return run_check(functools.partial(check, **kwargs), timeout=60, name=check.check_name)


def test_every_check_is_registered():
    assert {c.check_name for c in CHECKS} <= {c.name for c in registered_checks()}


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_check_passes(check, suite_report):
    result = suite_report.result(check.check_name)
    assert result["verdict"] == "PASS", result["detail"]


def alpha_under_the_clip(pi, log_ratio, pi_old, pos, neg, alpha, cfg):
    """The bug: the EntroPIC weight multiplies the clipped objective, so a clipped sample loses it."""
    w_pos = entropic_weights(pi, 1.0, alpha, cfg.tau)
    w_neg = 2.0 - w_pos
    c_pos, c_neg = _clip_masks(np.exp(log_ratio), cfg)
    m = pos * c_pos * w_pos + neg * c_neg * w_neg
    return cfg.lr * pi * (m - (pi * m).sum(axis=-1, keepdims=True))


def test_alpha_term_under_the_clip_fails():
    result = verdict(llm_plants.check_clip_keeps_alpha_term, step_fn=alpha_under_the_clip)
    assert result.verdict is Verdict.FAIL
    assert "clip-free formula" in result.detail


def test_stability_without_adam_memory_fails():
    def memoryless(kp, ki, k, *, delay=0, memory=0.0):
        return stability.is_stable(kp, ki, k, delay=delay)

    result = verdict(llm_plants.check_jury_on_adam_plant, is_stable=memoryless)
    assert result.verdict is Verdict.FAIL


def test_open_loop_noise_gain_fails():
    def open_loop(kp, ki, k):
        var_e, _ = robustness.noise_gain(kp, ki, k)
        return var_e, np.asarray(kp, dtype=float) ** 2 / 4  # kp²σ²/4: half the noise std passed through

    result = verdict(llm_plants.check_noise_on_sampled_entropy, noise_gain=open_loop)
    assert result.verdict is Verdict.FAIL
