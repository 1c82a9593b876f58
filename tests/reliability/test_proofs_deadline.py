"""Proof checks under a hard deadline: a forked child killed on time, even inside one C-level computation.

Run: python -m pytest tests/reliability/test_proofs_deadline.py
"""

from __future__ import annotations

import threading
import time

import pytest

from proofs.runner import Verdict, run_check


def power_tower():
    return (Verdict.PASS, str(9**9**9 > 0))  # one C-level power: signal handlers cannot run during it


def dies():
    import os

    os._exit(7)


@pytest.mark.parametrize("where", ["main thread", "worker thread"])
def test_power_tower_is_stopped_at_the_deadline(where):
    box = {}
    start = time.perf_counter()
    if where == "main thread":
        box["r"] = run_check(power_tower, timeout=0.5, name="tower")
    else:
        worker = threading.Thread(target=lambda: box.update(r=run_check(power_tower, timeout=0.5, name="tower")))
        worker.start()
        worker.join(30)
    elapsed = time.perf_counter() - start
    assert box["r"].verdict is Verdict.UNDECIDED
    assert box["r"].detail == "timed out after 0.5 s"
    assert elapsed < 2.5


def test_a_check_that_kills_its_process_is_a_fail():
    r = run_check(dies, timeout=5, name="dies")
    assert r.verdict is Verdict.FAIL
    assert r.detail == "check process died (exit status 7)"


@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), -1.0, 0.0])
def test_non_finite_or_non_positive_timeout_is_a_failed_check(timeout):
    r = run_check(lambda: (Verdict.PASS, ""), timeout=timeout, name="t")
    assert r.verdict is Verdict.FAIL
    assert "timeout must be a positive finite number of seconds" in r.detail


def test_large_finite_timeout_works():
    r = run_check(lambda: (Verdict.PASS, "ok"), timeout=1e12, name="t")
    assert (r.verdict, r.detail) == (Verdict.PASS, "ok")


def test_run_many_replaces_the_child_after_an_overrun_or_a_death():
    from proofs.runner import Check, run_many

    seen_pids = []

    def ok(tag):
        def fn():
            import os

            seen_pids.append(os.getpid())  # recorded in the child: the parent's list stays empty
            return Verdict.PASS, f"{tag} in {os.getpid()}"

        return fn

    checks = [
        Check("a", ok("a")),
        Check("a2", ok("a2")),
        Check("tower", power_tower),
        Check("b", ok("b")),
        Check("dies", dies),
        Check("c", ok("c")),
        Check("own limit", power_tower, timeout=0.3),
    ]
    start = time.perf_counter()
    results = run_many(checks, timeout=0.8)
    elapsed = time.perf_counter() - start
    assert [r.name for r in results] == [c.name for c in checks]
    assert [r.verdict for r in results] == [
        Verdict.PASS,
        Verdict.PASS,
        Verdict.UNDECIDED,
        Verdict.PASS,
        Verdict.FAIL,
        Verdict.PASS,
        Verdict.UNDECIDED,
    ]
    assert results[2].detail == "timed out after 0.8 s"
    assert results[6].detail == "timed out after 0.3 s"
    assert results[4].detail == "check process died (exit status 7)"
    pid = {r.name: r.detail.split(" in ")[1] for r in results if r.name in ("a", "a2", "b", "c")}
    assert pid["a"] == pid["a2"]  # one child for consecutive checks (shared caches)
    assert len({pid["a"], pid["b"], pid["c"]}) == 3  # a fresh child after each overrun or death
    assert seen_pids == []
    assert elapsed < 0.8 + 0.3 + 3.0
