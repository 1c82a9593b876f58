"""Check runner: verdicts, results, a time-bounded executor and the check registry.

A *check* is a zero-argument callable returning a `CheckResult` or a ``(Verdict, detail)``
pair. `run_check` executes it under a wall-clock limit and maps the outcome to a verdict:

- the check's own verdict when it returns normally;
- ``FAIL`` when it raises ``AssertionError`` or any other ``Exception`` (a crash in a
  comparison is a failed comparison, not an open question);
- ``UNDECIDED`` when it raises `Undecided` or runs past its time limit.

Time limits are hard: where ``os.fork`` exists (Linux, macOS) checks run in a forked child
process, which is killed when a check's limit passes, from whichever thread called — so even one
C-level computation (``9**9**9``) is stopped at the deadline and reported UNDECIDED. The child
inherits the registry and sympy's state and sends back each `CheckResult`; a child that dies
without one (e.g. out of memory) is a FAIL naming its exit status. `run_check` forks per check
(a few milliseconds); `run_many` (used by ``python -m proofs``) forks once for a whole run and
again only after a check overran, so checks share sympy's caches as in one process. Without
``fork``, the main thread uses a ``SIGALRM`` interval timer that raises `CheckTimeout` inside the
check (a ``BaseException``, so sympy's broad ``except Exception`` blocks cannot swallow it; it
cannot interrupt a single C call), and other threads run the check in a daemon thread that is
abandoned (not killed) when the limit passes.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

__all__ = [
    "DEFAULT_TIMEOUT",
    "Check",
    "CheckFn",
    "CheckResult",
    "CheckTimeout",
    "Evidence",
    "Undecided",
    "Verdict",
    "combine",
    "register_check",
    "registered_checks",
    "run_check",
    "run_checks",
    "run_many",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
"""Seconds a single check may run before it is reported UNDECIDED."""


class Verdict(str, Enum):
    """Outcome of one check."""

    PASS = "PASS"
    FAIL = "FAIL"
    UNDECIDED = "UNDECIDED"

    def __str__(self) -> str:
        return self.value


def combine(verdicts: Iterable[Verdict]) -> Verdict:
    """FAIL if any is FAIL, else UNDECIDED if any is UNDECIDED, else PASS (PASS when empty)."""
    vs = list(verdicts)
    if Verdict.FAIL in vs:
        return Verdict.FAIL
    if Verdict.UNDECIDED in vs:
        return Verdict.UNDECIDED
    return Verdict.PASS


@dataclass(frozen=True)
class CheckResult:
    """One row of the report."""

    name: str
    verdict: Verdict
    seconds: float
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["verdict"] = self.verdict.value
        return d


Outcome = CheckResult | tuple[Verdict, str]
CheckFn = Callable[[], Outcome]


class CheckTimeout(BaseException):
    """Raised inside a check by the interval timer when its time limit passes."""


class Undecided(Exception):
    """Raised by a check that can neither prove nor refute its claim (e.g. sympy gave up)."""


class Evidence:
    """Accumulates the sub-claims of one check and folds them into ``(verdict, detail)``.

    ``detail`` is the summary when everything passed, otherwise the labels (and notes) of
    the sub-claims that failed or stayed undecided.
    """

    def __init__(self) -> None:
        self.items: list[tuple[str, Verdict, str]] = []

    def add(self, label: str, verdict: Verdict, note: str = "") -> Verdict:
        self.items.append((label, verdict, note))
        if verdict is not Verdict.PASS:
            log.info("%s: %s %s", label, verdict.value, note)
        return verdict

    def add_many(self, label: str, outcomes: Iterable[tuple[Verdict, str]]) -> Verdict:
        """Record several (verdict, note) outcomes as one sub-claim (first non-PASS note kept)."""
        outcomes = list(outcomes)
        note = next((n for v, n in outcomes if v is not Verdict.PASS), "")
        return self.add(label, combine(v for v, _ in outcomes), note)

    def require(self, label: str, ok: bool, note: str = "") -> bool:
        """Record a decidable claim: PASS if ``ok`` else FAIL."""
        self.add(label, Verdict.PASS if bool(ok) else Verdict.FAIL, note)
        return bool(ok)

    @property
    def verdict(self) -> Verdict:
        return combine(v for _, v, _ in self.items)

    def result(self, summary: str) -> tuple[Verdict, str]:
        verdict = self.verdict
        if verdict is Verdict.PASS:
            return verdict, summary
        bad = [
            f"{label}: {v.value}" + (f" ({note})" if note else "")
            for label, v, note in self.items
            if v is not Verdict.PASS
        ]
        return verdict, "; ".join(bad)


def _normalise(name: str, outcome: Any, seconds: float) -> CheckResult:
    if isinstance(outcome, CheckResult):
        return CheckResult(name or outcome.name, outcome.verdict, seconds, outcome.detail)
    if isinstance(outcome, tuple) and len(outcome) == 2 and isinstance(outcome[0], Verdict):
        return CheckResult(name, outcome[0], seconds, str(outcome[1]))
    return CheckResult(name, Verdict.FAIL, seconds, f"check returned {type(outcome).__name__}, not a verdict")


def _from_exception(name: str, exc: BaseException, seconds: float, timeout: float) -> CheckResult:
    if isinstance(exc, CheckTimeout):
        return CheckResult(name, Verdict.UNDECIDED, seconds, f"timed out after {timeout:g} s")
    if isinstance(exc, Undecided):
        return CheckResult(name, Verdict.UNDECIDED, seconds, str(exc) or "undecided")
    if isinstance(exc, AssertionError):
        return CheckResult(name, Verdict.FAIL, seconds, f"assertion failed: {exc}")
    return CheckResult(name, Verdict.FAIL, seconds, f"error: {type(exc).__name__}: {exc}")


_MAX_WAIT_S = 3600.0
"""Longest single wait on the child (a poll of 1e12 s overflows the C timer; longer limits loop)."""


def _run_one(name: str, fn: CheckFn, timeout: float) -> CheckResult:
    """The check's result, its time measured inside whatever runs it."""
    start = time.perf_counter()
    try:
        outcome = fn()
    except (CheckTimeout, Exception) as exc:
        return _from_exception(name, exc, time.perf_counter() - start, timeout)
    return _normalise(name, outcome, time.perf_counter() - start)


