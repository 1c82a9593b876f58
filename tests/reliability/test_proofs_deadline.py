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
