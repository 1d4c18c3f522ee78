"""Where and how torch runs: device choice shared by ingestion, training and predict.

Imports torch only where a function needs it: the hooks and settings import this module in
every ``kedro run``, and stages without a model (label_matrix, similarity, reporting, demo_data)
start about 2 s sooner without torch.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def resolve_device(name: str) -> torch.device:
    """``auto`` = CUDA when present, else CPU; otherwise the named device."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def use_threads(threads: int) -> None:
    """torch intra-op (and, where still possible, inter-op) threads, and OpenMP's for child
    processes. torch fixes the inter-op pool at its first parallel work; later calls keep it.
    Before torch is imported, the environment is enough: torch takes its intra-op threads from
    ``OMP_NUM_THREADS`` when it loads."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch = sys.modules.get("torch")
    if torch is None:
        return
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:
        pass


# glibc's malloc hands a freed block above a moving threshold (128 kB at first) back to the kernel
# and maps a fresh one for the next request, which then page-faults in zeroed, page by page. A
# training step frees and re-requests the same few-MB gradients every step: CIFAR-10N's (7470,
# 128) heads gradient took 1.9 ms to zero-fill in such a process against 0.27 ms in memory the
# process kept (its sampled step's gradient product 4.7 against 1.0 ms), in 3 of 6 processes,
# depending on each one's malloc history. Kept: blocks below 32 MB (the most glibc's moving threshold
# ever reaches by itself), and up to 256 MB of freed memory at the top of the heap.
MALLOC_SETTINGS = {"MALLOC_MMAP_THRESHOLD_": (-3, 32 << 20), "MALLOC_TRIM_THRESHOLD_": (-1, 256 << 20)}


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for reuse (``MALLOC_SETTINGS``), in this process
    through ``mallopt`` and in child processes through the environment; values already in the
    environment win. Returns whether ``mallopt`` took them (False off glibc: nothing changes)."""
    applied = True
    try:
        mallopt = ctypes.CDLL(None).mallopt if sys.platform.startswith("linux") else None
    except (OSError, AttributeError):
        mallopt = None
    for name, (option, default) in MALLOC_SETTINGS.items():
        value = os.environ.setdefault(name, str(default))
        applied = applied and mallopt is not None and value.isdigit() and mallopt(option, int(value)) == 1
    return applied


def distributed_rank_and_size() -> tuple[int, int]:
    """(rank, world size) of an initialised torch.distributed process group, else (0, 1)."""
    torch = sys.modules.get("torch")  # no torch loaded: no process group either
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def output_root(dataset_dir: str | None, configured_dir: str) -> str:
    """Where a run's outputs go (a config resolver: ``${output_root:<runtime dataset_dir>,
    <globals dataset_dir>}``): ``data`` for the folder configured in ``globals.yml`` (the demo by
    default; the outputs DVC tracks), ``data/<folder name>`` for a folder given at run time
    (``--params=dataset_dir=...``), so a bring-your-own-data run never overwrites them."""
    if not dataset_dir or os.path.normpath(str(dataset_dir)) == os.path.normpath(str(configured_dir)):
        return "data"
    return f"data/{os.path.basename(os.path.normpath(os.path.abspath(str(dataset_dir))))}"
