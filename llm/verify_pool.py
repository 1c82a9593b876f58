"""Verifier worker processes with a hard per-call deadline, enforced by killing the worker.

A `VerifierPool` runs ``fn(*args)`` calls in long-lived child processes and gives each call at
most ``deadline_s`` seconds of wall-clock time. A call still running at its deadline has its
worker killed (SIGKILL; this works from any thread and stops C-level work such as a huge
integer power, which ``signal.alarm`` cannot) and scores ``fallback``; the worker is replaced
before its next call. A worker that dies on its own (segfault, out of memory) also yields
``fallback``, and so does a call that raises. The pool counts all three (`PoolStats`).

Workers are plain subprocesses (``python -c``, the package on ``PYTHONPATH``), connected by a
socket pair: they never re-import the caller's ``__main__`` (as multiprocessing's spawn would,
re-running ``python -m llm``) and never inherit the caller's threads or CUDA state (as fork
would). A worker imports ``preload`` modules before it reports ready, so start-up time is
never charged to a call's deadline. Each call costs one pickled round trip (~0.1 ms); a worker
is started once and reused until it is killed.

The functions are sent by reference (module and qualified name), so they must be importable
module-level functions; arguments and results must be picklable.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

__all__ = ["PoolStats", "VerifierPool", "serve"]

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 60.0
"""Seconds a new worker may take to import its ``preload`` modules and report ready."""

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])


@dataclass
class PoolStats:
    """Calls that scored the fallback: ``timeouts`` (killed at the deadline), ``crashes`` (worker died),
    ``errors`` (the function raised; ``first_error`` is the first one, "Type: message")."""

    timeouts: int = 0
    crashes: int = 0
    errors: int = 0
    first_error: str = ""

    def __iadd__(self, other: PoolStats) -> PoolStats:
        self.timeouts += other.timeouts
        self.crashes += other.crashes
        self.errors += other.errors
        self.first_error = self.first_error or other.first_error
        return self


def _resolve(module: str, qualname: str) -> Callable[..., Any]:
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def serve(fd: int, preload: Sequence[str] = ()) -> None:
    """Worker loop: receive ``(module, qualname, args)``, reply ``("ok", value)`` or ``("error", text)``."""
    conn = Connection(fd)
    for name in preload:
        importlib.import_module(name)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            module, qualname, args = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        try:
            reply = ("ok", _resolve(module, qualname)(*args))
        except Exception as exc:  # reported to the parent, which decides
            reply = ("error", f"{type(exc).__name__}: {exc}")
        conn.send(reply)


class _Worker:
    """One child process and the parent's end of its socket pair."""

    def __init__(self, preload: Sequence[str]) -> None:
        parent_sock, child_sock = socket.socketpair()
        code = f"from llm.verify_pool import serve; serve({child_sock.fileno()}, {list(preload)!r})"
        env = dict(os.environ)
        # The caller's import path too (its working directory included), so a worker imports
        # whatever module the caller can, e.g. a user's reward module next to the run.
        here = [os.path.abspath(p or os.curdir) for p in sys.path if os.path.isdir(p or os.curdir)]
        extra = filter(None, [env.get("PYTHONPATH")])
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([_PACKAGE_ROOT, *here, *extra]))
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", code], pass_fds=[child_sock.fileno()], env=env, stdin=subprocess.DEVNULL
            )
        finally:
            child_sock.close()
        self.conn = Connection(parent_sock.detach())
        if not self.conn.poll(STARTUP_TIMEOUT_S):
            self.kill()
            raise RuntimeError(f"verifier worker did not start within {STARTUP_TIMEOUT_S:g} s")
        try:
            self.conn.recv()
        except EOFError:
            self.kill()
            raise RuntimeError(f"verifier worker exited at start-up (exit status {self.proc.wait()})") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.conn.close()


class VerifierPool:
    """``workers`` reusable verifier processes; `map` runs calls in them under a hard deadline each.

    Thread-safe (one `map` at a time). Workers start on first use; `close` (also run at exit)
    ends them. After a fork the child process starts its own workers.
    """

    def __init__(self, workers: int = 1, preload: Sequence[str] = ()) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        self.size = workers
        self.preload = tuple(preload)
        self.stats = PoolStats()
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        atexit.register(self.close)

    def close(self) -> None:
        """Kill every worker (they hold no state worth keeping)."""
        with self._lock:
            if self._pid == os.getpid():
                for w in self._workers:
                    w.kill()
            self._workers = []

    def _ensure_workers(self) -> None:
        if self._pid != os.getpid():  # forked: the workers belong to the parent
            self._workers, self._pid = [], os.getpid()
        while len(self._workers) < self.size:
            self._workers.append(_Worker(self.preload))

    def map(
        self, fn: Callable[..., Any], calls: Sequence[tuple], deadline_s: float, fallback: Any
    ) -> tuple[list[Any], PoolStats]:
        """``[fn(*args) for args in calls]``, each call killed after ``deadline_s`` s and then ``fallback``.

        A call that raises also gives ``fallback`` (logged at debug level). Returns the results
        in order and this batch's `PoolStats` (also added to ``self.stats``).
        """
        if not deadline_s > 0 or deadline_s == float("inf"):
            raise ValueError(f"deadline_s must be a positive finite number of seconds, got {deadline_s!r}")
        ref = (fn.__module__, fn.__qualname__)
        results: list[Any] = [fallback] * len(calls)
        batch = PoolStats()
        with self._lock:
            self._workers = [w for w in self._workers if w.proc.poll() is None]
            pending = list(range(len(calls)))[::-1]
            busy: dict[_Worker, tuple[int, float]] = {}  # worker -> (call index, its deadline)
            while pending or busy:
                self._ensure_workers()
                for worker in list(self._workers):
                    if worker not in busy and pending:
                        i = pending.pop()
                        try:
                            worker.conn.send((*ref, tuple(calls[i])))
                        except OSError:  # died while idle: retry the call on a fresh worker
                            pending.append(i)
                            self._retire(worker)
                            continue
                        busy[worker] = (i, time.monotonic() + deadline_s)
                if not busy:
                    continue
                first_deadline = min(d for _, d in busy.values())
                ready = wait([w.conn for w in busy], timeout=min(max(0.0, first_deadline - time.monotonic()), 3600.0))
                now = time.monotonic()
                for worker, (i, deadline) in list(busy.items()):
                    if worker.conn in ready:
                        del busy[worker]
                        try:
                            status, value = worker.conn.recv()
                        except (EOFError, OSError):
                            batch.crashes += 1
                            log.warning(
                                "verifier worker died (exit status %s): call scored %r", worker.proc.wait(), fallback
                            )
                            self._retire(worker)
                            continue
                        if status == "ok":
                            results[i] = value
                        else:
                            batch.errors += 1
                            batch.first_error = batch.first_error or value
                            log.debug("verifier call raised %s: scored %r", value, fallback)
                    elif now >= deadline:
                        del busy[worker]
                        batch.timeouts += 1
                        log.debug("verifier call %d passed its %.3g s deadline: worker killed", i, deadline_s)
                        self._retire(worker)
            self.stats += batch
        return results, batch

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        if worker in self._workers:
            self._workers.remove(worker)
