"""One run at a time per project: a lock file ``data/.simlabel-run.lock``.

Two runs at once would write the same outputs (``data/``) and leave a mix of both. The lock is
an exclusive ``flock`` on the open lock file, so the kernel releases it when its holder dies
(even by kill -9); the file holds the holder's pid, host, start time and command for the
message another run gets. A lock file that still names a holder when the lock is free was
left by a run that died: it is taken over with a warning.

``RunLockHooks`` (Kedro hooks) takes the lock before a pipeline runs, removes the temporaries
of atomic writes a killed run left under ``data/``, and releases the lock when the run ends.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from kedro.framework.hooks import hook_impl

from simlabel.atomic import clean_stale_temporaries
from simlabel.errors import UserError
from simlabel.runtime import distributed_rank_and_size

logger = logging.getLogger(__name__)

LOCK_FILE = Path("data") / ".simlabel-run.lock"


class RunLockedError(UserError):
    """Another live process holds the project's run lock."""


class RunLock:
    """An exclusive, per-project run lock; re-entrant within one process.

    Parameters
    ----------
    path : the lock file (created with its folder if needed; never deleted, so every process
        locks the same file).
    """

    _held: dict[Path, tuple[int, int]] = {}  # resolved path -> (fd, depth), per process

    def __init__(self, path: str | Path):
        self.path = Path(path).resolve()

    @property
    def held(self) -> bool:
        """Whether this process holds the lock."""
        return self.path in RunLock._held

    def acquire(self) -> bool:
        """Take the lock, or raise ``RunLockedError`` naming the live holder.

        Returns
        -------
        True if this call took the lock, False if this process already held it (nested run).

        Raises
        ------
        RunLockedError
            Another process holds the lock.
        """
        if self.held:
            fd, depth = RunLock._held[self.path]
            RunLock._held[self.path] = (fd, depth + 1)
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLockedError(self._busy_message(holder)) from None
        previous = _read_holder(fd)
        if previous.get("pid"):
            logger.warning(
                "taking over the run lock %s left by pid %s (%s), which is no longer running",
                self.path, previous["pid"], previous.get("command", "?"),
            )
        _write_holder(fd)
        RunLock._held[self.path] = (fd, 1)
        return True

    def release(self) -> None:
        """Give the lock back (once per ``acquire``); the file is emptied, not deleted."""
        if not self.held:
            return
        fd, depth = RunLock._held.pop(self.path)
        if depth > 1:
            RunLock._held[self.path] = (fd, depth - 1)
            return
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def _busy_message(self, holder: dict) -> str:
        pid = holder.get("pid", "?")
        return (
            f"another simlabel run is using this project: pid {pid} on {holder.get('host', '?')}, started "
            f"{holder.get('started', '?')} ({holder.get('command', '?')}); lock file {self.path}. "
            f"Check it with `ps -o pid,etime,args -p {pid}`; wait for it to finish or stop it (`kill {pid}`). "
            "Two runs at once would overwrite each other's outputs in data/"
        )

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> dict:
    """The holder recorded in the lock file (empty if none or unreadable)."""
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        holder = json.loads(text) if text.strip() else {}
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_holder(fd: int) -> None:
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300],
    }
    data = json.dumps(holder).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


class RunLockHooks:
    """Kedro hooks: one ``kedro run`` at a time per project.

    Register in ``settings.py``: ``HOOKS = (RunLockHooks(),)``. Before a pipeline runs it takes
    ``<project>/data/.simlabel-run.lock`` (``RunLockedError`` if another run holds it) and
    removes the atomic-write temporaries a killed run left under ``data/``; it releases the
    lock after the run, whether it succeeded or failed.
    """

    def __init__(self, lock_file: str | Path = LOCK_FILE):
        self._lock_file = Path(lock_file)
        self._locks: list[RunLock] = []  # a stack: a run may start another run in its process

    @hook_impl
    def before_pipeline_run(self, run_params: dict) -> None:
        if distributed_rank_and_size()[0] != 0:  # under torchrun rank 0 holds the lock for all ranks
            self._locks.append(None)
            return
        project = Path(run_params.get("project_path") or Path.cwd())
        path = self._lock_file if self._lock_file.is_absolute() else project / self._lock_file
        lock = RunLock(path)
        if lock.acquire():  # a nested run must not remove the temporaries of the outer one
            clean_stale_temporaries(path.parent)
        self._locks.append(lock)

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._release()

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._release()

    def _release(self) -> None:
        lock = self._locks.pop() if self._locks else None
        if lock is not None:
            lock.release()
