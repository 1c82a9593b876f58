"""Built-in synthetic verifiable tasks: multi-digit arithmetic, countdown and word problems.

Prompts are short plain-ASCII strings a character-level model can learn; answers are short.
Every character either task writes is in `alphabet`, from which the tiny model's tokenizer is built.

- **arithmetic** (``difficulty`` = digits per operand, 1–6; one-digit operands include 0):
  ``"23+58="`` → ``"81"``. Operations + and − (answers may be negative, ``"12-47="`` →
  ``"-35"``), and also × when the operands have at most 2 digits; ``ops`` (a subset of ``"+-*"``)
  overrides that default.
- **countdown** (``difficulty`` = how many numbers, 2–5, each drawn from 1..9, listed in ascending
  order): ``"3 5 7 -> 22:"`` → ``"3*5+7"``. The target is built from a random binary expression
  over all the numbers in a random order with + − * / (``ops``, a subset of ``"+-*/"``, restricts
  them), where division is used only when exact so every intermediate value is an integer; the
  target is a positive integer below 1000 and the reference answer is that expression written
  with as few parentheses as possible. The reward accepts any expression using each number
  exactly once that evaluates exactly to the target (see `llm.reward`).

- **wordproblem** (``difficulty`` = most digits per quantity, 1–4): a one-step English word problem
  in GSM8K's layout, e.g. ``"Mia has 12 apples. She buys 7 more apples. How many apples does Mia
  have now?"`` → ``"19"``, task ``math`` (scored by math-verify); ``meta["solution"]`` holds the
  worked solution ending in ``#### 19``, and `gsm8k_rows` writes the rows as GSM8K does
  (``question``, ``answer``). Its prompts use letters, so it needs the BPE tokenizer of
  ``init-tiny --tokenizer bpe`` (the character tokenizer knows only `alphabet`).

`make_dataset` returns disjoint, deduplicated train/test splits, deterministic in the seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .data import Example

__all__ = [
    "COUNTDOWN_MAX_NUMBER",
    "COUNTDOWN_MAX_TARGET",
    "TASKS",
    "alphabet",
    "gsm8k_rows",
    "make_arithmetic",
    "make_countdown",
    "make_dataset",
    "make_wordproblem",
    "wordproblem_corpus",
]

COUNTDOWN_MAX_NUMBER = 9
COUNTDOWN_MAX_TARGET = 1000  # exclusive
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


def alphabet() -> str:
    """Every character a built-in task writes in a prompt or an answer."""
    return "0123456789+-*/()=>: "


def _check_ops(ops: str, allowed: str) -> str:
    """``ops`` without repeats, or ValueError if it uses anything outside ``allowed``."""
    if not isinstance(ops, str) or not set(ops) <= set(allowed):
        raise ValueError(f"ops must be drawn from {allowed!r}, got {ops!r}")
    return "".join(dict.fromkeys(ops))


def _check_n(n: int) -> None:
    if n < 0:
        raise ValueError(f"number of examples must be >= 0, got {n}")


# ----------------------------------------------------------------- arithmetic
def make_arithmetic(n: int, rng: np.random.Generator, difficulty: int = 2, ops: str = "") -> list[Example]:
    """``n`` problems ``"a op b="`` with ``difficulty``-digit operands and their integer answers.

    ``ops`` picks the operations from ``"+-*"``; empty means ``"+-*"`` up to 2 digits, ``"+-"`` above.
    """
    _check_n(n)
    if not 1 <= difficulty <= 6:
        raise ValueError(f"arithmetic difficulty must be 1..6 digits, got {difficulty}")
    ops = _check_ops(ops, "+-*") or ("+-*" if difficulty <= 2 else "+-")
    lo, hi = (0 if difficulty == 1 else 10 ** (difficulty - 1)), 10**difficulty
    out = []
    for _ in range(n):
        a, b = (int(x) for x in rng.integers(lo, hi, size=2))
        op = ops[int(rng.integers(len(ops)))]
        value = a + b if op == "+" else a - b if op == "-" else a * b
        out.append(Example(prompt=f"{a}{op}{b}=", answer=str(value), task="arithmetic"))
    return out


# ------------------------------------------------------------------ countdown
@dataclass(frozen=True)
class _Expr:
    text: str
    value: Fraction
    op: str | None = None  # the outermost operator; None for a number


def _combine(a: _Expr, op: str, b: _Expr) -> _Expr:
    """``a op b`` with parentheses only where precedence or a non-commutative op needs them."""
    left = f"({a.text})" if a.op and _PRECEDENCE[a.op] < _PRECEDENCE[op] else a.text
    right_needs = b.op and (
        _PRECEDENCE[b.op] < _PRECEDENCE[op] or (_PRECEDENCE[b.op] == _PRECEDENCE[op] and op in "-/")
    )
    right = f"({b.text})" if right_needs else b.text
    if op == "+":
        value = a.value + b.value
    elif op == "-":
        value = a.value - b.value
    elif op == "*":
        value = a.value * b.value
    else:
        value = a.value / b.value
    return _Expr(f"{left}{op}{right}", value, op)


def _random_expression(nums: list[int], rng: np.random.Generator, ops: str) -> _Expr | None:
    """A random binary expression over all ``nums`` (exact divisions only); None if ``ops`` cannot go on."""
    items = [_Expr(str(x), Fraction(x)) for x in rng.permutation(nums).tolist()]
    while len(items) > 1:
        i = int(rng.integers(len(items) - 1))
        a, b = items[i], items[i + 1]
        exact = b.value != 0 and (a.value / b.value).denominator == 1
        usable = [op for op in ops if op != "/" or exact]
        if not usable:
            return None
        items[i : i + 2] = [_combine(a, usable[int(rng.integers(len(usable)))], b)]
    return items[0]


def make_countdown(n: int, rng: np.random.Generator, difficulty: int = 3, ops: str = "") -> list[Example]:
    """``n`` countdown problems over ``difficulty`` numbers in 1..9 with a reachable target.

    ``ops`` restricts the operators of the generating expression (default ``"+-*/"``).
    """
    _check_n(n)
    if not 2 <= difficulty <= 5:
        raise ValueError(f"countdown difficulty must be 2..5 numbers, got {difficulty}")
    ops = _check_ops(ops, "+-*/") or "+-*/"
    out: list[Example] = []
    budget = 1000 * (n + 1)
    while len(out) < n:
        budget -= 1
        if budget < 0:
            raise ValueError(f"could not build countdown problems with ops {ops!r} at difficulty {difficulty}")
        nums = sorted(int(x) for x in rng.integers(1, COUNTDOWN_MAX_NUMBER + 1, size=difficulty))
        expr = _random_expression(nums, rng, ops)
        if expr is None or expr.value.denominator != 1 or not 0 < expr.value < COUNTDOWN_MAX_TARGET:
            continue
        target = int(expr.value)
        prompt = f"{' '.join(map(str, nums))} -> {target}:"
        out.append(Example(prompt, expr.text, "countdown", {"numbers": nums, "target": target}))
    return out


# ---------------------------------------------------------------- word problems
_NAMES = (("Mia", "She"), ("Tom", "He"), ("Ava", "She"), ("Leo", "He"), ("Zoe", "She"), ("Sam", "He"))
_ITEMS = ("apples", "books", "marbles", "coins", "stickers", "pencils", "cards", "shells")
_KINDS = ("add", "sub", "mul")


def _wordproblem(kind: str, name: str, pronoun: str, item: str, a: int, b: int) -> tuple[str, str, int]:
    """(question, worked solution ending in "#### answer", answer) of one problem."""
    if kind == "add":
        q = f"{name} has {a} {item}. {pronoun} buys {b} more {item}. How many {item} does {name} have now?"
        value, work = a + b, f"{name} has {a} + {b} = {a + b} {item}."
    elif kind == "sub":
        a, b = max(a, b), min(a, b)
        q = f"{name} has {a} {item}. {pronoun} gives away {b} {item}. How many {item} does {name} have left?"
        value, work = a - b, f"{name} has {a} - {b} = {a - b} {item} left."
    else:
        q = f"{name} has {a} boxes with {b} {item} in each box. How many {item} does {name} have in all?"
        value, work = a * b, f"{name} has {a} * {b} = {a * b} {item}."
    return q, f"{work}\n#### {value}", value


def make_wordproblem(n: int, rng: np.random.Generator, difficulty: int = 2, ops: str = "") -> list[Example]:
    """``n`` one-step word problems (add, take away, multiply) over quantities of up to ``difficulty`` digits.

    ``ops`` picks the kinds from ``"+-*"`` (default all; × uses at most 2-digit factors).
    """
    _check_n(n)
    if not 1 <= difficulty <= 4:
        raise ValueError(f"wordproblem difficulty must be 1..4 digits, got {difficulty}")
    kinds = [k for k, op in zip(_KINDS, "+-*", strict=True) if op in (_check_ops(ops, "+-*") or "+-*")]
    out = []
    for _ in range(n):
        kind = kinds[int(rng.integers(len(kinds)))]
        hi = 10 ** min(difficulty, 2 if kind == "mul" else difficulty)
        a, b = (int(x) for x in rng.integers(1, hi, size=2))
        name, pronoun = _NAMES[int(rng.integers(len(_NAMES)))]
        q, solution, value = _wordproblem(kind, name, pronoun, _ITEMS[int(rng.integers(len(_ITEMS)))], a, b)
        out.append(Example(prompt=q, answer=str(value), task="math", meta={"solution": solution}))
    return out


def gsm8k_rows(examples: list[Example]) -> list[dict[str, str]]:
    """Word problems as GSM8K rows: ``{"question", "answer"}``, the answer a worked solution ending in ``#### n``."""
    return [{"question": ex.prompt, "answer": ex.meta.get("solution", f"#### {ex.answer}")} for ex in examples]


