"""Verifiable rewards with a registry. Model text is parsed, never evaluated.

A reward is ``fn(completion: str, example: Example) -> float`` in [0, 1]; the built-ins are binary.
The completion is what the model generated after the prompt (EOS removed by the caller). An
example's ``task`` picks its reward; register more with ``@register_reward("name")``.

- ``arithmetic``: the first line of the completion, stripped, must be an integer literal (ASCII
  digits with an optional sign, leading zeros allowed, at most 20 characters; no decimal point,
  no expression) equal to ``int(example.answer)``.
- ``countdown``: the first line, stripped, must be an expression over non-negative integer
  literals with binary + - * /, parentheses and spaces (no unary sign, no other operator, no
  leading zeros), using each of ``meta["numbers"]`` exactly once (as a multiset) and equal to
  ``meta["target"]`` exactly. When ``meta`` lacks them they are read from a prompt of the form
  ``"3 5 7 -> 22:"``. The text goes through a small recursive-descent parser of our own that
  evaluates over `fractions.Fraction`; no ``eval``, ``exec``, ``compile`` or `ast`. The work is bounded
  up front: at most `MAX_EXPR_CHARS` characters, `MAX_NODES` numbers plus operators, parentheses
  nested at most `MAX_DEPTH` deep, literals at most `MAX_LITERAL`. Division by zero scores 0.
- ``math``: `math_verify` equivalence of the whole completion (its last `MATH_MAX_CHARS`
  characters) with ``example.answer``; the answer is parsed as LaTeX math (wrapped in ``$…$``
  unless it already has ``$`` or ``\\boxed``). math_verify's timeouts use ``signal.alarm``, which
  works only in the main thread, so they are `MATH_TIMEOUT_S` seconds there and off elsewhere
  (off-main-thread calls are bounded only by the length cap). Any error scores 0.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Callable
from fractions import Fraction
from functools import lru_cache
from typing import Any

from .data import Example

__all__ = [
    "MATH_MAX_CHARS",
    "MATH_TIMEOUT_S",
    "MAX_DEPTH",
    "MAX_EXPR_CHARS",
    "MAX_LITERAL",
    "MAX_NODES",
    "REWARDS",
    "RewardFn",
    "arithmetic_reward",
    "countdown_reward",
    "extract_answer",
    "get_reward",
    "math_reward",
    "register_reward",
    "safe_arithmetic",
    "score",
]

log = logging.getLogger(__name__)

RewardFn = Callable[[str, Example], float]
REWARDS: dict[str, RewardFn] = {}

MAX_INT_CHARS = 20
MAX_EXPR_CHARS = 100
MAX_NODES = 64
MAX_DEPTH = 32
MAX_LITERAL = 10**6
MATH_MAX_CHARS = 1000
MATH_TIMEOUT_S = 2

_INT = re.compile(r"[+-]?[0-9]+")
_TOKEN = re.compile(r"[0-9]+|[-+*/()]")
_COUNTDOWN_PROMPT = re.compile(r"\s*([0-9]+(?: +[0-9]+)*)\s*-?>\s*([0-9]+)\s*:?\s*")


# ------------------------------------------------------------------ registry
def register_reward(name: str) -> Callable[[RewardFn], RewardFn]:
    """Decorator adding a reward under ``name``; a name already taken raises ValueError."""

    def deco(fn: RewardFn) -> RewardFn:
        if name in REWARDS:
            raise ValueError(f"reward {name!r} is already registered")
        REWARDS[name] = fn
        return fn

    return deco


def get_reward(name: str) -> RewardFn:
    """The reward registered under ``name``."""
    if name not in REWARDS:
        raise ValueError(f"unknown reward {name!r}; registered: {sorted(REWARDS)}")
    return REWARDS[name]


def score(completions: list[str], examples: list[Example]) -> list[float]:
    """The reward of each completion under its example's task; each must be a float in [0, 1]."""
    if len(completions) != len(examples):
        raise ValueError(f"{len(completions)} completions for {len(examples)} examples")
    out = []
    for completion, ex in zip(completions, examples, strict=True):
        r = float(get_reward(ex.task)(completion, ex))
        if not (math.isfinite(r) and 0.0 <= r <= 1.0):
            raise ValueError(f"reward {ex.task!r} returned {r}, outside [0, 1]")
        out.append(r)
    return out


def extract_answer(completion: str) -> str:
    """The first line of the completion, stripped of surrounding whitespace."""
    return completion.split("\n", 1)[0].strip()


# ---------------------------------------------------------------- arithmetic
@register_reward("arithmetic")
def arithmetic_reward(completion: str, example: Example) -> float:
    """1 iff the first line is an integer literal equal to the example's answer."""
    text = extract_answer(completion)
    if len(text) > MAX_INT_CHARS or not _INT.fullmatch(text):
        return 0.0
    try:
        return float(int(text) == int(example.answer))
    except ValueError:  # a gold answer that is not an integer
        return 0.0


# ----------------------------------------------------------------- countdown
class _Rejected(Exception):
    """The text is not an expression we accept."""