def _child(name: str, fn: CheckFn, timeout: float, conn) -> None:
    try:
        conn.send(_run_one(name, fn, timeout))
    finally:
        conn.close()


def _run_in_process(name: str, fn: CheckFn, timeout: float) -> CheckResult:
    """Run the check in a forked child; kill it at the deadline (UNDECIDED)."""
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    start = time.perf_counter()
    with warnings.catch_warnings():  # Python >= 3.12 warns on fork with threads alive; the child only computes
        warnings.simplefilter("ignore", DeprecationWarning)
        proc = ctx.Process(target=_child, args=(name, fn, timeout, sender), name=f"proofs-check-{name}", daemon=True)
        proc.start()
    sender.close()
    deadline = time.monotonic() + timeout
    try:
        while not (ready := receiver.poll(min(max(deadline - time.monotonic(), 0.0), _MAX_WAIT_S))):
            if time.monotonic() >= deadline:
                break
        if ready:
            try:
                return receiver.recv()
            except EOFError:
                proc.join()
                return CheckResult(
                    name, Verdict.FAIL, time.perf_counter() - start, f"check process died (exit status {proc.exitcode})"
                )
        return CheckResult(name, Verdict.UNDECIDED, time.perf_counter() - start, f"timed out after {timeout:g} s")
    finally:
        receiver.close()
        if proc.is_alive():
            proc.kill()
        proc.join()


def _can_use_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def _run_with_alarm(fn: CheckFn, timeout: float) -> Any:
    def _raise(signum, frame):
        raise CheckTimeout()

    previous = signal.signal(signal.SIGALRM, _raise)
    try:
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            return fn()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0.0)
    finally:
        signal.signal(signal.SIGALRM, previous)


