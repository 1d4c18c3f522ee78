"""One training epoch of a demo-sized problem on a device, with AMP where it applies.

    python bench/gpu.py --device cuda [--items 20000 --annotators 50 --frames 8 --dim 1280] [--soft-entries 8]

Reports items/s, peak device memory and the share of the epoch the device waits for data: the
same epoch is timed with the inputs resident on the device and with the inputs copied batch by
batch from (pinned) host memory, as memory-mapped frames are; their gap is the starvation.
``--soft-entries k`` times the sampled step (``training.soft_entries_per_item``, the scale mode,
whose shapes come from the host so that it never waits for the device) instead of the dense one.
Last line: one JSON object (`items_per_s`, `peak_gib`, `data_wait_share`).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from _common import emit, load_average

from simlabel.core.kappa import kappa_matrix
from simlabel.models.factory import model_from_args
from simlabel.training.config import TrainConfig
from simlabel.training.loop import (
    BatchSource,
    Optimisation,
    prepare_data,
    train_epoch,
    with_label_rows,
)
from simlabel.training.targets import batch_targets


def problem(items: int, annotators: int, frames: int, dim: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 8, items)
    tokens = (rng.normal(0, 2, (8, dim))[truth][:, None] + rng.normal(size=(items, frames, dim))).astype(np.float32)
    labels = np.where(rng.random((items, annotators)) < 0.2, truth[:, None], -1)
    return tokens, labels


def epoch_seconds(tokens, labels, device: torch.device, resident: bool, batch: int,
                  soft_entries: int | None = None) -> tuple[float, float]:
    config = TrainConfig.from_params({"device": str(device), "batch_size": batch, "max_epochs": 1, "hidden": 256,
                                      "soft_entries_per_item": soft_entries})
    n = len(labels)
    train, val = np.arange(n) < int(0.8 * n), np.arange(n) >= int(0.8 * n)
    data = prepare_data(tokens, labels, train, val, config, device)
    if not resident:  # host copies per batch, as from a memory map of frames
        data.inputs = BatchSource(tokens, device)
    model = model_from_args(config.model_args(tokens.shape[-1], tokens.shape[1], labels.shape[1], 8),
                            data.feature_mean, data.feature_std).to(device)
    optimisation = Optimisation.create(model, config, math.ceil(len(data.train_items) / batch), device)
    similarity = torch.as_tensor(kappa_matrix(np.where(train[:, None], labels, -1), 8, 2), dtype=torch.float32, device=device)
    targets = batch_targets(config, None, torch.Generator().manual_seed(0))
    if not targets.dense_rows:  # the sampled step reads compressed label rows
        data = with_label_rows(data, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    train_epoch(model, data, targets, optimisation, similarity, None, None, config, torch.Generator().manual_seed(0))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return time.perf_counter() - started, peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--soft-entries", type=int, default=None, help="training.soft_entries_per_item (default: dense steps)")
    args = parser.parse_args()
    device = torch.device(args.device)
    tokens, labels = problem(args.items, args.annotators, args.frames, args.dim)
    print(f"{args.items} items x {args.frames} frames x {args.dim}, {args.annotators} annotators, batch {args.batch}, "
          f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"{'sampled steps, k = ' + str(args.soft_entries) if args.soft_entries else 'dense steps'}; {load_average()}")
    epoch_seconds(tokens, labels, device, True, args.batch, args.soft_entries)  # warm-up (kernels, allocator)
    resident, host, peak = [], [], None
    for _ in range(args.repeats):  # interleaved, so load hits both alike
        seconds, peak = epoch_seconds(tokens, labels, device, True, args.batch, args.soft_entries)
        resident.append(seconds)
        host.append(epoch_seconds(tokens, labels, device, False, args.batch, args.soft_entries)[0])
    t_resident, t_host = float(np.median(resident)), float(np.median(host))
    n_train = int(0.8 * args.items)
    print(f"epoch, inputs on the device: {t_resident:.3f} s ({n_train / t_resident:.0f} items/s)")
    print(f"epoch, inputs copied from the host per batch: {t_host:.3f} s ({n_train / t_host:.0f} items/s)")
    emit({"items_per_s": round(n_train / t_resident, 1), "items_per_s_host_inputs": round(n_train / t_host, 1),
          "peak_gib": None if peak is None else round(peak, 3), "data_wait_share": round(max(0.0, 1 - t_resident / t_host), 3)})


if __name__ == "__main__":
    main()
