"""Benchmark: frame embedding with the frozen EfficientNet-Lite0 (embed_frames) against a naive loop.

Embeds ``--frames`` random 224 x 224 uint8 frames (the ingestion node's frames) with the offline
EfficientNet-Lite0 backbone, each way taking turns in every repeat (interleaved, so load from other
processes hits all of them alike):

- naive (baseline): the encoder as ``load_backbone`` returns it, one frame per forward pass,
  eager, under ``torch.no_grad``;
- previous ``embed_frames``: the same encoder in batches of ``--batch`` under
  ``torch.inference_mode`` (what embed_frames did before BatchNorm / padding folding);
- ``embed_frames(runtime="torch")``: a folded inference copy (BatchNorm and "same" padding inside
  the convolutions, channels-last) in batches under ``torch.inference_mode``;
- ``embed_frames()`` (the default, ``runtime="auto"``; the headline): on CPU the folded trunk
  exported to ONNX and run by ONNX Runtime when onnxruntime (and onnx) are installed, else the
  torch path above, at ``--threads`` threads like the baselines;
- ``embed_frames(threads=0)``: the same on every core, as the ingestion stage runs it by default
  (``ingestion.threads: 0``; ONNX Runtime's threads only, its idle threads sleep).

The embed_frames figures include their one-time set-up (copy, folding, ONNX export) in every
call; the set-up alone (a call on one frame) is printed too.
Every way is checked to give the naive loop's features to 1e-4. A second table embeds 32 x 32
images (CIFAR-size) at ``image_size`` 224 (the default, upsampled 49x), 96, 64 and ``None`` (as is).

    .venv/bin/python bench/embed.py [--frames 128] [--batch 16] [--repeats 3] [--device cpu]
                                    [--threads 1] [--sweep]

One thread by default: on a machine shared with other processes, two OpenMP threads in torch
spin-wait for each other and the figures swing by 5x from one repeat to the next (``--threads 0``
takes torch's default).

Last stdout line: {"frames_per_s": <embed_frames() at 224>, "ratio_vs_naive": ..., ...}.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

import numpy as np
import torch
from _common import emit, interleaved, load_average, machine

from simlabel.models.backbones import embed_frames, load_backbone


def naive(frames: np.ndarray, encoder, device: torch.device) -> np.ndarray:
    """Baseline: one frame per forward pass, eager, as a first implementation would do it."""
    with torch.no_grad():
        return np.stack([encoder(torch.from_numpy(frame[None]).to(device))[0].cpu().numpy() for frame in frames])


def previous(frames: np.ndarray, encoder, device: torch.device, batch: int) -> np.ndarray:
    """embed_frames before folding: the loaded encoder in batches under inference_mode."""
    with torch.inference_mode():
        return np.concatenate(
            [encoder(torch.from_numpy(frames[lo : lo + batch]).to(device)).cpu().numpy() for lo in range(0, len(frames), batch)]
        )


def ways(frames: np.ndarray, encoder, device: torch.device, batch: int) -> dict:
    five = frames[:, None]  # (N, 1, H, W, 3): embed_frames takes (items, frames per item, ...)
    out = {
        "naive batch-of-1 eager": lambda: naive(frames, encoder, device),
        f"previous embed_frames (batch {batch})": lambda: previous(frames, encoder, device, batch),
        "embed_frames runtime=torch": lambda: embed_frames(five, encoder, batch, device, runtime="torch")[:, 0],
    }
    out["embed_frames() (default)"] = lambda: embed_frames(five, encoder, batch, device)[:, 0]
    out[EVERY_CORE] = lambda: embed_frames(five, encoder, batch, device, threads=0)[:, 0]
    return out


EVERY_CORE = "embed_frames(threads=0), every core"  # the ingestion stage's default (ingestion.threads: 0)


def default_runtime(device: torch.device) -> str:
    """Which runtime embed_frames' default (auto) picks here, and its one-time set-up in seconds."""
    logger = logging.getLogger("simlabel.models.backbones")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        started = time.perf_counter()
        embed_frames(np.zeros((1, 1, 224, 224, 3), np.uint8), load_backbone().to(device), 1, device)
        seconds = time.perf_counter() - started
    finally:
        logger.removeHandler(handler)
    said = " ".join(r.getMessage() for r in records)
    return ("ONNX Runtime" if "ONNX Runtime (CPU" in said else "torch"), seconds


