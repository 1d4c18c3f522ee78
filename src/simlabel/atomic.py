"""Atomic file writes: a temporary file beside the target, flushed to disk and renamed onto it
on success, so a crash (even kill -9 or a power cut) never leaves a half-written file behind.

Temporaries are named ``.<stem>.tmp-<random><suffix>``; those a killed run left behind are
removed by ``clean_stale_temporaries`` (called by ``simlabel.runlock.RunLockHooks`` once the
run lock is held, when no other run can be writing).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

TMP_INFIX = ".tmp-"
# ".<stem>.tmp-<8 random chars><suffix>" (atomic_path) and ".<stem>.<8>.tmp.avi" (older write_clip)
STALE_TEMPORARY = re.compile(r"^\..*(\.tmp-[a-z0-9_]{8}(\.[^.]*)?|\.[a-z0-9_]{8}\.tmp\.avi)$")


def current_umask() -> int:
    """The process umask, read without changing it where ``/proc`` allows (thread-safe)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_path(path: str | Path, directory: bool = False) -> None:
    """Flush a file (or, best effort, a directory entry) to disk."""
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        if directory:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


@contextmanager
def atomic_path(target: str | Path):
    """Yield a temporary path in ``target``'s folder (same suffix, so writers that infer the
    format from it still work); when the block succeeds, flush it to disk, give it the
    permissions a new file gets (``0o666 & ~umask``; ``mkstemp`` makes 0600) and rename it onto
    ``target``. On failure the temporary is removed and ``target`` is left as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}{TMP_INFIX}", suffix=target.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        _fsync_path(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_path(target.parent, directory=True)


def clean_stale_temporaries(root: str | Path) -> list[Path]:
    """Remove the temporaries of atomic writes (``.<stem>.tmp-*``) left under ``root`` by a
    killed run. Only safe while no run writes there: call it with the run lock held.

    Returns
    -------
    The removed files (empty when ``root`` does not exist).
    """
    removed = []
    for folder, _, files in os.walk(root, followlinks=False):
        for name in files:
            if STALE_TEMPORARY.match(name):
                path = Path(folder) / name
                path.unlink(missing_ok=True)
                removed.append(path)
    if removed:
        logger.warning("removed %d temporary files left by an interrupted run, e.g. %s", len(removed), removed[0])
    return removed
