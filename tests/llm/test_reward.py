"""Rewards: right and wrong answers, hostile text (bounded, never raises, no eval), math_verify, the registry.

Run: python -m pytest tests/llm/test_reward.py
"""

from __future__ import annotations

import ast
import builtins
import re
import threading
import time
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import llm.reward as reward_mod
from llm.data import Example
from llm.reward import REWARDS, extract_answer, get_reward, register_reward, safe_arithmetic, score
from llm.tasks import make_arithmetic, make_countdown

ARITH = Example("12+30=", "42")
NEG = Example("12-47=", "-35")
COUNT = Example("3 5 7 -> 22:", "3*5+7", "countdown", {"numbers": [3, 5, 7], "target": 22})
BUDGET_S = 0.05


# ---------------------------------------------------------------- arithmetic
@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("42", 1),
        (" 42 \n junk", 1),
        ("+42", 1),
        ("42\r\n", 1),
        ("\t42  ", 1),
        ("042", 1),
        ("42.0", 0),
        ("41", 0),
        ("4 2", 0),
        ("", 0),
        ("40+2", 0),
        ("\n42", 0),
        ("42abc", 0),
        ("--42", 0),
        ("４２", 0),
        ("0" * 19 + "42", 0),
        ("4_2", 0),
        ("42e0", 0),
    ],
)
def test_arithmetic(text, want):
    assert score([text], [ARITH]) == [want]


def test_arithmetic_negative_and_bad_gold():
    assert score(["-35", "35", "- 35"], [NEG] * 3) == [1.0, 0.0, 0.0]
    assert score(["42"], [Example("p", "forty-two")]) == [0.0]


def test_extract_answer_takes_the_first_line():
    assert extract_answer("  12 \nthen 13") == "12"
    assert extract_answer("") == "" and extract_answer("\n\n") == ""


# ----------------------------------------------------------------- countdown
@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("3*5+7", 1),
        ("7+5*3", 1),
        ("(3*5)+7", 1),
        ("3*5+7\nmore", 1),
        (" 3 * 5 + 7 ", 1),
        ("((3*5))+(7)", 1),
        ("3*5+7+0", 0),  # a number that was not given
        ("15+7", 0),  # 15 is not one of the numbers
        ("3*5", 0),  # 7 unused
        ("3*5+7+3-3", 0),  # 3 used three times
        ("3*(5+7)", 0),  # wrong value
        ("22", 0),
        ("3/0+5+7", 0),
        ("3**5", 0),
        ("-3+5*7", 0),
        ("3*5++7", 0),
        ("03*5+7", 0),
        ("3*5+7)", 0),
        ("(3*5+7", 0),
        ("3 5 7", 0),
        ("3*5+7=22", 0),
        ("3×5+7", 0),
        ("3*5+7.0", 0),
    ],
)
def test_countdown(text, want):
    assert score([text], [COUNT]) == [want]


def test_countdown_is_exact_and_reads_the_prompt_without_meta():
    ex = Example("1 3 3 -> 1:", "1", "countdown", {"numbers": [1, 3, 3], "target": 1})
    assert score(["1/3*3", "3/3*1", "(1/3)*3"], [ex] * 3) == [1.0, 1.0, 1.0]  # no 0.999… rounding
    assert safe_arithmetic("7/2") == (Fraction(7, 2), [7, 2])
    assert safe_arithmetic("8-2-3") == (3, [8, 2, 3]) and safe_arithmetic("8/2/2") == (2, [8, 2, 2])
    assert safe_arithmetic("2+3*4") == (14, [2, 3, 4]) and safe_arithmetic("(2+3)*4") == (20, [2, 3, 4])
    bare = Example("3 5 7 -> 22:", "", "countdown")
    assert score(["3*5+7", "3*5+6"], [bare, bare]) == [1.0, 0.0]
    assert score(["3*5+7"], [Example("no numbers here", "", "countdown")]) == [0.0]
    assert score(["1+1"], [Example("p", "", "countdown", {"numbers": [True, 1], "target": 2})]) == [0.0]


def test_countdown_bounds():
    assert safe_arithmetic("+".join(["1"] * 32)) is not None  # 63 nodes
    assert safe_arithmetic("+".join(["1"] * 33)) is None  # 65 nodes
    assert safe_arithmetic("(" * 32 + "1" + ")" * 32) is not None
    assert safe_arithmetic("(" * 33 + "1" + ")" * 33) is None
    assert safe_arithmetic("1000000*1") is not None and safe_arithmetic("1000001*1") is None
    assert safe_arithmetic("1+" * 49 + "1 ") is None  # over 100 characters


