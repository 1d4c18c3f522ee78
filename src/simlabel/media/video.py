"""Video clip I/O: uniform frame sampling, robust decoding, atomic MJPG writing.

Sampled frames are decoded with PyAV when it is installed: only the K kept frames and the frames
they depend on (from the nearest preceding key frame) go through the decoder. OpenCV's sequential
read is the reference and the fallback for every stream the PyAV path does not take (see
:func:`read_clip_frames`). Frames are always returned and accepted as RGB ``uint8``; OpenCV's BGR
order stays inside this module.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

try:  # optional: without PyAV every clip takes the sequential OpenCV path (same frames, slower)
    import av
except ImportError:  # pragma: no cover - exercised only where PyAV is not installed
    av = None


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


def _resize(frame: np.ndarray, size: int) -> np.ndarray:
    h, w = frame.shape[:2]
    interp = cv2.INTER_AREA if size * size < h * w else cv2.INTER_LINEAR
    return cv2.resize(frame, (size, size), interpolation=interp)


def _to_rgb(frame: np.ndarray, size: int) -> np.ndarray:
    frame = _resize(frame, size)  # resize first: convert fewer pixels
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


class _UseSequential(Exception):
    """This clip goes through the sequential OpenCV path (a stream the PyAV path does not take)."""


def _video_packets(container) -> tuple:
    """(stream, packets in decode order) of the only video stream, or ``_UseSequential``.

    Demuxing reads the file but decodes nothing. The packet count must equal the header's frame
    count when the header has one (the count OpenCV trusts), every packet needs a distinct
    timestamp, the first one must be a key frame and none may be flagged corrupt or discarded
    (an edit list cutting frames); anything else goes the sequential way.
    """
    if len(container.streams.video) != 1:
        raise _UseSequential  # which stream OpenCV would pick is its own business
    stream = container.streams.video[0]
    stream.codec_context.thread_count = 1  # one clip per worker thread; frame threads delay seeks
    packets = [p for p in container.demux(stream) if p.size > 0]
    if not packets or (stream.frames > 0 and stream.frames != len(packets)):
        raise _UseSequential
    pts = [p.pts for p in packets]
    if None in pts or len(set(pts)) != len(pts) or not packets[0].is_keyframe:
        raise _UseSequential
    if any(p.is_discard or p.is_corrupt for p in packets):
        raise _UseSequential  # frames the decoder drops would shift the indices
    return stream, packets


# Display rotation (PyAV: counter-clockwise degrees) -> the cv2.rotate OpenCV's FFmpeg backend
# applies to the frames it returns (its CAP_PROP_ORIENTATION_AUTO, on by default).
_ROTATE = {
    0: None,
    90: cv2.ROTATE_90_COUNTERCLOCKWISE,
    180: cv2.ROTATE_180,
    270: cv2.ROTATE_90_CLOCKWISE,
}


def _frame_rgb(frame, size: int) -> np.ndarray:
    turn = int(round(frame.rotation)) % 360
    if turn not in _ROTATE:
        raise _UseSequential
    # Same conversion as OpenCV's FFmpeg backend (swscale, SWS_BICUBIC, same size), the same
    # rotation, then the same cv2.resize as the sequential path: the frames are bit-identical.
    rgb = frame.to_ndarray(format="rgb24", interpolation="BICUBIC", threads=1)
    if _ROTATE[turn] is not None:
        rgb = cv2.rotate(rgb, _ROTATE[turn])
    return _resize(rgb, size)


def _decode_at(codec, packets: list, indices: np.ndarray, size: int) -> np.ndarray:
    """Decode the frames at presentation ``indices``, each from its nearest usable key frame.

    Packets between one wanted frame and the key frame the next one starts from are skipped
    without decoding; a wanted frame whose key frame was already passed continues the running
    decode. The key frame of a wanted frame is the last one before it in decode order whose
    timestamp is not later than the frame's (so open-GOP B-frames start one GOP earlier).
    """
    pts = np.array([p.pts for p in packets], dtype=np.int64)
    keys = np.flatnonzero([p.is_keyframe for p in packets])
    targets = np.argsort(pts, kind="stable")[indices]  # decode positions of the wanted frames
    slot = {int(pts[t]): j for j, t in enumerate(targets)}
    out = np.empty((len(indices), size, size, 3), np.uint8)
    done: set[int] = set()
    fed = -1  # last packet sent to the decoder
    for t in np.sort(targets):
        usable = keys[(keys <= t) & (pts[keys] <= pts[t])]
        if len(usable) == 0:
            raise _UseSequential
        if usable[-1] > fed + 1:  # jump: the packets in between are never decoded
            if fed >= 0:
                codec.flush_buffers()
            fed = int(usable[-1]) - 1
        while int(pts[t]) not in done:
            fed += 1
            if fed > len(packets):
                raise _UseSequential  # drained without producing it
            for frame in codec.decode(packets[fed] if fed < len(packets) else None):
                j = slot.get(frame.pts)
                if j is not None and frame.pts not in done:
                    out[j] = _frame_rgb(frame, size)
                    done.add(frame.pts)
    return out


def _read_sampled(path: Path, k: int, size: int) -> np.ndarray | None:
    """The ``k`` sampled frames decoded by PyAV from their key frames; None: use OpenCV's path.

    None when PyAV is missing, the stream is one :func:`_video_packets` or :func:`_frame_rgb`
    leaves to OpenCV, it has fewer than ``k`` frames, or anything fails to demux or decode (the
    sequential path then returns today's frames or raises today's error).
    """
    if av is None:
        return None
    try:
        with av.open(str(path)) as container:
            stream, packets = _video_packets(container)
            if len(packets) < k:
                return None
            return _decode_at(
                stream.codec_context, packets, sample_frame_indices(len(packets), k), size
            )
    except (_UseSequential, av.FFmpegError, OSError, ValueError, RuntimeError):
        return None


def read_clip_frames(path: str | os.PathLike, k: int, size: int = 224) -> np.ndarray:
    """Decode ``k`` uniformly sampled frames of a video, resized to ``size`` x ``size`` RGB.

    With PyAV installed, only the sampled frames are decoded, each from the nearest key frame
    before it (every frame of an MJPG clip is one, so K decodes per clip; mp4v: on average half a
    GOP per frame); the packets in between are demuxed but never decoded. The frames are the same
    as those of the sequential read below (same indices, same pixel conversion and resize; tested
    bit-identical on MJPG, mp4v and H.264 with B-frames). Streams that path does not take (no PyAV,
    several video streams, a packet count that disagrees with the header, missing or repeated
    timestamps, a display rotation, any decode error) are read sequentially with OpenCV: ``grab``
    every frame, ``retrieve`` only the sampled ones. There the container's frame count is trusted
    only if positive and confirmed by the read; otherwise the frames are counted in a first pass.
    Frames are resized to a square without keeping the aspect ratio (``INTER_AREA`` when the pixel
    count shrinks, ``INTER_LINEAR`` otherwise).

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
    frames = _read_sampled(path, int(k), int(size))
    if frames is not None:
        return frames
    return _read_sequential(path, k, size)


def _read_sequential(path: Path, k: int, size: int) -> np.ndarray:
    """The sequential OpenCV read of :func:`read_clip_frames` (reference and fallback)."""
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

    The clip is written through ``simlabel.atomic.atomic_path`` (a temporary file in
    the destination directory, flushed and renamed into place), so an interrupted
    write never leaves a partial clip at ``path``. Parent directories are created.

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
    from simlabel.atomic import atomic_path

    height, width = frames.shape[1:3]
    with atomic_path(path) as tmp:
        writer = cv2.VideoWriter(
            str(tmp), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), float(fps), (width, height)
        )
        if not writer.isOpened():
            raise OSError(f"{path}: OpenCV could not open an MJPG video writer")
        try:
            for frame in frames:
                writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
