"""One run at a time per project: a second run stops naming the first one's pid; a lock left
by a dead run is taken over."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from simlabel.errors import UserError
from simlabel.runlock import RunLock, RunLockedError, RunLockHooks
from tests.test_bad_inputs import kedro_run, minimal_project


def hold_lock(path):
    """A subprocess that takes the lock at ``path`` and waits until killed."""
    script = textwrap.dedent(f"""
        import sys, time
        from simlabel.runlock import RunLock
        RunLock({str(path)!r}).acquire()
        print("locked", flush=True)
        time.sleep(120)
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_process_is_refused_with_the_holders_pid_then_takes_a_dead_holders_lock(tmp_path, caplog):
    path = tmp_path / "data" / ".simlabel-run.lock"
    holder = hold_lock(path)
    try:
        with pytest.raises(RunLockedError) as error:
            RunLock(path).acquire()
        message = str(error.value)
        assert f"another simlabel run is using this project: pid {holder.pid} on " in message
        assert f"`ps -o pid,etime,args -p {holder.pid}`" in message and f"`kill {holder.pid}`" in message
        assert isinstance(error.value, UserError)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    lock = RunLock(path)
    with caplog.at_level(logging.WARNING, logger="simlabel.runlock"):
        assert lock.acquire()
    assert f"left by pid {holder.pid}" in caplog.text and "no longer running" in caplog.text
    assert json.loads(path.read_text())["pid"] == os.getpid()
    lock.release()
    assert path.read_text() == ""  # released: emptied, not deleted


def test_the_lock_is_reentrant_within_a_process_and_released_by_the_last_release(tmp_path):
    path = tmp_path / "run.lock"
    outer, inner = RunLock(path), RunLock(path)
    assert outer.acquire() and not inner.acquire()
    inner.release()
    assert outer.held
    outer.release()
    assert not outer.held
    with RunLock(path) as again:
        assert again.held


def test_hooks_lock_the_project_clean_stale_temporaries_and_release(tmp_path):
    data = tmp_path / "data" / "02_intermediate"
    data.mkdir(parents=True)
    stale = data / ".frames.tmp-abcd1234.npy"
    stale.write_bytes(b"half")
    hooks = RunLockHooks()
    hooks.before_pipeline_run(run_params={"project_path": str(tmp_path)})
    assert not stale.exists()
    lock_file = tmp_path / "data" / ".simlabel-run.lock"
    assert json.loads(lock_file.read_text())["pid"] == os.getpid()
    hooks.after_pipeline_run()
    assert lock_file.read_text() == ""
    hooks.before_pipeline_run(run_params={"project_path": str(tmp_path)})
    hooks.on_pipeline_error()
    assert not RunLock(lock_file).held


def test_kedro_run_refuses_while_another_run_holds_the_project(tmp_path):
    settings = "\nfrom simlabel.runlock import RunLockHooks\n\nHOOKS = (RunLockHooks(),)\n"
    project = minimal_project(tmp_path / "project", settings_extra=settings)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "labels.csv").write_text("item_id,annotator_id,label\n0,x,0\n")
    np.save(folder / "features.npy", np.ones((1, 2), np.float32))
    stale = project / "data" / "03_primary" / ".label_matrix.tmp-zzzz9999.parquet"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"half")

    result = kedro_run(project, f"--params=dataset_dir={folder}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not stale.exists() and (project / "data" / ".simlabel-run.lock").read_text() == ""

    holder = hold_lock(project / "data" / ".simlabel-run.lock")
    try:
        result = kedro_run(project, f"--params=dataset_dir={folder}")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output, output
    assert f"Error: another simlabel run is using this project: pid {holder.pid}" in result.stderr