# ------------------------------------------------------------ hostile inputs
HOSTILE = [
    "__import__('os').system('true')",
    "lambda: 1",
    "(lambda: 3*5+7)()",
    "(1).__class__",
    "3 .real",
    "9**9**9**9",
    "9" * 400 + "*3+5+7",
    str(9**50),
    "[1]*10**9",
    "(" * 500 + "1" + ")" * 500,
    "1+" * 400 + "1",
    "1" * 5000,
    "'a'*3",
    "open('x')",
    "1 if 1 else 2",
    "\x00\x01",
    "３+５+７",
    "1e308*1e308",
    "not 1",
    "1 << 100000",
    "3*5+7" + "+0" * 10_000,
    "x" * 1_000_000,
    "\u202e7+5*3",
    "3*5+7; import os",
    "{3*5+7}",
    "True+21",
    "0x16",
    "22j",
    "ﾠ",
    "\ud800",
]


def _assert_fast_zero(texts: list[str], examples: list[Example]) -> None:
    t0 = time.perf_counter()
    assert score(texts, examples) == [0.0] * len(texts)
    assert time.perf_counter() - t0 < BUDGET_S * len(texts)


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_strings_score_zero_quickly(text):
    _assert_fast_zero([text, text, text], [ARITH, NEG, COUNT])


_NUMS = st.integers(0, 10**30).map(str)
_PIECES = st.sampled_from(["(", ")", "+", "-", "*", "/", "**", " ", "3", "5", "7", "0", ".", "e", "__", "\n", "'"])
HOSTILE_TEXT = st.one_of(
    st.text(max_size=300),
    st.text(alphabet="0123456789+-*/() ", max_size=200),
    st.lists(st.one_of(_PIECES, _NUMS), max_size=80).map("".join),
    st.integers(1, 3000).map(lambda k: "(" * k + "3*5+7" + ")" * k),
    st.integers(1, 3000).map(lambda k: "-" * k + "22"),
    st.integers(1, 200).map(lambda k: "9**" * k + "9"),
    st.sampled_from(HOSTILE),
    st.tuples(st.sampled_from(HOSTILE), st.text(max_size=20)).map("".join),
)


def _valid_count(text: str) -> bool:
    parsed = safe_arithmetic(extract_answer(text))
    return parsed is not None and parsed[0] == 22 and sorted(parsed[1]) == [3, 5, 7]


@given(HOSTILE_TEXT)
def test_hostile_text_never_raises_is_fast_and_scores_zero_unless_valid(text):
    t0 = time.perf_counter()
    r_arith, r_neg, r_count = score([text, text, text], [ARITH, NEG, COUNT])
    assert time.perf_counter() - t0 < 3 * BUDGET_S
    line = text.split("\n", 1)[0].strip()
    assert r_arith == float(bool(re.fullmatch(r"\+?[0-9]{1,19}|[0-9]{20}", line)) and int(line) == 42)
    assert r_neg == float(line == "-35")
    assert r_count == float(_valid_count(text))


@given(st.text(alphabet="0123456789+-*/() ", max_size=120))
def test_arithmetic_looking_text_is_bounded(text):
    out = safe_arithmetic(text)
    assert out is None or (len(out[1]) <= 64 and all(0 <= x <= 10**6 for x in out[1]))


def test_no_eval_exec_compile_or_ast_is_ever_used(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("model text must never be evaluated or compiled")

    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, boom)
    monkeypatch.setattr(ast, "parse", boom)
    assert score(
        ["3*5+7", "42", "-35", "7+5*3", "3*(5+7)", "__import__('os')", "43"],
        [COUNT, ARITH, NEG, COUNT, COUNT, COUNT, ARITH],
    ) == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]


# ----------------------------------------- generated answers are always right
@given(seed=st.integers(0, 2**32), difficulty=st.integers(1, 6), ops=st.sampled_from(["", "+", "-", "*", "+-*"]))
def test_generated_arithmetic_answers_score_one(seed, difficulty, ops):
    exs = make_arithmetic(20, np.random.default_rng(seed), difficulty, ops)
    assert score([ex.answer for ex in exs], exs) == [1.0] * len(exs)
    assert score([str(int(ex.answer) + 1) for ex in exs], exs) == [0.0] * len(exs)


