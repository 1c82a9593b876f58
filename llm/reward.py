"""Verifiable rewards with a registry. Model text is parsed, never evaluated.

A reward is ``fn(completion: str, example: Example) -> float`` in [0, 1]; the built-ins are
binary. The completion is what the model generated after the prompt (EOS removed); only its
first line counts, stripped of surrounding whitespace.

- ``arithmetic``: the answer is an integer literal (optional sign, ≤ 20 characters) equal to
  the example's answer.
- ``countdown``: the answer is an arithmetic expression over integer literals with + − * /
  and parentheses, parsed by `ast` and checked against a whitelist, then evaluated by our own
  walker over exact fractions; it must use each given number exactly once and equal the
  target. Work is bounded before and during parsing (length, node count, depth, literal size).
- ``math``: `math_verify` equivalence of the completion and the answer (LaTeX or plain),
  with its own timeouts when running in the main thread and a length cap.

Register your own with ``@register_reward("name")``; an example's ``task`` picks its reward.
"""

from __future__ import annotations

import ast
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable
from fractions import Fraction

from .data import Example

__all__ = ["REWARDS", "RewardFn", "extract_answer", "get_reward", "register_reward", "safe_arithmetic", "score"]

log = logging.getLogger(__name__)

RewardFn = Callable[[str, Example], float]
REWARDS: dict[str, RewardFn] = {}

MAX_EXPR_CHARS = 100
MAX_NODES = 64
MAX_DEPTH = 32
MAX_LITERAL = 10**6
_INT = re.compile(r"[+-]?\d{1,19}")


def register_reward(name: str) -> Callable[[RewardFn], RewardFn]:
    """Decorator adding a reward under ``name`` (refuses duplicates)."""

    def deco(fn: RewardFn) -> RewardFn:
        if name in REWARDS:
            raise ValueError(f"reward {name!r} is already registered")
        REWARDS[name] = fn
        return fn

    return deco


def get_reward(name: str) -> RewardFn:
    if name not in REWARDS:
        raise ValueError(f"unknown reward {name!r}; registered: {sorted(REWARDS)}")
    return REWARDS[name]


def score(completions: list[str], examples: list[Example]) -> list[float]:
    """Reward of each completion under its example's task."""
    if len(completions) != len(examples):
        raise ValueError(f"{len(completions)} completions for {len(examples)} examples")
    return [float(get_reward(ex.task)(c, ex)) for c, ex in zip(completions, examples, strict=True)]


def extract_answer(completion: str) -> str:
    """The first line of the completion, stripped."""
    return completion.strip().split("\n", 1)[0].strip()


@register_reward("arithmetic")
def arithmetic_reward(completion: str, example: Example) -> float:
    text = extract_answer(completion)
    if not _INT.fullmatch(text):
        return 0.0
    try:
        return float(int(text) == int(example.answer))
    except ValueError:
        return 0.0


# ----------------------------------------------------------------- countdown
class _Rejected(Exception):
    pass


_BINOPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b}


def _walk(node: ast.AST, depth: int, literals: list[int]) -> Fraction:
    if depth > MAX_DEPTH:
        raise _Rejected("too deep")
    if isinstance(node, ast.Expression):
        return _walk(node.body, depth + 1, literals)
    if isinstance(node, ast.Constant) and type(node.value) is int:
        if not 0 <= node.value <= MAX_LITERAL:
            raise _Rejected("literal out of range")
        literals.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.BinOp):
        left = _walk(node.left, depth + 1, literals)
        right = _walk(node.right, depth + 1, literals)
        if isinstance(node.op, ast.Div):
            if right == 0:
                raise _Rejected("division by zero")
            return left / right
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise _Rejected(f"operator {type(node.op).__name__} not allowed")
        return op(left, right)
    raise _Rejected(f"{type(node).__name__} not allowed")


def safe_arithmetic(text: str) -> tuple[Fraction, list[int]] | None:
    """Value and integer literals of an expression of + − * / ( ) and integers; None if not one.

    No ``eval``: the text is length-checked, parsed to an AST, every node is whitelisted and the
    tree is evaluated by our own recursive walker over `fractions.Fraction`.
    """
    if len(text) > MAX_EXPR_CHARS or not text or not set(text) <= set("0123456789+-*/() "):
        return None
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        return None
    literals: list[int] = []
    try:
        value = _walk(tree, 0, literals)
    except (_Rejected, RecursionError, ZeroDivisionError, OverflowError):
        return None
    return value, literals


@register_reward("countdown")
def countdown_reward(completion: str, example: Example) -> float:
    numbers = example.meta.get("numbers")
    target = example.meta.get("target")
    if not isinstance(numbers, list) or not isinstance(target, int):
        return 0.0
    parsed = safe_arithmetic(extract_answer(completion))
    if parsed is None:
        return 0.0
    value, literals = parsed
    return float(Counter(literals) == Counter(numbers) and value == target)


# ---------------------------------------------------------------------- math
@register_reward("math")
def math_reward(completion: str, example: Example) -> float:
    from math_verify import parse, verify

    text = completion.strip()[:1000]
    if not text:
        return 0.0
    main = threading.current_thread() is threading.main_thread()  # its timeouts use signals
    timeout = 5 if main else None
    try:
        gold = parse(example.answer, parsing_timeout=timeout)
        pred = parse(text, parsing_timeout=timeout)
        return float(bool(gold) and bool(pred) and verify(gold, pred, timeout_seconds=timeout))
    except Exception as exc:  # math_verify raises a variety of parser errors on junk
        log.debug("math_verify failed on %r: %s", text[:80], exc)
        return 0.0
