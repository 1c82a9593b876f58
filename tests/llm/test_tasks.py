"""Built-in tasks: prompt formats, the alphabet, countdown reachability, splits and their determinism.

Run: python -m pytest tests/llm/test_tasks.py
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from llm.data import Example
from llm.reward import safe_arithmetic
from llm.tasks import TASKS, alphabet, make_arithmetic, make_countdown, make_dataset

ARITH_PROMPT = re.compile(r"(0|[1-9][0-9]*)[-+*](0|[1-9][0-9]*)=")
COUNT_PROMPT = re.compile(r"[1-9]( [1-9]){1,4} -> [1-9][0-9]{0,2}:")


def _all_examples() -> list[Example]:
    out = []
    for d in range(1, 7):
        out += make_arithmetic(400, np.random.default_rng(d), d)
    for d in range(2, 6):
        out += make_countdown(500, np.random.default_rng(d), d)
    out += make_countdown(200, np.random.default_rng(9), 4, ops="/-")
    return out


def test_alphabet_covers_every_prompt_and_answer():
    chars = set(alphabet())
    exs = _all_examples()
    assert len(exs) > 4000
    used = set("".join(ex.prompt + ex.answer for ex in exs))
    assert used <= chars, used - chars
    assert alphabet().isascii() and len(set(alphabet())) == len(alphabet())
    assert set("0123456789+-*/()=>: ") <= used  # and nothing in it is dead weight


@pytest.mark.parametrize("difficulty", [1, 2, 3, 6])
def test_arithmetic_format(difficulty):
    exs = make_arithmetic(300, np.random.default_rng(0), difficulty)
    assert len(exs) == 300 and {ex.task for ex in exs} == {"arithmetic"}
    for ex in exs:
        m = ARITH_PROMPT.fullmatch(ex.prompt)
        assert m, ex.prompt
        a, b = int(m.group(1)), int(m.group(2))
        lo = 0 if difficulty == 1 else 10 ** (difficulty - 1)
        assert lo <= a < 10**difficulty and lo <= b < 10**difficulty
        op = ex.prompt[len(m.group(1))]
        assert int(ex.answer) == {"+": a + b, "-": a - b, "*": a * b}[op]
        assert str(int(ex.answer)) == ex.answer
    ops = {ex.prompt[len(ARITH_PROMPT.fullmatch(ex.prompt).group(1))] for ex in exs}
    assert ops == (set("+-*") if difficulty <= 2 else set("+-"))
    assert any(ex.answer.startswith("-") for ex in exs)  # negative answers occur


def test_arithmetic_ops_and_bad_arguments():
    exs = make_arithmetic(100, np.random.default_rng(0), 4, ops="*")
    assert all("*" in ex.prompt for ex in exs)
    with pytest.raises(ValueError, match="ops must be drawn from"):
        make_arithmetic(1, np.random.default_rng(0), 2, ops="/")
    for bad in (0, 7):
        with pytest.raises(ValueError, match="1..6 digits"):
            make_arithmetic(1, np.random.default_rng(0), bad)
    with pytest.raises(ValueError, match=">= 0"):
        make_arithmetic(-1, np.random.default_rng(0))
    assert make_arithmetic(0, np.random.default_rng(0)) == []


@pytest.mark.parametrize("difficulty", [2, 3, 4, 5])
def test_countdown_targets_are_reachable_from_the_answer(difficulty):
    exs = make_countdown(300, np.random.default_rng(difficulty), difficulty)
    for ex in exs:
        nums, target = ex.meta["numbers"], ex.meta["target"]
        assert ex.task == "countdown" and COUNT_PROMPT.fullmatch(ex.prompt), ex.prompt
        assert ex.prompt == f"{' '.join(map(str, nums))} -> {target}:"
        assert len(nums) == difficulty and nums == sorted(nums) and all(1 <= x <= 9 for x in nums)
        assert isinstance(target, int) and 0 < target < 1000
        value, literals = safe_arithmetic(ex.answer)
        assert value == target and sorted(literals) == nums, ex


def test_countdown_answers_use_few_parentheses():
    exs = make_countdown(500, np.random.default_rng(1), 4)
    assert not any(ex.answer.startswith("(") and ex.answer.endswith(")") and "(" not in ex.answer[1:-1] for ex in exs)
    assert sum("(" in ex.answer for ex in exs) < 0.8 * len(exs)
    assert {"+", "-", "*", "/"} <= set("".join(ex.answer for ex in exs))


def test_countdown_ops_and_bad_arguments():
    exs = make_countdown(100, np.random.default_rng(0), 3, ops="+*")
    assert set("".join(ex.answer for ex in exs)) <= set("0123456789+*()")
    with pytest.raises(ValueError, match="2..5 numbers"):
        make_countdown(1, np.random.default_rng(0), 6)
    with pytest.raises(ValueError, match="ops must be drawn from"):
        make_countdown(1, np.random.default_rng(0), 3, ops="%")


def test_generators_are_deterministic_in_the_rng():
    for make in TASKS.values():
        assert make(50, np.random.default_rng(7), 2) == make(50, np.random.default_rng(7), 2)
        assert make(50, np.random.default_rng(7), 2) != make(50, np.random.default_rng(8), 2)


@pytest.mark.parametrize(
    ("task", "difficulty", "n"), [("arithmetic", 2, 200), ("countdown", 3, 200), ("countdown", 2, 60)]
)
def test_splits_are_disjoint_deduplicated_and_deterministic(task, difficulty, n):
    tr, te = make_dataset(task, n, 50, difficulty, seed=1)
    assert len(tr) == n and len(te) == 50
    prompts = [e.prompt for e in tr + te]
    assert len(set(prompts)) == n + 50  # no duplicates, hence no prompt in both splits
    assert make_dataset(task, n, 50, difficulty, seed=1) == (tr, te)
    assert make_dataset(task, n, 50, difficulty, seed=2) != (tr, te)


def test_make_dataset_errors_and_edge_cases():
    with pytest.raises(
        ValueError, match=r"unknown task 'poems'; choose from \['arithmetic', 'countdown', 'wordproblem'\]"
    ):
        make_dataset("poems", 1, 1, 1, 0)
    with pytest.raises(ValueError, match="only 300 distinct"):
        make_dataset("arithmetic", 500, 0, 1, 0)  # only 10*10*3 one-digit problems exist
    with pytest.raises(ValueError, match=">= 0"):
        make_dataset("arithmetic", -1, 0, 1, 0)
    assert make_dataset("arithmetic", 300, 0, 1, 0)[1] == []
    tr, te = make_dataset("arithmetic", 0, 5, 3, 0, ops="+")
    assert tr == [] and len(te) == 5 and all("+" in e.prompt for e in te)


def test_wordproblems_are_gsm8k_rows_whose_solution_ends_in_the_answer():
    from llm.datasets import gsm8k_answer
    from llm.tasks import gsm8k_rows, make_wordproblem

    exs = make_wordproblem(300, np.random.default_rng(0), difficulty=2)
    for ex, row in zip(exs, gsm8k_rows(exs), strict=True):
        assert row["question"] == ex.prompt and gsm8k_answer(row["answer"]) == ex.answer and ex.task == "math"
        a, op, b = row["answer"].split(" = ")[0].split()[-3:]  # the worked step "x op y = answer"
        assert int(ex.answer) == {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
    assert {row["answer"].split(" = ")[0].split()[-2] for row in gsm8k_rows(exs)} == {"+", "-", "*"}
    assert all(int(ex.answer) >= 0 for ex in exs)
    with pytest.raises(ValueError, match="wordproblem difficulty must be 1..4"):
        make_wordproblem(1, np.random.default_rng(0), difficulty=5)
