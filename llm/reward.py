"""Verifiable rewards with a registry; untrusted parsing runs in killable worker processes.

A reward is ``fn(completion: str, example: Example) -> float``, any finite float (a −1/+1 scheme, a
penalty); the built-ins are binary in {0, 1}.
The completion is what the model generated after the prompt (EOS removed by the caller). An
example's ``task`` picks its reward; register more with ``@register_reward("name")``. Score through
`score` / `score_batch`: they apply the isolation below (calling a registry entry directly does not).

- ``arithmetic``: the first line of the completion, stripped, must be an integer literal (ASCII
  digits with an optional sign, leading zeros allowed, at most 20 characters; no decimal point,
  no expression) equal to ``int(example.answer)``. Runs in process (a regex and `int`).
- ``countdown``: the first line, stripped, must be an expression over non-negative integer
  literals with binary + - * /, parentheses and spaces (no unary sign, no other operator, no
  leading zeros), using each of ``meta["numbers"]`` exactly once (as a multiset) and equal to
  ``meta["target"]`` exactly. When ``meta`` lacks them they are read from a prompt of the form
  ``"3 5 7 -> 22:"``. The text goes through a small recursive-descent parser of our own that
  evaluates over `fractions.Fraction`; no ``eval``, ``exec``, ``compile`` or `ast`. The work is bounded
  up front: at most `MAX_EXPR_CHARS` characters, `MAX_NODES` numbers plus operators, parentheses
  nested at most `MAX_DEPTH` deep, literals at most `MAX_LITERAL`. Division by zero scores 0.
  Runs in process.
- ``math``: `math_verify` equivalence of the completion's last `MATH_MAX_CHARS` characters with
  ``example.answer`` (parsed as LaTeX math, wrapped in ``$…$`` unless it already has ``$`` or
  ``\\boxed``). What happens to the model's text: math_verify extracts candidate answers with
  regular expressions (``\\boxed{…}``, ``$…$`` and ``\\[…\\]`` spans, "answer is …" phrases, bare
  numbers); LaTeX candidates are converted to sympy by latex2sympy2_extended (an ANTLR parser,
  no eval), while plain-expression candidates, filtered by math_verify's regex to digits,
  operators and a few symbols, go to sympy's ``parse_expr``, which calls Python ``eval`` on the
  transformed text. Sympy then simplifies and compares. That is why this reward never runs in the
  trainer's process: it runs in a `llm.verify_pool.VerifierPool` worker, and a completion still
  being scored after `MATH_TIMEOUT_S` seconds (e.g. ``\\boxed{9^{9^{9}}}``, one C-level power) has its
  worker killed and scores the fallback 0; `score_batch` counts these as ``timeouts``. This works
  from any thread. Any other error also scores 0.

Register a reward with ``isolated=True`` to run it the same way (it must then be an importable
module-level function, and its example picklable).

**Reward terms** (`RewardTerm`, the ``[reward]`` table of a run): the reward of a completion is
``Σ_i weight_i · fn_i(completion, example)`` over the terms. A term's ``fn`` is ``""`` (the example's
own task reward), a registered name (``"math"``), or an import path ``"package.module:function"``
to a callable with the reward signature above (`resolve_reward`). A user's function is code the
toolkit cannot vouch for (it may parse the model's text, run tests, loop), so it runs like
``math``: in a verifier worker under the `REWARD_TIMEOUT_S` deadline (``reward.timeout_s`` of a
run), the worker importing it by the same path; a call that passes the deadline, crashes the
worker or raises scores 0 and is counted (``timeouts``, ``crashes``, ``errors``), and the first
error of a batch is logged. Without terms a completion scores its task's reward alone.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import sys
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .verify_pool import PoolStats, VerifierPool

if TYPE_CHECKING:  # data imports this module at run time (for the registry), never the reverse
    from .data import Example

__all__ = [
    "MATH_MAX_CHARS",
    "MATH_TIMEOUT_S",
    "MAX_DEPTH",
    "MAX_EXPR_CHARS",
    "MAX_LITERAL",
    "MAX_NODES",
    "REWARDS",
    "VERIFIER_WORKERS",
    "RewardFn",
    "RewardTerm",
    "Scores",
    "arithmetic_reward",
    "countdown_reward",
    "extract_answer",
    "get_reward",
    "math_reward",
    "register_reward",
    "resolve_reward",
    "safe_arithmetic",
    "score",
    "score_batch",
    "verifier_stats",
]

log = logging.getLogger(__name__)

RewardFn = Callable[[str, "Example"], float]
REWARDS: dict[str, RewardFn] = {}
ISOLATED: set[str] = set()
"""Tasks whose reward runs in a verifier worker under the `MATH_TIMEOUT_S` deadline."""

MAX_INT_CHARS = 20
MAX_EXPR_CHARS = 100
MAX_NODES = 64
MAX_DEPTH = 32
MAX_LITERAL = 10**6
MATH_MAX_CHARS = 1000
MATH_TIMEOUT_S = 2.0
"""Hard per-completion deadline (seconds) of an isolated registered reward (``math``); past it the worker is
killed, the score is 0."""
REWARD_TIMEOUT_S = 2.0
"""Default hard per-completion deadline (seconds) of a reward imported by path (``reward.timeout_s``)."""
VERIFIER_WORKERS = 1
"""Worker processes of the verifier pool (read when the pool starts, on the first isolated score)."""

_INT = re.compile(r"[+-]?[0-9]+")
_TOKEN = re.compile(r"[0-9]+|[-+*/()]")
_COUNTDOWN_PROMPT = re.compile(r"\s*([0-9]+(?: +[0-9]+)*)\s*-?>\s*([0-9]+)\s*:?\s*")


# ------------------------------------------------------------------ registry
def register_reward(name: str, *, isolated: bool = False) -> Callable[[RewardFn], RewardFn]:
    """Decorator adding a reward under ``name``; a name already taken raises ValueError.

    ``isolated``: `score` runs it in a verifier worker process under the `MATH_TIMEOUT_S` deadline.
    """

    def deco(fn: RewardFn) -> RewardFn:
        if name in REWARDS:
            raise ValueError(f"reward {name!r} is already registered")
        if isolated and "<" in getattr(fn, "__qualname__", "<"):
            raise ValueError(f"isolated reward {name!r} must be a module-level function (a worker imports it by name)")
        REWARDS[name] = fn
        if isolated:
            ISOLATED.add(name)
        return fn

    return deco


def get_reward(name: str) -> RewardFn:
    """The reward registered under ``name``."""
    if name not in REWARDS:
        raise ValueError(f"unknown reward {name!r}; registered: {sorted(REWARDS)}")
    return REWARDS[name]


@dataclass(frozen=True)
class Scores:
    """The rewards of one batch and how many completions scored the fallback 0 in a verifier worker.

    ``timeouts``: killed at the deadline; ``crashes``: the worker died on its own; ``errors``: the
    reward raised. The trainer can log both as metrics (e.g. ``verifier_timeouts``). ``truncated``: responses that hit
    max_new_tokens without a stop (set by `llm.completions.Finisher`; the ``truncated_frac`` metric).
    """

    rewards: list[float]
    timeouts: int = 0
    crashes: int = 0
    truncated: int = 0
    errors: int = 0


_POOL: VerifierPool | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> VerifierPool:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = VerifierPool(VERIFIER_WORKERS, preload=("llm.reward", "math_verify"))
        return _POOL


def verifier_stats() -> PoolStats:
    """Fallback scores of the verifier pool since the process started (a copy: timeouts, crashes)."""
    return dataclasses.replace(_POOL.stats) if _POOL is not None else PoolStats()


@dataclass(frozen=True)
class RewardTerm:
    """One weighted term of the reward: ``fn`` is '' (the example's task), a registered name or 'pkg.mod:function'."""

    fn: str = ""
    weight: float = 1.0
    timeout_s: float = REWARD_TIMEOUT_S
    """Deadline per completion (seconds) when ``fn`` is an import path (run in a verifier worker)."""


@lru_cache(maxsize=64)
def _imported(spec: str, paths: tuple[str, ...]) -> RewardFn:
    sys.path[:0] = [p for p in paths if p not in sys.path]  # the caller's import path at the time of the call
    return resolve_reward(spec)


def call_imported(spec: str, paths: tuple[str, ...], completion: str, example: Example) -> Any:
    """``fn(completion, example)`` for the reward at import path ``spec``, imported with the caller's
    ``sys.path`` entries ``paths`` (a worker may have started before the caller's path changed);
    what a verifier worker runs."""
    return _imported(spec, paths)(completion, example)


def resolve_reward(spec: str) -> RewardFn:
    """The reward named by ``spec``: a registered name, or ``"package.module:function"`` imported here.

    A bad spec is a ValueError naming it (one line).
    """
    if ":" not in spec:
        return get_reward(spec)
    import importlib

    module, _, name = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"reward.fn {spec!r} cannot be imported ({type(exc).__name__}: {exc})") from None
    if not callable(fn):
        raise ValueError(f"reward.fn {spec!r} is not callable")
    return fn


