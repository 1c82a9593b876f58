"""Built-in synthetic verifiable tasks: multi-digit arithmetic and countdown.

Prompts are short ASCII strings a character-level model can learn; answers are short.

- **arithmetic** (``difficulty`` = digits per operand, 1–6): ``"23+58="`` → ``"81"``;
  operations + and − (answers may be negative), and × for 1- and 2-digit operands.
- **countdown** (``difficulty`` = how many numbers, 2–5, each in 1..9):
  ``"3 5 7>22:"`` → any expression using each number exactly once with + − * / and
  parentheses that evaluates exactly to the target, e.g. ``"3*5+7"``. Targets are built from a
  random expression over all the numbers (division only when exact), positive and < 1000.

`make_dataset` returns disjoint, deduplicated train/test splits, deterministic in the seed.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import numpy as np

from .data import Example

__all__ = ["TASKS", "alphabet", "make_arithmetic", "make_countdown", "make_dataset"]


def alphabet() -> str:
    """Every character a built-in task writes in a prompt or an answer."""
    return "0123456789+-*/()=>: "


def make_arithmetic(n: int, rng: np.random.Generator, difficulty: int = 2) -> list[Example]:
    """``n`` problems ``a op b =`` with ``difficulty``-digit operands."""
    if not 1 <= difficulty <= 6:
        raise ValueError(f"arithmetic difficulty must be 1..6 digits, got {difficulty}")
    lo, hi = (0 if difficulty == 1 else 10 ** (difficulty - 1)), 10**difficulty
    ops = "+-*" if difficulty <= 2 else "+-"
    out = []
    for _ in range(n):
        a, b = (int(x) for x in rng.integers(lo, hi, size=2))
        op = ops[int(rng.integers(len(ops)))]
        value = a + b if op == "+" else a - b if op == "-" else a * b
        out.append(Example(prompt=f"{a}{op}{b}=", answer=str(value), task="arithmetic"))
    return out


def _random_expression(nums: list[int], rng: np.random.Generator) -> tuple[str, Fraction]:
    """Combine all numbers in random order with random operators (exact divisions only)."""
    items: list[tuple[str, Fraction]] = [(str(x), Fraction(x)) for x in rng.permutation(nums).tolist()]
    while len(items) > 1:
        i = int(rng.integers(len(items) - 1))
        (sa, va), (sb, vb) = items[i], items[i + 1]
        op = "+-*/"[int(rng.integers(4))]
        if op == "/" and (vb == 0 or (va / vb).denominator != 1):
            op = "+"  # keep every intermediate value an integer
        if op == "+":
            value = va + vb
        elif op == "-":
            value = va - vb
        elif op == "*":
            value = va * vb
        else:
            value = va / vb
        # parenthesise compound operands so the text evaluates exactly as built
        items[i : i + 2] = [(f"{_wrap(sa)}{op}{_wrap(sb)}", value)]
    text, value = items[0]
    if text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1]
    return text, value


def _wrap(text: str) -> str:
    return text if text.isdigit() else f"({text})"


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if depth < 0:
            return False
    return depth == 0


def make_countdown(n: int, rng: np.random.Generator, difficulty: int = 3) -> list[Example]:
    """``n`` countdown problems over ``difficulty`` numbers in 1..9 with a reachable target."""
    if not 2 <= difficulty <= 5:
        raise ValueError(f"countdown difficulty must be 2..5 numbers, got {difficulty}")
    out = []
    while len(out) < n:
        nums = sorted(int(x) for x in rng.integers(1, 10, size=difficulty))
        text, value = _random_expression(nums, rng)
        if value.denominator != 1 or not 0 < value < 1000:
            continue
        target = int(value)
        prompt = f"{' '.join(map(str, nums))}>{target}:"
        out.append(Example(prompt=prompt, answer=text, task="countdown", meta={"numbers": nums, "target": target}))
    return out


TASKS: dict[str, Callable[..., list[Example]]] = {"arithmetic": make_arithmetic, "countdown": make_countdown}


def make_dataset(task: str, n_train: int, n_test: int, difficulty: int, seed: int) -> tuple[list[Example], list[Example]]:
    """Disjoint train/test splits (no prompt in both, no duplicates), deterministic in ``seed``."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {sorted(TASKS)}")
    rng = np.random.default_rng(seed)
    seen: dict[str, Example] = {}
    attempts = 0
    want = n_train + n_test
    while len(seen) < want:
        batch = TASKS[task](max(want - len(seen), 16), rng, difficulty)
        for ex in batch:
            seen.setdefault(ex.prompt, ex)
        attempts += 1
        if attempts > 200:
            raise ValueError(
                f"only {len(seen)} distinct {task} prompts at difficulty {difficulty}; ask for fewer or raise it"
            )
    examples = list(seen.values())[:want]
    order = rng.permutation(len(examples))
    examples = [examples[i] for i in order]
    return examples[:n_train], examples[n_train:]