@given(seed=st.integers(0, 2**32), difficulty=st.integers(2, 5), ops=st.sampled_from(["", "+*", "-/", "+-*/"]))
def test_generated_countdown_answers_score_one(seed, difficulty, ops):
    exs = make_countdown(20, np.random.default_rng(seed), difficulty, ops)
    assert score([ex.answer for ex in exs], exs) == [1.0] * len(exs)
    assert score([f"({ex.answer})+1" for ex in exs], exs) == [0.0] * len(exs)  # off by one
    assert score([ex.answer + "\nand more" for ex in exs], exs) == [1.0] * len(exs)


# ---------------------------------------------------------------------- math
MATH_4 = Example("2+2=", "4", "math")
MATH_HALF = Example("x=", "0.5", "math")


@pytest.mark.parametrize(
    ("completion", "example", "want"),
    [
        ("\\boxed{4}", MATH_4, 1),
        ("The answer is $4$.", MATH_4, 1),
        ("4.0", MATH_4, 1),
        ("\\boxed{5}", MATH_4, 0),
        ("1/2", MATH_HALF, 1),
        ("\\frac{1}{2}", MATH_HALF, 1),
        ("\\boxed{\\frac12}", MATH_HALF, 1),
        ("0.33", Example("x=", "1/3", "math"), 0),
        ("0.333333", Example("x=", "\\frac{1}{3}", "math"), 1),
        ("\\boxed{2\\pi}", Example("x=", "2\\pi", "math"), 1),
        ("2", Example("x=", "2\\pi", "math"), 0),
        ("$1+x$", Example("x=", "x+1", "math"), 1),
        ("}}}{{{\\frac", MATH_4, 0),
        ("", MATH_4, 0),
        ("four", MATH_4, 0),
        ("4", Example("x=", "", "math"), 0),
    ],
)
def test_math_verify(completion, example, want):
    assert score([completion], [example]) == [want]


def test_math_works_off_the_main_thread():
    out: list[list[float]] = []
    worker = threading.Thread(target=lambda: out.append(score(["\\boxed{4}", "\\boxed{5}"], [MATH_4, MATH_4])))
    worker.start()
    worker.join(timeout=30)
    assert out == [[1.0, 0.0]]


def test_math_is_bounded_in_time(monkeypatch):
    monkeypatch.setattr(reward_mod, "MATH_TIMEOUT_S", 1)
    t0 = time.perf_counter()
    assert score(["\\boxed{9^{9^{9^{9}}}}", "1" * 100_000], [MATH_4, MATH_4]) == [0.0, 0.0]
    assert time.perf_counter() - t0 < 4


def test_math_runs_isolated_and_reports_counts():
    assert "math" in reward_mod.ISOLATED and "arithmetic" not in reward_mod.ISOLATED
    scores = reward_mod.score_batch(["\\boxed{4}", "42", "\\boxed{5}"], [MATH_4, ARITH, MATH_4])
    assert scores.rewards == [1.0, 1.0, 0.0]
    assert (scores.timeouts, scores.crashes) == (0, 0)
    with pytest.raises(ValueError, match="isolated reward 'test_iso' must be a module-level function"):
        register_reward("test_iso", isolated=True)(lambda c, e: 0.0)
    assert "test_iso" not in REWARDS


# ------------------------------------------------------------------ registry
def test_registry():
    assert {"arithmetic", "countdown", "math"} <= set(REWARDS)
    assert get_reward("countdown") is reward_mod.countdown_reward
    with pytest.raises(ValueError, match="already registered"):
        register_reward("arithmetic")(lambda c, e: 0.0)
    with pytest.raises(ValueError, match=r"unknown reward 'poetry'; registered: \['arithmetic', "):
        get_reward("poetry")
    with pytest.raises(ValueError, match="2 completions for 1 examples"):
        score(["a", "b"], [ARITH])

    @register_reward("test_length")
    def length(completion, example):
        return float(len(completion) == len(example.answer))

    register_reward("test_bad")(lambda c, e: float("nan"))  # any finite float is a reward (−1/+1, penalties)
    try:
        assert score(["ab", "abc"], [Example("p", "xy", "test_length")] * 2) == [1.0, 0.0]
        with pytest.raises(ValueError, match=r"reward 'test_bad' returned nan, not a finite number"):
            score(["x"], [Example("p", "x", "test_bad")])
    finally:
        REWARDS.pop("test_length")
        REWARDS.pop("test_bad")
