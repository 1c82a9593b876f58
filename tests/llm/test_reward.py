"""Rewards: right and wrong answers, hostile text, no eval, the registry.

Run: python -m pytest tests/llm/test_reward.py
"""

from __future__ import annotations

import builtins
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm.data import Example
from llm.reward import REWARDS, get_reward, register_reward, safe_arithmetic, score

ARITH = Example("12+30=", "42")
COUNT = Example("3 5 7>22:", "3*5+7", "countdown", {"numbers": [3, 5, 7], "target": 22})


@pytest.mark.parametrize(
    ("text", "want"),
    [("42", 1), (" 42 \n junk", 1), ("+42", 1), ("42.0", 0), ("41", 0), ("4 2", 0), ("", 0), ("40+2", 0)],
)
def test_arithmetic(text, want):
    assert score([text], [ARITH]) == [want]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("3*5+7", 1), ("7+5*3", 1), ("(3*5)+7", 1), ("3*5+7\nmore", 1),
        ("3*5+7+0", 0),  # a number that was not given
        ("15+7", 0),  # 15 is not one of the numbers
        ("3*5", 0),  # 7 unused
        ("3*(5+7)", 0),  # wrong value
        ("22", 0), ("3/0+5+7", 0), ("3**5", 0), ("-3+5*7", 0),
    ],
)
def test_countdown(text, want):
    assert score([text], [COUNT]) == [want]


def test_exact_fractions():
    ex = Example("1 3 3>1:", "1", "countdown", {"numbers": [1, 3, 3], "target": 1})
    assert score(["(1/3)*3"], [ex]) == [1.0]  # exact: no 0.999… rounding
    assert safe_arithmetic("7/2") == (pytest.approx(3.5), [7, 2])


def test_math_verify():
    ex = Example("x=", "1/2", "math")
    assert score(["\\boxed{\\frac{1}{2}}"], [ex]) == [1.0]
    assert score(["0.5"], [ex]) == [1.0]
    assert score(["1/3"], [ex]) == [0.0]
    assert score(["}}}{{{\\frac"], [ex]) == [0.0]


HOSTILE = [
    "__import__('os').system('true')", "lambda: 1", "(1).__class__", "9**9**9**9", "[1]*10**9",
    "(" * 500 + "1" + ")" * 500, "1+" * 400 + "1", "1" * 5000, "'a'*3", "open('x')", "1 if 1 else 2",
    "\x00\x01", "３+５", "1e308*1e308", "not 1", "1 << 100000",
]


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("ex", [ARITH, COUNT])
def test_hostile_strings_score_zero_quickly(text, ex):
    t0 = time.perf_counter()
    assert score([text], [ex]) == [0.0]
    assert time.perf_counter() - t0 < 0.05


@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text):
    t0 = time.perf_counter()
    r = score([text, text], [ARITH, COUNT])
    assert all(x in (0.0, 1.0) for x in r)
    assert time.perf_counter() - t0 < 0.05


@given(st.text(alphabet="0123456789+-*/() ", max_size=120))
def test_arithmetic_looking_text_is_bounded(text):
    out = safe_arithmetic(text)
    assert out is None or len(out[1]) <= 64


def test_no_eval_is_ever_used(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("eval/exec must not be called on model text")

    monkeypatch.setattr(builtins, "eval", boom)
    monkeypatch.setattr(builtins, "exec", boom)
    assert score(["3*5+7", "42"], [COUNT, ARITH]) == [1.0, 1.0]


def test_registry():
    assert {"arithmetic", "countdown", "math"} <= set(REWARDS)
    with pytest.raises(ValueError, match="already registered"):
        register_reward("arithmetic")(lambda c, e: 0.0)
    with pytest.raises(ValueError, match="unknown reward 'poetry'"):
        get_reward("poetry")

    @register_reward("test_length")
    def length(completion, example):
        return float(len(completion) == len(example.answer))

    try:
        assert score(["ab"], [Example("p", "xy", "test_length")]) == [1.0]
    finally:
        REWARDS.pop("test_length")