def _run_in_thread(fn: CheckFn, timeout: float) -> Any:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the caller
            box["error"] = exc

    worker = threading.Thread(target=target, name="proofs-check", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise CheckTimeout()
    if "error" in box:
        raise box["error"]
    return box["value"]


def run_check(fn: CheckFn, timeout: float | None = DEFAULT_TIMEOUT, name: str = "") -> CheckResult:
    """Run one check under a wall-clock limit of ``timeout`` seconds (None: no limit, in process).

    Never raises for the check's own errors and never runs past the limit: the forked child is
    killed (where fork is unavailable, see the module notes). A ``timeout`` that is not a positive
    finite number is a FAIL naming it.
    """
    if not name:
        name = getattr(fn, "check_name", "") or getattr(fn, "__name__", "check")
    start = time.perf_counter()
    try:
        if timeout is None:
            outcome = fn()
        elif not (isinstance(timeout, int | float) and timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a positive finite number of seconds or None, got {timeout!r}")
        elif hasattr(os, "fork"):
            result = _run_in_process(name, fn, timeout)
            log.debug("%s: %s in %.3f s", result.name, result.verdict.value, result.seconds)
            return result
        elif _can_use_alarm():
            outcome = _run_with_alarm(fn, timeout)
        else:
            outcome = _run_in_thread(fn, timeout)
    except (CheckTimeout, Exception) as exc:
        result = _from_exception(name, exc, time.perf_counter() - start, timeout or 0.0)
    else:
        result = _normalise(name, outcome, time.perf_counter() - start)
    log.debug("%s: %s in %.3f s", result.name, result.verdict.value, result.seconds)
    return result


@dataclass(frozen=True)
class Check:
    """A registered check: its report name, function and optional own time limit."""

    name: str
    fn: CheckFn
    timeout: float | None = None

    def limit(self, timeout: float | None = DEFAULT_TIMEOUT) -> float | None:
        """The time limit this check runs under: the smaller of ``timeout`` and its own."""
        return timeout if self.timeout is None or timeout is None else min(timeout, self.timeout)

    def run(self, timeout: float | None = DEFAULT_TIMEOUT) -> CheckResult:
        return run_check(self.fn, self.limit(timeout), self.name)


_REGISTRY: dict[str, Check] = {}


def _identity(fn: Callable) -> tuple[str, str]:
    return getattr(fn, "__module__", ""), getattr(fn, "__qualname__", repr(fn))


def register_check(name: str, *, timeout: float | None = None) -> Callable[[CheckFn], CheckFn]:
    """Decorator adding a check to the registry under ``name`` (unique).

    Re-registering the *same* function (same module and qualified name, e.g. after a module
    reload) replaces the entry; a different function claiming a taken name is an error.
    The function is returned unchanged, with ``check_name`` set.
    """
    if not name or not name.strip():
        raise ValueError("a check needs a non-empty name")

    def decorator(fn: CheckFn) -> CheckFn:
        old = _REGISTRY.get(name)
        if old is not None and _identity(old.fn) != _identity(fn):
            raise ValueError(f"duplicate check name {name!r} ({_identity(old.fn)} vs {_identity(fn)})")
        _REGISTRY[name] = Check(name, fn, timeout)
        fn.check_name = name  # type: ignore[attr-defined]
        return fn

    return decorator


def registered_checks(only: str | None = None) -> list[Check]:
    """Registered checks in registration order; ``only`` keeps names containing it (case-insensitive)."""
    checks = list(_REGISTRY.values())
    if only:
        needle = only.casefold()
        checks = [c for c in checks if needle in c.name.casefold()]
    return checks


def run_checks(only: str | None = None, timeout: float | None = DEFAULT_TIMEOUT) -> list[CheckResult]:
    """Run the registered checks (filtered by ``only``), each under ``timeout`` seconds (see `run_many`)."""
    return run_many(registered_checks(only), timeout)


def run_many(checks: list[Check], timeout: float | None = DEFAULT_TIMEOUT) -> list[CheckResult]:
    """Run ``checks`` in order, each under its limit, as `Check.run` would, but forking once for all.

    One forked child runs the checks one after another and reports each result (so they share
    sympy's caches, as in one process); each check's limit starts when the previous one reports.
    A check past its limit has the child killed (UNDECIDED), a child that dies fails its check,
    and a fresh child takes the rest. Without ``fork``, or with ``timeout`` None or not a positive
    finite number, this is ``[check.run(timeout) for check in checks]``.
    """
    valid = isinstance(timeout, int | float) and timeout > 0 and math.isfinite(timeout)
    if not hasattr(os, "fork") or not valid:
        return [check.run(timeout) for check in checks]
    results: list[CheckResult] = []
    while len(results) < len(checks):
        results += _run_batch(checks[len(results) :], timeout)
    return results


def _batch_child(checks: list[Check], timeout: float, conn) -> None:
    try:
        for check in checks:
            conn.send(_run_one(check.name, check.fn, check.limit(timeout)))
    finally:
        conn.close()


def _run_batch(checks: list[Check], timeout: float) -> list[CheckResult]:
    """Results of a prefix of ``checks`` (at least one) from one forked child."""
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    with warnings.catch_warnings():  # see _run_in_process
        warnings.simplefilter("ignore", DeprecationWarning)
        proc = ctx.Process(target=_batch_child, args=(checks, timeout, sender), name="proofs-checks", daemon=True)
        proc.start()
    sender.close()
    results: list[CheckResult] = []
    try:
        for check in checks:
            limit = check.limit(timeout)
            start = time.perf_counter()
            deadline = time.monotonic() + limit
            while not (ready := receiver.poll(min(max(deadline - time.monotonic(), 0.0), _MAX_WAIT_S))):
                if time.monotonic() >= deadline:
                    break
            if not ready:
                results.append(
                    CheckResult(
                        check.name, Verdict.UNDECIDED, time.perf_counter() - start, f"timed out after {limit:g} s"
                    )
                )
                return results
            try:
                results.append(receiver.recv())
            except EOFError:
                proc.join()
                detail = f"check process died (exit status {proc.exitcode})"
                results.append(CheckResult(check.name, Verdict.FAIL, time.perf_counter() - start, detail))
                return results
            log.debug("%s: %s in %.3f s", check.name, results[-1].verdict.value, results[-1].seconds)
        return results
    finally:
        receiver.close()
        if proc.is_alive():
            proc.kill()
        proc.join()
