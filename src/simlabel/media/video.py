"""Video clip I/O with OpenCV: uniform frame sampling, robust decoding, atomic MJPG writing.

Frames are always returned and accepted as RGB ``uint8``; OpenCV's BGR order
stays inside this module.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np


class VideoDecodeError(ValueError):
    """A video file is missing, unreadable, or has too few frames. The message names the file."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        super().__init__(f"{self.path}: {reason}")


def sample_frame_indices(n_frames: int, k: int) -> np.ndarray:
    """Indices of ``k`` frames spread uniformly over a clip of ``n_frames`` frames.

    The clip is cut into ``k`` equal segments and the centre frame of each is
    taken: ``floor((j + 0.5) * n_frames / k)`` for ``j = 0..k-1``.

    Parameters
    ----------
    n_frames : int
        Number of frames in the clip (>= k).
    k : int
        Number of frames to sample (>= 1).

    Returns
    -------
    np.ndarray, shape (k,), int64
        Sorted, distinct indices in ``[0, n_frames)``.

    Examples
    --------
    >>> sample_frame_indices(24, 8).tolist()
    [1, 4, 7, 10, 13, 16, 19, 22]
    """
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if int(n_frames) != n_frames or n_frames < k:
        raise ValueError(
            f"need n_frames >= k to sample k distinct frames, got n_frames={n_frames!r}, k={k}"
        )
    # Integer arithmetic: (2j + 1) * n // (2k) == floor((j + 0.5) * n / k), no float rounding.
    return (2 * np.arange(k, dtype=np.int64) + 1) * int(n_frames) // (2 * int(k))


def _open(path: Path) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise VideoDecodeError(
            path, "cannot be opened as a video (corrupt, truncated or not a video file)"
        )
    return cap


def _count_frames(path: Path) -> int:
    """Count decodable frames by grabbing them all (no decode to pixels)."""
    cap = _open(path)
    try:
        n = 0
        while cap.grab():
            n += 1
        return n
    finally:
        cap.release()


def _to_rgb(frame: np.ndarray, size: int) -> np.ndarray:
    h, w = frame.shape[:2]
    interp = cv2.INTER_AREA if size * size < h * w else cv2.INTER_LINEAR
    frame = cv2.resize(
        frame, (size, size), interpolation=interp
    )  # resize first: convert fewer pixels
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _read_indices(path: Path, indices: np.ndarray, size: int) -> np.ndarray | None:
    """Read the frames at sorted ``indices`` sequentially; None if the stream ends early."""
    out = np.empty((len(indices), size, size, 3), np.uint8)
    cap = _open(path)
    try:
        pos, j = 0, 0
        while j < len(indices):
            if not cap.grab():
                return None
            if pos == indices[j]:
                ok, frame = cap.retrieve()
                if not ok or frame is None or frame.size == 0:
                    raise VideoDecodeError(path, f"frame {pos} could not be decoded")
                out[j] = _to_rgb(frame, size)
                j += 1
            pos += 1
        return out
    finally:
        cap.release()


def read_clip_frames(path: str | os.PathLike, k: int, size: int = 224) -> np.ndarray:
    """Decode ``k`` uniformly sampled frames of a video, resized to ``size`` x ``size`` RGB.

    Frames are read sequentially (``grab`` every frame, ``retrieve`` only the
    sampled ones). The container's frame count is trusted only if positive and
    confirmed by the read; otherwise the frames are counted in a first pass.
    Frames are resized to a square without keeping the aspect ratio
    (``INTER_AREA`` when the pixel count shrinks, ``INTER_LINEAR`` otherwise).

    Parameters
    ----------
    path : str or os.PathLike
        Video file readable by OpenCV's FFmpeg backend.
    k : int
        Number of frames to sample (>= 1), see :func:`sample_frame_indices`.
    size : int
        Output side length in pixels (>= 1).

    Returns
    -------
    np.ndarray, shape (k, size, size, 3), uint8
        RGB frames in temporal order.

    Raises
    ------
    VideoDecodeError
        If the file is missing, cannot be decoded, has no frames or fewer than ``k``.
    ValueError
        If ``k`` or ``size`` is not a positive integer.
    """
    for name, value in (("k", k), ("size", size)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    path = Path(path)
    if not path.is_file():
        raise VideoDecodeError(path, "file not found")

    cap = _open(path)
    reported = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    cap.release()
    counted = False
    if np.isfinite(reported) and reported >= 1 and reported == int(reported):
        n_frames = int(reported)
    else:
        n_frames, counted = _count_frames(path), True
    while True:
        note = (
            f" (its header claims {reported:.0f})"
            if counted and np.isfinite(reported) and reported > 0
            else ""
        )
        if n_frames == 0:
            raise VideoDecodeError(path, f"video has no decodable frames{note}")
        if n_frames < k:
            raise VideoDecodeError(
                path, f"video has only {n_frames} frames{note} but k={k} were requested"
            )
        frames = _read_indices(path, sample_frame_indices(n_frames, k), size)
        if frames is not None:
            return frames
        if counted:  # a counted length that cannot be re-read: decoding is not stable
            raise VideoDecodeError(
                path, f"stream ended before its {n_frames} counted frames were read"
            )
        n_frames, counted = _count_frames(path), True  # the header's frame count was wrong


def write_clip(path: str | os.PathLike, frames: np.ndarray, fps: float = 12.0) -> None:
    """Write RGB frames to an MJPG ``.avi`` atomically.

    The clip is written to a temporary file in the destination directory and
    moved into place with ``os.replace``, so an interrupted write never leaves
    a partial clip at ``path``. Parent directories are created.

    Parameters
    ----------
    path : str or os.PathLike
        Destination, must end in ``.avi``.
    frames : np.ndarray, shape (T, H, W, 3), uint8
        RGB frames, T >= 1.
    fps : float
        Frames per second (> 0).

    Raises
    ------
    ValueError
        On a bad path suffix, frame shape, dtype or fps.
    OSError
        If OpenCV cannot open the writer.
    """
    path = Path(path)
    if path.suffix.lower() != ".avi":
        raise ValueError(f"{path}: write_clip writes MJPG .avi files, got suffix {path.suffix!r}")
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or min(frames.shape[:3]) < 1:
        raise ValueError(
            f"frames must have shape (T, H, W, 3) with T, H, W >= 1, got {frames.shape}"
        )
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    height, width = frames.shape[1:3]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp.avi", dir=path.parent)
    os.close(fd)
    try:
        writer = cv2.VideoWriter(
            tmp, cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), float(fps), (width, height)
        )
        if not writer.isOpened():
            raise OSError(f"{path}: OpenCV could not open an MJPG video writer")
        try:
            for frame in frames:
                writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
