"""One run per run directory: an exclusive, self-releasing lock on ``RUN_DIR/.lock``.

`RunDirLock` takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on the lock file and writes the holder's
pid into it. The kernel drops the lock when the holding process exits in any way (return,
exception, ``kill -9``, power loss of the process), so a lock is never stale: a lock file left by
a dead process is simply taken over. A second process on the same directory gets `RunDirBusy`
at once, one line naming the directory and the holder's pid.

The lock is advisory (it stops our own runs, not other programs) and needs ``fcntl`` (POSIX);
on a platform without it the lock is a no-op with a one-time warning. On network filesystems
``flock`` may be local to one machine.

Usage::

    with RunDirLock(out_dir):
        ...  # the whole run: resume, train, save
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

__all__ = ["LOCK_FILE", "RunDirBusy", "RunDirLock", "lock_run_dir"]

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"


class RunDirBusy(ValueError):
    """Another live process holds the run directory; the message is one line with its pid.

    A ValueError (the output directory given is unusable), so CLIs report it as one line.
    """


class RunDirLock:
    """Exclusive lock on a run directory for the life of a run (a context manager; re-entrant use is an error).

    ``acquire`` creates the directory if needed and raises `RunDirBusy` when another process
    (or another `RunDirLock` in this process) holds it; ``release`` (also on ``__exit__``) lets go.
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunDirLock:
        if self._fd is not None:
            raise RuntimeError(f"{self.run_dir}: this lock is already held")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is None:
            log.warning("no fcntl on this platform: %s is not locked against a second run", self.run_dir)
        else:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_pid(fd)
                os.close(fd)
                who = f"process {holder}" if holder else "another process"
                raise RunDirBusy(
                    f"run directory {self.run_dir} is in use by {who} (lock {self.path}); "
                    "wait for that run to end or choose another output directory"
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        with contextlib.suppress(OSError):
            os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Let go of the lock (the pid stays in the file, harmless: a lock file alone locks nothing)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> RunDirLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    """The holder's pid as written in the lock file (None while it is still being written)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def lock_run_dir(run_dir: str | os.PathLike) -> contextlib.AbstractContextManager:
    """The run's lock, taken by the launching process only (``RANK`` 0 or unset under torchrun).

    The other ranks of a torchrun job share the directory with rank 0, so they take no lock; if
    rank 0 is refused, torchrun stops the whole job.
    """
    if not run_dir or int(os.environ.get("RANK", "0")) != 0:
        return contextlib.nullcontext()
    return RunDirLock(run_dir)
