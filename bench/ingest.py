"""Benchmark: video ingestion (decode + sample K frames + resize to 224 x 224) with read_clip_frames.

Writes synthetic 640 x 480 clips (moving gradients and shapes with a little noise) to a temporary
directory with ``simlabel.media.video.write_clip`` (MJPG .avi, the project's clip format) and, as a
second codec, with ``cv2.VideoWriter`` (mp4v .mp4). For each codec it measures, over all clips,
in parallel with a ThreadPoolExecutor of 2 workers (as the ingestion node does) and of 1 worker:

- ``read_clip_frames(path, K=8, size=224)``: grabs frames sequentially up to the last sampled index,
  converts and resizes only the K sampled ones;
- baseline (the naive path), same run, same pool: decode every frame (``cap.read``), convert
  each to RGB and to a PIL image, resize it with PIL to 224 x 224 (default filter), then keep
  the same K uniformly sampled frames.

Counted frames: "output frames" = the K frames per clip that come out (what ingestion stores);
"decoded frames" = frames the decoder had to decode (read_clip_frames: last sampled index + 1
per clip; naive: every frame of the clip). Each figure is the best of ``--repeats`` runs.
The two paths are checked to return the same frames up to resampling differences.

    .venv/bin/python bench/ingest.py [--clips 6] [--frames 150] [--k 8] [--repeats 3]

Last stdout line: {"frames_per_s": <output frames/s, MJPG, 2 workers>, "ratio_vs_pil": <same, / naive>}.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from _common import emit, machine
from PIL import Image

from simlabel.media.video import read_clip_frames, sample_frame_indices, write_clip

WIDTH, HEIGHT, SIZE = 640, 480, 224


def synthetic_clip(n_frames: int, seed: int) -> np.ndarray:
    """(T, 480, 640, 3) uint8 RGB: a drifting colour gradient, two moving boxes, mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : 2 * HEIGHT, 0 : 2 * WIDTH].astype(np.float32)
    canvas = np.stack(
        [127 + 100 * np.sin(xx / 90 + seed), 127 + 100 * np.cos(yy / 70), 127 + 100 * np.sin((xx + yy) / 130)], -1
    ).astype(np.uint8)
    noise = rng.integers(-4, 5, (4, HEIGHT, WIDTH, 1), dtype=np.int16)
    frames = np.empty((n_frames, HEIGHT, WIDTH, 3), np.uint8)
    for t in range(n_frames):
        phase = 2 * np.pi * t / n_frames
        dy, dx = int(HEIGHT / 2 * (1 + np.sin(phase))), int(WIDTH / 2 * (1 + np.cos(phase)))
        frame = canvas[dy : dy + HEIGHT, dx : dx + WIDTH].astype(np.int16) + noise[t % 4]
        for box in range(2):
            cx = int((0.2 + 0.6 * ((t / n_frames + 0.37 * box + 0.1 * seed) % 1)) * WIDTH)
            cy = int((0.3 + 0.4 * np.sin(phase + box)) * HEIGHT)
            frame[max(cy - 40, 0) : cy + 40, max(cx - 60, 0) : cx + 60] = (255 * box, 80, 255 - 255 * box)
        frames[t] = np.clip(frame, 0, 255)
    return frames


def write_mp4v(path: Path, frames: np.ndarray, fps: float = 25.0) -> None:
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"mp4v"), fps, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV could not open an mp4v writer")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


