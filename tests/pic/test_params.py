"""`pic.params.EntroPICParams`: the one declaration of the EntroPIC defaults, ranges and errors.

Run: python -m pytest tests/pic/test_params.py
"""

from __future__ import annotations

import dataclasses
import inspect
import math

import pytest

from pic.levers import EntroPIC, lever_parameters, make_lever
from pic.params import EntroPICParams
from pic.validation import ParameterError, is_finite_number, need

BAD = [
    ("kp", -1.0, "a finite number >= 0"),
    ("kp", math.inf, "a finite number >= 0"),
    ("ki", "0.01", "a finite number >= 0"),
    ("tau", 1.5, "in (0, 1)"),
    ("tau", 0.0, "in (0, 1)"),
    ("normalization", "mean", "one of ('all_tokens', 'high_prob_tokens')"),
    ("alpha_limit", 0.0, "> 0"),
    ("anti_windup", "yes", "one of ('none', 'clamp', 'back_calculation')"),
    ("integral_limit", -1.0, ">= 0 (0 = none)"),
    ("tracking_gain", 1.5, "in (0, 1]"),
]


@pytest.mark.parametrize(("field", "value", "rule"), BAD)
def test_each_bad_field_is_one_line_with_prefix_field_rule_and_value(field, value, rule):
    with pytest.raises(ParameterError) as e:
        EntroPICParams(**{field: value}).check("ctl.")
    assert str(e.value) == f"ctl.{field} must be {rule}, got {value!r}"


def test_a_bad_target_names_the_target():
    with pytest.raises(ParameterError, match=r"^ctl\.target: "):
        EntroPICParams(target=-0.1).check("ctl.")
    with pytest.raises(ParameterError, match=r"^ctl\.target: unknown schedule kind"):
        EntroPICParams(target={"kind": "zigzag"}).check("ctl.")


def test_defaults_are_the_official_ones_except_the_normalisation():
    p = EntroPICParams().check()
    assert (p.kp, p.ki, p.tau, p.alpha_limit, p.anti_windup) == (1.0, 0.01, 0.95, 1.0, "none")
    assert p.normalization == "all_tokens"


def test_check_of_some_fields_ignores_the_others():
    p = EntroPICParams(kp=-1.0, tau=0.5)
    assert p.check(fields=("tau",)) is p
    with pytest.raises(ParameterError, match="^kp must be"):
        p.check(fields=("tau", "kp"))


def test_the_target_is_checked_last():
    with pytest.raises(ParameterError, match="^tau must be"):
        EntroPICParams(target=-1.0, tau=2.0).check()


def test_the_entropic_lever_takes_its_defaults_and_errors_from_the_params():
    defaults = EntroPICParams()
    params = lever_parameters("entropic")
    for field in dataclasses.fields(EntroPICParams):
        if field.name != "integral_limit":  # the lever spells "no bound" None, the params 0
            assert params[field.name] == getattr(defaults, field.name), field.name
    assert inspect.signature(EntroPIC).parameters["integral_limit"].default is None
    for field, value, rule in BAD:
        with pytest.raises(ParameterError) as e:
            make_lever("entropic_p", **{field: value})
        assert str(e.value) == f"entropic_p.{field} must be {rule}, got {value!r}"


def test_the_controller_has_the_params():
    ctl = EntroPICParams(kp=2.0, ki=0.5, target=0.3, alpha_limit=0.4, integral_limit=3.0).controller()
    assert (float(ctl.kp), float(ctl.ki), ctl.target_at(7), ctl.output_limits) == (2.0, 0.5, 0.3, (-0.4, 0.4))
    assert ctl.integral_limit == 3.0 and EntroPICParams().controller().integral_limit is None


def test_need_and_is_finite_number():
    need(True, "x", "anything", 1)
    with pytest.raises(ValueError, match=r"^a\.b must be > 0, got -2$"):
        need(False, "a.b", "> 0", -2)
    assert [is_finite_number(x) for x in (1, 2.5, "1", b"1", True, math.nan, math.inf, None)] == [
        True,
        True,
        False,
        False,
        False,
        False,
        False,
        False,
    ]