def small_images(encoder, device: torch.device, batch: int, repeats: int) -> None:
    """32 x 32 images embedded at several image_size values (frames/s, best of the repeats)."""
    images = np.random.default_rng(1).integers(0, 256, (256, 1, 32, 32, 3), dtype=np.uint8)
    sizes = {"224 (default)": 224, "96": 96, "64": 64, "None (32, as is)": None}
    fns = {name: (lambda s=s: embed_frames(images, encoder, batch, device, image_size=s)) for name, s in sizes.items()}
    times = interleaved(fns, repeats)
    print("\n32 x 32 images (256), embed_frames() at each image_size:")
    for name, ts in times.items():
        print(f"  image_size {name:17s}: {len(images) / min(ts):8.1f} images/s")


def sweep(frames: np.ndarray, encoder, device: torch.device) -> None:
    """The default path's frames/s at several batch sizes (one call each after a warm-up)."""
    print("\nbatch-size sweep, embed_frames() (default runtime):")
    for batch in (1, 4, 8, 16, 32, 64):
        fns = {batch: lambda b=batch: embed_frames(frames[:, None], encoder, b, device)}
        ts = interleaved(fns, 2)[batch]
        print(f"  batch {batch:3d}: {len(frames) / min(ts):7.1f} frames/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch (and ONNX Runtime) threads; 0: torch's default (all cores)")
    parser.add_argument("--sweep", action="store_true", help="also time batch sizes 1..64")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"machine: {machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    print(f"before: {load_average()}")
    torch.manual_seed(0)
    encoder = load_backbone().to(device)
    frames = np.random.default_rng(0).integers(0, 256, (args.frames, 224, 224, 3), dtype=np.uint8)

    runtime, setup = default_runtime(device)
    print(f"embed_frames() runs {runtime} here; its set-up (copy, folding, export) plus one frame: {setup:.2f} s")
    fns = ways(frames, encoder, device, args.batch)
    reference = fns["naive batch-of-1 eager"]()
    for name, fn in fns.items():  # warm-up, and the same features as the naive loop
        err = float(np.abs(fn() - reference).max())
        assert err < 1e-4, f"{name}: max |difference| to the naive loop {err:.2e}"
        print(f"{name:38s} max |difference| to naive: {err:.1e}")
    times = interleaved(fns, args.repeats)
    naive_fps = args.frames / min(times["naive batch-of-1 eager"])
    print(f"\n{args.frames} frames 224 x 224, best of {args.repeats} interleaved repeats (median in brackets):")
    for name, ts in times.items():
        fps = args.frames / min(ts)
        print(f"  {name:38s}: {fps:7.1f} frames/s ({args.frames / statistics.median(ts):7.1f}), {fps / naive_fps:5.2f}x naive")
    small_images(encoder, device, args.batch, args.repeats)
    if args.sweep:
        sweep(frames, encoder, device)
    print(f"\nafter: {load_average()}")
    rates = {name: round(args.frames / min(ts), 1) for name, ts in times.items()}
    head = rates["embed_frames() (default)"]
    emit({"frames_per_s": head, "ratio_vs_naive": round(head / naive_fps, 2), "naive_frames_per_s": round(naive_fps, 1),
          "frames_per_s_every_core": rates[EVERY_CORE], "device": str(device), "default_runtime": runtime,
          "threads": torch.get_num_threads(), "by_way": rates})


if __name__ == "__main__":
    started = time.perf_counter()
    main()
