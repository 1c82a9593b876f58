"""Verifiers never hang and never escape [0, 1]: worker processes killed at a hard deadline, from any thread.

Run: python -m pytest tests/reliability/test_verifiers.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm import reward as reward_mod
from llm.data import Example
from llm.reward import REWARDS, score_batch
from llm.verify_pool import VerifierPool

ROOT = Path(__file__).resolve().parents[2]
MATH = Example("What is 2+2?", "4", "math")
COUNTDOWN = Example("3 5 7 -> 22:", "3*5+7", "countdown")
ARITH = Example("23+58=", "81", "arithmetic")
EXAMPLES = {"math": MATH, "countdown": COUNTDOWN, "arithmetic": ARITH}


def _in_thread(fn, limit: float):
    """Run ``fn`` in a worker thread; (result, seconds); fails if it is still running after ``limit`` s."""
    box: dict = {}
    start = time.perf_counter()
    worker = threading.Thread(target=lambda: box.update(value=fn()), daemon=True)
    worker.start()
    worker.join(limit)
    assert not worker.is_alive(), f"still running after {limit} s"
    return box["value"], time.perf_counter() - start


def test_power_tower_from_a_worker_thread_returns_within_its_deadline(monkeypatch):
    monkeypatch.setattr(reward_mod, "MATH_TIMEOUT_S", 1.0)
    score_batch(["\\boxed{4}"], [MATH])  # the pool is warm: start-up is not part of the deadline
    scores, seconds = _in_thread(lambda: score_batch(["\\boxed{9^{9^{9}}}", "\\boxed{4}"], [MATH, MATH]), 30)
    assert scores.rewards == [0.0, 1.0]
    assert scores.timeouts == 1 and scores.crashes == 0
    assert seconds < 1.0 + 5.0  # the deadline, plus replacing the killed worker (python start-up, imports)


def test_timeouts_are_counted_cumulatively(monkeypatch):
    monkeypatch.setattr(reward_mod, "MATH_TIMEOUT_S", 0.5)
    before = reward_mod.verifier_stats().timeouts
    scores = score_batch(["\\boxed{9^{9^{9^{9}}}}"] * 2, [MATH] * 2)
    assert scores.rewards == [0.0, 0.0] and scores.timeouts == 2
    assert reward_mod.verifier_stats().timeouts == before + 2


def test_common_case_is_fast_and_reuses_one_worker():
    score_batch(["\\boxed{4}"], [MATH])
    pids = {w.proc.pid for w in reward_mod._pool()._workers}
    texts = [f"so the answer is \\boxed{{{i}}}" for i in range(128)]
    start = time.perf_counter()
    scores = score_batch(texts, [MATH] * 128)
    assert time.perf_counter() - start < 10
    assert scores.rewards == [float(i == 4) for i in range(128)]
    assert scores.timeouts == 0
    assert {w.proc.pid for w in reward_mod._pool()._workers} == pids  # no process per completion


def test_pool_kills_replaces_and_counts():
    pool = VerifierPool(workers=2)
    try:
        calls = [(0.01,), (30.0,), (0.01,), (30.0,), (0.01,)]
        values, stats = pool.map(time.sleep, calls, deadline_s=0.5, fallback="late")
        assert values == [None, "late", None, "late", None]
        assert (stats.timeouts, stats.crashes) == (2, 0)
        values, stats = pool.map(os._exit, [(3,)], deadline_s=5, fallback=-1.0)  # the worker dies on its own
        assert values == [-1.0] and (stats.timeouts, stats.crashes) == (0, 1)
        values, _ = pool.map(divmod, [(7, 2), (9, 4)], deadline_s=1e12, fallback=None)  # and is replaced
        assert values == [(3, 1), (2, 1)]
        assert (pool.stats.timeouts, pool.stats.crashes) == (2, 1)
        with pytest.raises(ValueError, match="deadline_s must be a positive finite"):
            pool.map(divmod, [(1, 1)], deadline_s=float("inf"), fallback=None)
    finally:
        pool.close()
    assert all(w.proc.poll() is not None for w in pool._workers) and pool._workers == []


def test_reward_does_not_import_data_at_run_time():
    code = "import sys, llm.reward; assert 'llm.data' not in sys.modules; import llm.data; print('ok')"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_math_docstring_is_honest_about_eval():
    doc = reward_mod.__doc__
    assert "parse_expr" in doc and "eval" in doc and "killed" in doc
    assert "never evaluated" not in doc


# ------------------------------------------------------------------ fuzzing
PIECES = [
    "\\boxed{", "}", "{", "^", "9", "4", "2", "**", "*", "/", "+", "-", "(", ")", "\\frac{", "\\sqrt{", "$", "\\[",
    "\\]", "x", "=", "e", "E", "1e999", " ", "\n", "answer is ", "\\infty", ",", ".", "\\left(", "\\right)", "!",
]  # fmt: skip
completions = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(PIECES), max_size=40).map("".join),
)


@pytest.mark.parametrize("task", sorted(EXAMPLES))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(completions, min_size=1, max_size=4))
def test_fuzz_every_verifier_off_the_main_thread(task, batch, monkeypatch):
    assert task in REWARDS
    monkeypatch.setattr(reward_mod, "MATH_TIMEOUT_S", 1.0)
    example = EXAMPLES[task]
    scores, seconds = _in_thread(lambda: score_batch(batch, [example] * len(batch)), 30)
    assert len(scores.rewards) == len(batch)
    assert all(r in (0.0, 1.0) for r in scores.rewards)
    if task != "math":
        assert scores.timeouts == 0  # in-process verifiers are bounded by construction
    assert seconds < len(batch) * (1.0 + 5.0) + 2.0
