"""Atomic writes: flushed to disk, permissions from the umask, leftovers of killed runs removed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import simlabel.atomic
from simlabel.atomic import atomic_path, clean_stale_temporaries, current_umask


@pytest.fixture
def umask():
    """Set the umask for one test; restore it afterwards."""
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_permissions_follow_the_umask_not_mkstemp(tmp_path, umask, mask, expected):
    umask(mask)
    assert current_umask() == mask
    target = tmp_path / "out.csv"
    with atomic_path(target) as tmp:
        tmp.write_text("a\n1\n")
    assert mode(target) == expected
    assert target.read_text() == "a\n1\n"


def test_the_file_and_its_folder_are_flushed(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real_fsync(fd))
    with atomic_path(tmp_path / "out.bin") as tmp:
        tmp.write_bytes(b"x")
    assert synced[0].startswith(str(tmp_path / ".out.tmp-"))  # the file, before the rename
    assert synced[-1] == str(tmp_path)  # the folder, after it


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_stale_temporaries_of_a_killed_run_are_removed(tmp_path):
    """A process killed inside ``atomic_path`` leaves its temporary; cleaning removes it and
    only it (and leftovers of the older write_clip naming)."""
    target = tmp_path / "sub" / "table.parquet"
    script = textwrap.dedent(f"""
        import os, signal
        from simlabel.atomic import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            tmp.write_bytes(b"half")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    subprocess.run([sys.executable, "-c", script], check=False)
    leftovers = list((tmp_path / "sub").iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".table.tmp-") and not target.exists()
    old_clip = tmp_path / ".clip7.ab12cd_3.tmp.avi"
    keep = [tmp_path / "table.tmp-notes.txt", tmp_path / ".gitkeep", tmp_path / ".simlabel-run.lock", tmp_path / "a.csv"]
    for path in [old_clip, *keep]:
        path.write_text("x")
    removed = clean_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([leftovers[0], old_clip])
    assert all(path.exists() for path in keep) and not leftovers[0].exists()
    assert clean_stale_temporaries(tmp_path / "absent") == []


def test_write_clip_writes_through_atomic_path(tmp_path, umask, monkeypatch):
    from simlabel.media.video import write_clip

    used = []
    real = simlabel.atomic.atomic_path

    def spy(target):
        used.append(target)
        return real(target)

    monkeypatch.setattr(simlabel.atomic, "atomic_path", spy)
    path = tmp_path / "clip.avi"
    write_clip(path, np.zeros((2, 16, 16, 3), np.uint8))
    assert used == [path] and mode(path) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.avi"]
