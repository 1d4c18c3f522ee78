"""Shared helpers of the benchmark scripts (not a test module: timings never go into tests).

Run the scripts from the project root, e.g. ``.venv/bin/python bench/kappa.py``. The package is
imported from ``src/`` so the scripts also work when the project is not pip-installed.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

CIFAR10N = Path(os.environ.get("SIMLABEL_CIFAR10N", ROOT.parent / "shared" / "data" / "cifar10n"))


def load_cifar10n():
    """The full CIFAR-10N (N, A) label matrix (-1 = missing), as the label_matrix node builds it.

    Returns (y, n_classes, seconds): ``y`` is the int64 array exactly as
    ``build_label_matrix(...)[0].to_numpy()`` returns it (pandas gives a Fortran-ordered view).
    """
    import pandas as pd

    from simlabel.core.labels import build_label_matrix

    started = time.perf_counter()
    labels = pd.read_csv(CIFAR10N / "labels.csv")
    items = pd.read_csv(CIFAR10N / "items.csv")["item_id"]
    frame, classes = build_label_matrix(labels, items.astype(str).tolist())
    return frame.to_numpy(), len(classes), time.perf_counter() - started


def best_of(fn, repeats: int):
    """(best seconds, all seconds, last result) of ``repeats`` calls of ``fn()``."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), times, result


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux: ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}"


def emit(summary: dict) -> None:
    """Print the headline figures as the last stdout line (one JSON object)."""
    sys.stdout.flush()
    print(json.dumps(summary), flush=True)


def interleaved(fns: dict, repeats: int) -> dict:
    """Seconds of every call of each ``fns[name]()``, the names taking turns in every repeat.

    Interleaving puts the baseline and the candidate under the same load, so their ratio holds
    even when other processes come and go on the machine. Returns ``{name: [seconds, ...]}``.
    """
    times: dict = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    return times


def load_average() -> str:
    """The 1/5/15-minute load averages, as ``uptime`` prints them (how busy the cores were)."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} logical CPUs"
