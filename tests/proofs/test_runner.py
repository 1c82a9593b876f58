"""The check runner: verdict mapping, time limits (forked child; signal and thread mode without fork), the registry.

Run: python -m pytest tests/proofs/test_runner.py
"""

from __future__ import annotations

import threading
import time

import pytest
import sympy as sp

from proofs import runner
from proofs.runner import (
    Check,
    CheckResult,
    Evidence,
    Undecided,
    Verdict,
    combine,
    register_check,
    registered_checks,
    run_check,
)


def slow_sympy() -> tuple[Verdict, str]:
    """Factor a product of two 30-digit primes: minutes of pure-Python ECM."""
    n = sp.nextprime(10**29) * sp.nextprime(3 * 10**29)
    sp.factorint(n)
    return Verdict.PASS, "factored"


def slow_sleeper(seconds: float = 2.0) -> tuple[Verdict, str]:
    """Busy-ish wait that ends by itself (so an abandoned thread does not linger)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.01)
    return Verdict.PASS, "slept"


def test_combine_orders_fail_over_undecided_over_pass():
    assert combine([]) is Verdict.PASS
    assert combine([Verdict.PASS, Verdict.PASS]) is Verdict.PASS
    assert combine([Verdict.PASS, Verdict.UNDECIDED]) is Verdict.UNDECIDED
    assert combine([Verdict.UNDECIDED, Verdict.FAIL, Verdict.PASS]) is Verdict.FAIL


def test_run_check_accepts_tuple_and_result():
    r = run_check(lambda: (Verdict.PASS, "ok"), timeout=5, name="t")
    assert (r.name, r.verdict, r.detail) == ("t", Verdict.PASS, "ok")
    assert r.seconds >= 0
    r2 = run_check(lambda: CheckResult("inner", Verdict.UNDECIDED, 0.0, "?"), timeout=5, name="outer")
    assert (r2.name, r2.verdict) == ("outer", Verdict.UNDECIDED)


def _raise(exc: BaseException):
    def fn():
        raise exc

    return fn


@pytest.mark.parametrize(
    ("fn", "verdict", "fragment"),
    [
        (_raise(ZeroDivisionError("division by zero")), Verdict.FAIL, "ZeroDivisionError"),
        (_raise(AssertionError("nope")), Verdict.FAIL, "assertion failed: nope"),
        (_raise(Undecided("sympy gave up")), Verdict.UNDECIDED, "sympy gave up"),
        (lambda: True, Verdict.FAIL, "not a verdict"),
    ],
)
def test_run_check_maps_exceptions_and_bad_returns(fn, verdict, fragment):
    r = run_check(fn, timeout=5, name="x")
    assert r.verdict is verdict
    assert fragment in r.detail


def test_slow_sympy_call_is_undecided_within_the_timeout():
    assert threading.current_thread() is threading.main_thread()  # signal mode
    start = time.perf_counter()
    r = run_check(slow_sympy, timeout=0.5, name="slow")
    elapsed = time.perf_counter() - start
    assert r.verdict is Verdict.UNDECIDED
    assert "timed out after 0.5 s" in r.detail
    assert elapsed < 2.0


def test_alarm_is_disarmed_after_a_check():
    import signal

    run_check(lambda: (Verdict.PASS, ""), timeout=0.2)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    time.sleep(0.3)  # a stale timer would fire (and raise) here


def test_thread_mode_timeout_outside_the_main_thread():
    box: dict[str, CheckResult] = {}
    start = time.perf_counter()
    worker = threading.Thread(target=lambda: box.update(r=run_check(slow_sleeper, timeout=0.5, name="t")))
    worker.start()
    worker.join(5)
    elapsed = time.perf_counter() - start
    assert box["r"].verdict is Verdict.UNDECIDED
    assert elapsed < 1.5


def test_thread_mode_passes_results_and_errors_through():
    box: dict[str, CheckResult] = {}

    def work():
        box["ok"] = run_check(lambda: (Verdict.PASS, "fine"), timeout=2, name="a")
        box["err"] = run_check(lambda: 1 / 0, timeout=2, name="b")

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(5)
    assert box["ok"].verdict is Verdict.PASS
    assert box["err"].verdict is Verdict.FAIL


def test_without_fork_main_thread_uses_the_alarm_and_others_a_thread(monkeypatch):
    import os

    monkeypatch.delattr(os, "fork")
    start = time.perf_counter()
    r = run_check(slow_sympy, timeout=0.5, name="slow")
    assert (r.verdict, r.detail) == (Verdict.UNDECIDED, "timed out after 0.5 s")
    assert time.perf_counter() - start < 2.0
    box: dict[str, CheckResult] = {}
    worker = threading.Thread(target=lambda: box.update(r=run_check(slow_sleeper, timeout=0.3, name="t")))
    worker.start()
    worker.join(5)
    assert box["r"].verdict is Verdict.UNDECIDED
    assert run_check(lambda: 1 / 0, timeout=1, name="e").verdict is Verdict.FAIL


def test_nonpositive_timeout_is_a_failed_check():
    assert run_check(lambda: (Verdict.PASS, ""), timeout=0).verdict is Verdict.FAIL


def test_evidence_folds_sub_claims():
    ev = Evidence()
    ev.require("a", True)
    ev.add("b", Verdict.UNDECIDED, "why")
    assert ev.result("all good") == (Verdict.UNDECIDED, "b: UNDECIDED (why)")
    ev.add_many("c", [(Verdict.PASS, ""), (Verdict.FAIL, "broken")])
    verdict, detail = ev.result("all good")
    assert verdict is Verdict.FAIL
    assert "c: FAIL (broken)" in detail


def test_registry_guards_duplicate_names(monkeypatch):
    monkeypatch.setattr(runner, "_REGISTRY", dict(runner._REGISTRY))

    @register_check("test-only: first")
    def first():
        return Verdict.PASS, ""

    assert first.check_name == "test-only: first"
    with pytest.raises(ValueError, match="duplicate"):

        @register_check("test-only: first")
        def other():
            return Verdict.PASS, ""

    register_check("test-only: first")(first)  # the same function again (a reload) is fine
    assert [c.name for c in registered_checks("TEST-ONLY")] == ["test-only: first"]


def test_registry_holds_every_theorem():
    names = [c.name for c in registered_checks()]
    assert len(names) == len(set(names)) >= 20
    for prefix in ("Lemma A", "Lemma B", "P control", "PI control", "High-prob"):
        group = [n for n in names if n.startswith(prefix + ":")]
        assert any("sympy" in n for n in group), prefix
        assert any("numeric" in n for n in group), prefix


def test_check_own_timeout_caps_the_global_one():
    check = Check("capped", slow_sleeper, timeout=0.3)
    start = time.perf_counter()
    assert check.run(timeout=10).verdict is Verdict.UNDECIDED
    assert time.perf_counter() - start < 1.5