class _Parser:
    """Recursive descent over ``expr := term (("+"|"-") term)*``, ``term := factor (("*"|"/") factor)*``,
    ``factor := INT | "(" expr ")"``, evaluating exactly as it goes."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.nodes = 0
        self.literals: list[int] = []

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> str:
        tok = self._peek()
        if tok is None:
            raise _Rejected("unexpected end")
        self.pos += 1
        return tok

    def _count(self) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _Rejected("too many nodes")

    def parse(self) -> Fraction:
        value = self._expr(0)
        if self._peek() is not None:
            raise _Rejected(f"unexpected {self._peek()!r}")
        return value

    def _expr(self, depth: int) -> Fraction:
        value = self._term(depth)
        while self._peek() in ("+", "-"):
            op = self._take()
            self._count()
            rhs = self._term(depth)
            value = value + rhs if op == "+" else value - rhs
        return value

    def _term(self, depth: int) -> Fraction:
        value = self._factor(depth)
        while self._peek() in ("*", "/"):
            op = self._take()
            self._count()
            rhs = self._factor(depth)
            if op == "*":
                value *= rhs
            elif rhs == 0:
                raise _Rejected("division by zero")
            else:
                value /= rhs
        return value

    def _factor(self, depth: int) -> Fraction:
        tok = self._take()
        if tok == "(":
            if depth >= MAX_DEPTH:
                raise _Rejected("nested too deeply")
            value = self._expr(depth + 1)
            if self._take() != ")":
                raise _Rejected("unbalanced parentheses")
            return value
        if not tok.isdigit():  # tokens are ASCII digits or operators
            raise _Rejected(f"unexpected {tok!r}")
        if (len(tok) > 1 and tok[0] == "0") or len(tok) > len(str(MAX_LITERAL)) or int(tok) > MAX_LITERAL:
            raise _Rejected("literal not allowed")
        self._count()
        self.literals.append(int(tok))
        return Fraction(int(tok))


def _tokenize(text: str) -> list[str]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos] == " ":
            pos += 1
            continue
        m = _TOKEN.match(text, pos)
        if m is None:
            raise _Rejected(f"character {text[pos]!r} not allowed")
        tokens.append(m.group())
        pos = m.end()
    return tokens


def safe_arithmetic(text: str) -> tuple[Fraction, list[int]] | None:
    """The exact value and the integer literals of an expression of + - * / ( ) over integers, or None.

    None for anything else: a text over `MAX_EXPR_CHARS`, other characters, unary signs, leading
    zeros, literals over `MAX_LITERAL`, more than `MAX_NODES` numbers and operators, parentheses
    nested over `MAX_DEPTH`, or a division by zero.
    """
    if not isinstance(text, str) or not text or len(text) > MAX_EXPR_CHARS:
        return None
    try:
        parser = _Parser(_tokenize(text))
        value = parser.parse()
    except _Rejected:
        return None
    return value, parser.literals


def _int_list(value: Any) -> list[int] | None:
    if isinstance(value, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in value):
        return value
    return None


def _countdown_spec(example: Example) -> tuple[list[int], int] | None:
    """(numbers, target) from ``meta``, else from a ``"3 5 7 -> 22:"`` prompt; None if neither."""
    numbers, target = _int_list(example.meta.get("numbers")), example.meta.get("target")
    if numbers is not None and isinstance(target, int) and not isinstance(target, bool):
        return numbers, target
    m = _COUNTDOWN_PROMPT.fullmatch(example.prompt) if len(example.prompt) <= 200 else None
    if m is None:
        return None
    return [int(x) for x in m.group(1).split()], int(m.group(2))


@register_reward("countdown")
def countdown_reward(completion: str, example: Example) -> float:
    """1 iff the first line uses each given number exactly once and equals the target exactly."""
    spec = _countdown_spec(example)
    if spec is None:
        return 0.0
    parsed = safe_arithmetic(extract_answer(completion))
    if parsed is None:
        return 0.0
    value, literals = parsed
    numbers, target = spec
    return float(Counter(literals) == Counter(numbers) and value == target)


# ---------------------------------------------------------------------- math
def _timeout() -> int | None:
    """math_verify's signal-based timeout: only usable in the main thread."""
    return MATH_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


@lru_cache(maxsize=4096)
def _parse_gold(answer: str, timeout: int | None) -> tuple[Any, ...]:
    from math_verify import parse

    latex = answer if "$" in answer or "\\boxed" in answer else f"${answer}$"
    gold = parse(latex, parsing_timeout=timeout) or parse(answer, parsing_timeout=timeout)
    if not gold:
        raise _Rejected("gold answer does not parse")  # not cached: lru_cache skips exceptions
    return tuple(gold)


@register_reward("math")
def math_reward(completion: str, example: Example) -> float:
    """1 iff math_verify finds the completion equivalent to the answer; 0 on any error or timeout."""
    from math_verify import parse, verify
    from math_verify.errors import TimeoutException

    text = completion.strip()[-MATH_MAX_CHARS:]
    if not text or not example.answer.strip():
        return 0.0
    timeout = _timeout()
    try:
        gold = _parse_gold(example.answer.strip(), timeout)
        pred = parse(text, parsing_timeout=timeout)
        return float(bool(pred) and verify(list(gold), pred, timeout_seconds=timeout))
    except _Rejected:
        log.warning("math answer %r does not parse; every completion scores 0", example.answer[:80])
        return 0.0
    except (Exception, TimeoutException) as exc:  # math_verify raises many parser errors on junk
        log.debug("math_verify failed on %r: %s", text[:80], exc)
        return 0.0