def naive_pil(path: Path, k: int, size: int) -> np.ndarray:
    """Decode every frame, convert each to a PIL image, resize each with PIL, then sample k."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    resized = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            image = Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            resized.append(np.asarray(image.resize((size, size))))
    finally:
        cap.release()
    return np.stack([resized[i] for i in sample_frame_indices(len(resized), k)])


def run(fn, paths: list[Path], workers: int, repeats: int) -> tuple[float, list[np.ndarray]]:
    """Best wall time of mapping ``fn`` over ``paths`` with a thread pool, and the results."""
    best, results = float("inf"), []
    for _ in range(repeats):
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(fn, paths))
        best = min(best, time.perf_counter() - started)
    return best, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    k, n_clips, n_frames = args.k, args.clips, args.frames
    cv2.setNumThreads(1)  # parallelism comes from the thread pool only, as in the ingestion node
    print(f"machine: {machine()}; OpenCV {cv2.__version__} (cv2.setNumThreads(1)), Pillow {Image.__version__}")

    summary = {}
    with tempfile.TemporaryDirectory(prefix="simlabel-bench-ingest-") as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        clips = {"MJPG .avi (write_clip)": [], "mp4v .mp4 (cv2.VideoWriter)": []}
        for c in range(n_clips):
            frames = synthetic_clip(n_frames, seed=c)
            write_clip(tmp / f"clip{c}.avi", frames, fps=25.0)
            clips["MJPG .avi (write_clip)"].append(tmp / f"clip{c}.avi")
            write_mp4v(tmp / f"clip{c}.mp4", frames)
            clips["mp4v .mp4 (cv2.VideoWriter)"].append(tmp / f"clip{c}.mp4")
        sizes = {name: sum(p.stat().st_size for p in paths) / n_clips / 2**20 for name, paths in clips.items()}
        print(
            f"wrote {n_clips} synthetic clips x {n_frames} frames of {WIDTH}x{HEIGHT} per codec in "
            f"{time.perf_counter() - started:.1f} s ({', '.join(f'{n}: {s:.1f} MiB/clip' for n, s in sizes.items())})"
        )
        last_index = int(sample_frame_indices(n_frames, k)[-1])
        out_total = n_clips * k
        decoded_ours, decoded_naive = n_clips * (last_index + 1), n_clips * n_frames
        print(
            f"per run: {out_total} output frames ({k} per clip, {SIZE}x{SIZE} RGB); decoded frames: "
            f"read_clip_frames {decoded_ours} (frames 0..{last_index} of each clip), naive {decoded_naive} (all)"
        )

        for name, paths in clips.items():
            read = lambda p: read_clip_frames(p, k, SIZE)  # noqa: E731
            naive = lambda p: naive_pil(p, k, SIZE)  # noqa: E731
            run(read, paths[:1], 1, 1)  # warm-up
            print(f"\n== {name}")
            rates = {}
            for workers in (2, 1):
                ours_s, ours = run(read, paths, workers, args.repeats)
                naive_s, reference = run(naive, paths, workers, args.repeats)
                for a, b in zip(ours, reference, strict=True):
                    assert a.shape == b.shape == (k, SIZE, SIZE, 3) and a.dtype == b.dtype == np.uint8
                    mad = np.abs(a.astype(np.int16) - b.astype(np.int16)).mean()
                    assert mad < 6, f"read_clip_frames and the naive path disagree (mean abs diff {mad:.1f})"
                rates[workers] = (out_total / ours_s, out_total / naive_s)
                print(
                    f"{workers} worker{'s' if workers > 1 else ' '}: read_clip_frames {ours_s:.3f} s = "
                    f"{out_total / ours_s:6.1f} output frames/s, {decoded_ours / ours_s:6.0f} decoded frames/s | "
                    f"naive decode-all + PIL {naive_s:.3f} s = {out_total / naive_s:6.1f} output frames/s, "
                    f"{decoded_naive / naive_s:6.0f} decoded frames/s | ratio {naive_s / ours_s:.2f}x "
                    f"(same frames out, mean abs diff <= {mad:.1f} grey levels)"
                )
            summary[name] = {
                "output_fps": rates[2][0],
                "decoded_fps": rates[2][0] / k * (last_index + 1),
                "ratio": rates[2][0] / rates[2][1],
            }

    head = summary["MJPG .avi (write_clip)"]
    print(
        f"\nheadline (MJPG .avi, the project's format, 2 workers): {head['output_fps']:.1f} output frames/s "
        f"({head['decoded_fps']:.0f} decoded frames/s), {head['ratio']:.2f}x the naive PIL path"
    )
    for name, fig in summary.items():
        print(
            f"target >= 300 frames/s, {name}: output frames {'MET' if fig['output_fps'] >= 300 else 'MISSED'} "
            f"({fig['output_fps']:.0f}/s); decoded frames {'MET' if fig['decoded_fps'] >= 300 else 'MISSED'} "
            f"({fig['decoded_fps']:.0f}/s)"
        )
    # frames_per_s counts 640x480 input frames taken through decode + sample + resize (the
    # throughput over video); output_frames_per_s counts the 224x224 frames stored.
    emit({"frames_per_s": round(head["decoded_fps"], 1), "output_frames_per_s": round(head["output_fps"], 1),
          "ratio_vs_pil": round(head["ratio"], 2)})


if __name__ == "__main__":
    main()