def wordproblem_corpus(n: int = 2000, seed: int = 0) -> list[str]:
    """Texts to train a tokenizer on: questions, solutions and answers of ``n`` word problems."""
    rng = np.random.default_rng(seed)
    examples = make_wordproblem(n, rng, difficulty=3)
    return [t for ex in examples for t in (ex.prompt, ex.meta["solution"], ex.answer)]


# -------------------------------------------------------------------- splits
TASKS: dict[str, Callable[..., list[Example]]] = {
    "arithmetic": make_arithmetic,
    "countdown": make_countdown,
    "wordproblem": make_wordproblem,
}


def make_dataset(
    task: str, n_train: int, n_test: int, difficulty: int, seed: int, ops: str = "", *, cap_train: bool = False
) -> tuple[list[Example], list[Example]]:
    """Disjoint train/test splits (no prompt in both, no duplicates), deterministic in ``seed``.

    ``ops`` restricts the operations (arithmetic: from ``"+-*"``; countdown: from ``"+-*/"``).
    Raises ValueError for an unknown task, or when the task has too few distinct prompts; with
    ``cap_train`` the training split is shortened instead, to the distinct prompts left after a
    full test split (the same prompts for the same arguments), and only a short test split raises.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {sorted(TASKS)}")
    if n_train < 0 or n_test < 0:
        raise ValueError(f"split sizes must be >= 0, got n_train={n_train}, n_test={n_test}")
    rng = np.random.default_rng(seed)
    want = n_train + n_test
    seen: dict[str, Example] = {}
    for _ in range(200):  # enough draws to find all but a vanishing fraction of the distinct prompts
        if len(seen) >= want:
            break
        for ex in TASKS[task](max(want - len(seen), 16), rng, difficulty, ops):
            seen.setdefault(ex.prompt, ex)
    if cap_train and n_test < len(seen) < want:
        n_train, want = len(seen) - n_test, len(seen)
    if len(seen) < want:
        raise ValueError(
            f"found only {len(seen)} distinct {task} prompts at difficulty {difficulty}, need {want}; "
            "ask for fewer or raise the difficulty"
        )
    examples = list(seen.values())[:want]
    examples = [examples[i] for i in rng.permutation(len(examples))]
    return examples[:n_train], examples[n_train:]
