"""The entropic_auto lever: the same actuator term as entropic at the same α, the self-tuner's α,
its metrics, a one-time warning when the target is out of reach, and an exact state round trip."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from lever_support import PLANT, _batch, _stats, _tokens

from pic.autotune import SelfTuningPI
from pic.levers import LossModifiers, make_lever, token_loss


def test_alpha_is_the_self_tuners(torch):
    lever = make_lever("entropic_auto", target=0.2, loops=2)
    ref = SelfTuningPI(0.2)
    h = np.array([0.4, 0.3])
    for _ in range(5):
        lever.update(_stats(entropy=h))
        np.testing.assert_array_equal(lever.alpha, ref.update(h))
        h = h - 0.01 * lever.alpha - 0.002


@pytest.mark.parametrize("normalization", ["all_tokens", "high_prob_tokens"])
def test_term_equals_entropic_at_the_same_alpha(torch, normalization):
    auto = make_lever("entropic_auto", target=0.1, normalization=normalization, loops=2)
    auto.update(_stats(entropy=np.array([0.45, 0.02])))
    alpha = auto.alpha
    # an entropic P lever with kp chosen to give the same α (one update from zero state)
    fixed = make_lever("entropic", kp=1.0, ki=0.0, target=0.0, normalization=normalization, loops=2)
    fixed.update(_stats(entropy=alpha))
    np.testing.assert_allclose(fixed.alpha, alpha)
    logp, old, adv, mask = _tokens(torch, seed=3)
    tok_a = _batch(logp, old, adv, mask, counts=auto.counts(old, mask))
    tok_f = _batch(logp, old, adv, mask, counts=fixed.counts(old, mask))
    base = token_loss(tok_a, LossModifiers(), PLANT)
    assert torch.allclose(token_loss(tok_a, auto.modify(tok_a), PLANT), token_loss(tok_f, fixed.modify(tok_f), PLANT))
    assert not torch.allclose(token_loss(tok_a, auto.modify(tok_a), PLANT), base)


def test_metrics_and_exact_resume():
    lever = make_lever("entropic_auto", target=0.2)
    h = 0.3
    for _ in range(30):
        lever.update(_stats(entropy=h))
        h = h - 0.01 * float(lever.alpha[0]) - 0.002
    m = lever.metrics()
    assert {"k_hat", "b_hat", "kp", "ki", "alpha_star", "excited", "target_reachable"} <= set(m)
    assert m["kp"] == pytest.approx(2 * (1 - lever.controller.pole) / lever.controller.k_design)
    other = make_lever("entropic_auto", target=0.2)
    other.load_state_dict(json.loads(json.dumps(lever.state_dict())))
    for _ in range(5):
        lever.update(_stats(entropy=h))
        other.update(_stats(entropy=h))
        assert other.metrics() == lever.metrics()


def test_unreachable_target_warns_once(caplog):
    lever = make_lever("entropic_auto", target=0.2)
    with caplog.at_level(logging.WARNING, logger="pic.levers.autotune"):
        h = 0.5
        for _ in range(80):
            lever.update(_stats(entropy=h))
            h = h + 0.02 - 0.01 * float(lever.alpha[0])  # needs α* = 2
    assert lever.metrics()["target_reachable"] == 0.0
    warnings = [r for r in caplog.records if "target unreachable" in r.getMessage()]
    assert len(warnings) == 1 and "raise the target" in warnings[0].getMessage()


def test_bad_parameter_names_the_lever_field():
    with pytest.raises(ValueError, match="entropic_auto.settling_steps"):
        make_lever("entropic_auto", settling_steps=0.5)
    with pytest.raises(ValueError, match="entropic_auto.tau"):
        make_lever("entropic_auto", tau=1.5)


def test_trainer_config_selects_the_self_tuner():
    from llm.config import RLConfig, load_config

    lever = load_config(RLConfig, None, ["control.autotune=true", "control.tau=0.5"]).build_lever()
    assert lever.name == "entropic_auto" and lever.tau == 0.5
    relative = load_config(RLConfig, None, ["control.autotune=true", "control.target={relative = 0.8, window = 5}"])
    assert relative.build_lever().controller.target.relative == 0.8
    assert load_config(RLConfig, None, ["lever.name=entropic_auto"]).build_lever().name == "entropic_auto"
    assert load_config(RLConfig, None, ["control.kp=3"]).build_lever().name == "entropic"
    with pytest.raises(ValueError, match="control.target"):
        load_config(RLConfig, None, ['control.target="initial"'])
