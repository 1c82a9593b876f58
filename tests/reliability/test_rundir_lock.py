"""One run per run directory: a second process is refused at once, in one line; a dead holder frees it.

Run: python -m pytest tests/reliability/test_rundir_lock.py
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from llm.rundir import LOCK_FILE, RunDirBusy, RunDirLock

ROOT = Path(__file__).resolve().parents[2]

HOLDER = textwrap.dedent(
    """
    import sys, time
    from llm.rundir import RunDirLock
    with RunDirLock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
    print("released", flush=True)
    """
)

CONTENDER = textwrap.dedent(
    """
    import sys
    from llm.rundir import RunDirBusy, RunDirLock
    try:
        with RunDirLock(sys.argv[1]):
            print("acquired", flush=True)
    except RunDirBusy as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(3)
    """
)


def _python(code: str, *args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kw
    )


def _start_holder(run_dir: Path, seconds: float) -> subprocess.Popen:
    holder = _python(HOLDER, str(run_dir), str(seconds))
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_second_process_is_refused_with_one_line_naming_dir_and_pid(tmp_path):
    run_dir = tmp_path / "run"
    holder = _start_holder(run_dir, 30)
    try:
        start = time.perf_counter()
        contender = _python(CONTENDER, str(run_dir))
        out, err = contender.communicate(timeout=30)
        assert contender.returncode == 3, (out, err)
        assert out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1
        assert str(run_dir) in lines[0]
        assert f"process {holder.pid}" in lines[0]
        assert time.perf_counter() - start < 10  # refused at once, not after waiting
    finally:
        holder.kill()
        holder.communicate()


def test_lock_of_a_killed_process_is_not_stale(tmp_path):
    run_dir = tmp_path / "run"
    holder = _start_holder(run_dir, 30)
    holder.send_signal(signal.SIGKILL)
    holder.communicate()
    assert (run_dir / LOCK_FILE).exists()  # the file stays; the kernel dropped the lock
    contender = _python(CONTENDER, str(run_dir))
    out, err = contender.communicate(timeout=30)
    assert contender.returncode == 0, err
    assert out.strip() == "acquired"


def test_lock_is_released_on_normal_exit_and_on_exception(tmp_path):
    run_dir = tmp_path / "run"
    holder = _start_holder(run_dir, 0.1)
    assert holder.communicate(timeout=30)[0].strip() == "released"
    with RunDirLock(run_dir) as lock:
        assert lock.held
    with pytest.raises(ZeroDivisionError), RunDirLock(run_dir):
        raise ZeroDivisionError
    with RunDirLock(run_dir):  # free again after the exception
        pass


def test_in_process_contender_gets_run_dir_busy(tmp_path):
    with RunDirLock(tmp_path / "run"):
        with pytest.raises(RunDirBusy, match=rf"in use by process {os.getpid()} ") as info:
            RunDirLock(tmp_path / "run").acquire()
        assert "\n" not in str(info.value)
        assert (tmp_path / "run" / LOCK_FILE).read_text().strip() == str(os.getpid())
    assert (tmp_path / "run" / LOCK_FILE).read_text() == ""  # released: no pid claims it


def test_double_acquire_of_one_lock_is_an_error(tmp_path):
    lock = RunDirLock(tmp_path)
    with lock, pytest.raises(RuntimeError, match="already held"):
        lock.acquire()
    assert not lock.held


WRITER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from llm.rundir import RunDirBusy, RunDirLock
    run_dir, tag = Path(sys.argv[1]), sys.argv[2]
    try:
        with RunDirLock(run_dir):
            print("locked", flush=True)
            for step in range(1, 21):
                with open(run_dir / "metrics.jsonl", "a") as fh:
                    fh.write(json.dumps({"step": step, "run": tag}) + "\\n")
                time.sleep(0.05)
    except RunDirBusy as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(3)
    """
)


def test_two_concurrent_runs_second_refuses_first_metrics_clean(tmp_path):
    import json

    run_dir = tmp_path / "run"
    first = _python(WRITER, str(run_dir), "first")
    assert first.stdout.readline().strip() == "locked"
    second = _python(WRITER, str(run_dir), "second")
    _, err = second.communicate(timeout=30)
    first.communicate(timeout=30)
    assert (first.returncode, second.returncode) == (0, 3)
    assert f"in use by process {first.pid}" in err
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows == [{"step": s, "run": "first"} for s in range(1, 21)]