def score_batch(completions: list[str], examples: list[Example], terms=None) -> Scores:
    """The reward of each completion, with the verifier pool's fallback counts.

    ``terms`` (`RewardTerm` list; None = the task's reward, weight 1): the weighted sum of their rewards.
    """
    if len(completions) != len(examples):
        raise ValueError(f"{len(completions)} completions for {len(examples)} examples")
    total = [0.0] * len(completions)
    stats = PoolStats()
    for term in terms or [RewardTerm()]:
        part, term_stats = _score_term(completions, examples, term)
        stats += term_stats
        total = [t + term.weight * r for t, r in zip(total, part, strict=True)]
    return Scores(total, stats.timeouts, stats.crashes, errors=stats.errors)


def _score_term(completions: list[str], examples: list[Example], term: RewardTerm) -> tuple[list[float], PoolStats]:
    """One reward term: each example's task (``fn`` = ''), a registered reward, or an imported function.

    Registered in-process rewards are called directly; the `ISOLATED` ones (``math``) go to the
    verifier pool under the `MATH_TIMEOUT_S` deadline, an imported function under ``term.timeout_s``.
    Each reward must be a finite float. Returns the rewards and the pool's fallback counts.
    """
    spec = term.fn
    out: list[float] = [0.0] * len(completions)
    isolated: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        task = spec or ex.task
        if ":" in task or task in ISOLATED:
            isolated.setdefault(task, []).append(i)
        else:
            out[i] = _checked(task, get_reward(task)(completions[i], ex))
    stats = PoolStats()
    for task, rows in isolated.items():
        if ":" in task:  # a user's function: imported by path in the worker
            paths = tuple(os.path.abspath(p or os.curdir) for p in sys.path)
            fn, deadline = call_imported, term.timeout_s
            calls = [(task, paths, completions[i], examples[i]) for i in rows]
        else:
            fn, calls, deadline = REWARDS[task], [(completions[i], examples[i]) for i in rows], MATH_TIMEOUT_S
        values, batch = _pool().map(fn, calls, deadline_s=deadline, fallback=0.0)
        stats += batch
        for i, value in zip(rows, values, strict=True):
            out[i] = _checked(task, value)
    if stats.timeouts or stats.crashes or stats.errors:
        log.log(
            logging.WARNING if stats.errors else logging.INFO,
            "reward %r: %d completions timed out, %d crashed the verifier, %d raised%s; each scored 0",
            spec or "task",
            stats.timeouts,
            stats.crashes,
            stats.errors,
            f" (first: {stats.first_error})" if stats.first_error else "",
        )
    return out, stats


def score(completions: list[str], examples: list[Example]) -> list[float]:
    """The reward of each completion under its example's task (`score_batch` without the counts)."""
    return score_batch(completions, examples).rewards


def _checked(task: str, value: Any) -> float:
    r = float(value)
    if not math.isfinite(r):
        raise ValueError(f"reward {task!r} returned {r}, not a finite number")
    return r


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
def _not_timeout_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Timeout is disabled")


# math_verify warns that its signal timeouts are off; the verifier worker's kill replaces them.
for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_not_timeout_notice)


@lru_cache(maxsize=4096)
def _parse_gold(answer: str) -> tuple[Any, ...]:
    from math_verify import parse

    latex = answer if "$" in answer or "\\boxed" in answer else f"${answer}$"
    gold = parse(latex, parsing_timeout=None) or parse(answer, parsing_timeout=None)
    if not gold:
        raise _Rejected("gold answer does not parse")  # not cached: lru_cache skips exceptions
    return tuple(gold)


@register_reward("math", isolated=True)
def math_reward(completion: str, example: Example) -> float:
    """1 iff math_verify finds the completion equivalent to the answer; 0 on any error.

    Unbounded in time when called directly: `score` runs it in a verifier worker with a deadline.
    math_verify's own ``signal.alarm`` timeouts are off (the worker is killed instead).
    """
    from math_verify import parse, verify

    text = completion.strip()[-MATH_MAX_CHARS:]
    if not text or not example.answer.strip():
        return 0.0
    try:
        gold = _parse_gold(example.answer.strip())
        pred = parse(text, parsing_timeout=None)
        return float(bool(pred) and verify(list(gold), pred, timeout_seconds=None))
    except _Rejected:
        log.warning("math answer %r does not parse; every completion scores 0", example.answer[:80])
        return 0.0
    except Exception as exc:  # math_verify raises many parser errors on junk
        log.debug("math_verify failed on %r: %s", text[:80], exc)
        return 0.0
