import numpy as np
import pytest

from simlabel.media.video import (
    VideoDecodeError,
    read_clip_frames,
    sample_frame_indices,
    write_clip,
)

JPEG_TOL = 6.0  # mean-colour tolerance for MJPG round trips


def _ramp_clip(n_frames=24, height=48, width=64):
    """Frame t is a flat colour whose red channel encodes t (10 * t)."""
    frames = np.empty((n_frames, height, width, 3), np.uint8)
    frames[..., 0] = (10 * np.arange(n_frames, dtype=np.uint8))[:, None, None]
    frames[..., 1] = 60
    frames[..., 2] = 200
    return frames


@pytest.mark.parametrize(
    ("n", "k", "expected"),
    [
        (24, 8, [1, 4, 7, 10, 13, 16, 19, 22]),
        (10, 3, [1, 5, 8]),
        (5, 5, [0, 1, 2, 3, 4]),
        (7, 1, [3]),
        (100, 4, [12, 37, 62, 87]),
    ],
)
def test_sample_frame_indices_centres(n, k, expected):
    idx = sample_frame_indices(n, k)
    assert idx.dtype == np.int64
    assert idx.tolist() == expected


def test_sample_frame_indices_sorted_distinct_in_range():
    for n in range(1, 60):
        for k in range(1, n + 1):
            idx = sample_frame_indices(n, k)
            assert len(idx) == k and idx[0] >= 0 and idx[-1] < n
            assert np.all(np.diff(idx) > 0)


@pytest.mark.parametrize(("n", "k"), [(3, 4), (0, 1), (5, 0), (5, -1)])
def test_sample_frame_indices_rejects(n, k):
    with pytest.raises(ValueError):
        sample_frame_indices(n, k)


def test_round_trip_colours_and_sampled_order(tmp_path):
    frames = _ramp_clip()
    path = tmp_path / "nested" / "dir" / "clip.avi"
    write_clip(path, frames, fps=12.0)
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["clip.avi"]  # no temp file left behind

    out = read_clip_frames(path, k=8)
    assert out.shape == (8, 224, 224, 3) and out.dtype == np.uint8
    expected_idx = sample_frame_indices(24, 8)
    means = out.reshape(8, -1, 3).mean(axis=1)
    np.testing.assert_allclose(means[:, 0], 10 * expected_idx, atol=JPEG_TOL)
    np.testing.assert_allclose(means[:, 1], 60, atol=JPEG_TOL)
    np.testing.assert_allclose(means[:, 2], 200, atol=JPEG_TOL)  # RGB order kept (not BGR)
    # The decoded frame index (from brightness) is exactly the sampled one.
    assert np.rint(means[:, 0] / 10).astype(int).tolist() == expected_idx.tolist()


def test_read_all_frames_and_downscale(tmp_path):
    frames = _ramp_clip(n_frames=5, height=300, width=400)
    write_clip(tmp_path / "big.avi", frames)
    out = read_clip_frames(tmp_path / "big.avi", k=5, size=32)
    assert out.shape == (5, 32, 32, 3)
    np.testing.assert_allclose(out[..., 0].mean(axis=(1, 2)), 10 * np.arange(5), atol=JPEG_TOL)


def test_spatial_layout_survives(tmp_path):
    frames = np.zeros((4, 64, 64, 3), np.uint8)
    frames[:, :32, :, 1] = 255  # top half green, bottom half black
    write_clip(tmp_path / "half.avi", frames)
    out = read_clip_frames(tmp_path / "half.avi", k=2, size=64)
    assert out[:, :24, :, 1].mean() > 240 and out[:, 40:, :, 1].mean() < 15


def test_missing_file(tmp_path):
    path = tmp_path / "absent.avi"
    with pytest.raises(VideoDecodeError, match="absent.avi") as info:
        read_clip_frames(path, k=2)
    assert "not found" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_garbage_file(tmp_path):
    path = tmp_path / "garbage.avi"
    path.write_bytes(b"this is not a video at all\n" * 50)
    with pytest.raises(VideoDecodeError, match="garbage.avi"):
        read_clip_frames(path, k=2)


def test_truncated_file(tmp_path):
    good = tmp_path / "good.avi"
    write_clip(good, _ramp_clip())
    cut = tmp_path / "cut.avi"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(VideoDecodeError, match="cut.avi"):
        read_clip_frames(cut, k=2)


def test_half_truncated_file_never_returns_silently(tmp_path):
    good = tmp_path / "good.avi"
    write_clip(good, _ramp_clip())
    data = good.read_bytes()
    cut = tmp_path / "halfcut.avi"
    cut.write_bytes(data[: len(data) // 2])
    try:
        out = read_clip_frames(cut, k=4)
    except VideoDecodeError as err:
        assert "halfcut.avi" in str(err)
    else:  # if the decoder recovers some frames, they must be real ones, not zeros
        assert out.shape == (4, 224, 224, 3) and out[..., 2].mean() > 150


def test_clip_shorter_than_k(tmp_path):
    path = tmp_path / "short.avi"
    write_clip(path, _ramp_clip(n_frames=5))
    with pytest.raises(VideoDecodeError, match="short.avi") as info:
        read_clip_frames(path, k=8)
    assert "5 frames" in str(info.value) and "k=8" in str(info.value)


def test_read_rejects_bad_arguments(tmp_path):
    path = tmp_path / "ok.avi"
    write_clip(path, _ramp_clip(n_frames=3))
    for kwargs in ({"k": 0}, {"k": 2, "size": 0}, {"k": 1.5}):
        with pytest.raises(ValueError):
            read_clip_frames(path, **kwargs)


@pytest.mark.parametrize(
    "frames",
    [
        np.zeros((4, 8, 8), np.uint8),  # no channel axis
        np.zeros((4, 8, 8, 4), np.uint8),  # 4 channels
        np.zeros((4, 8, 8, 3), np.float32),  # wrong dtype
        np.zeros((0, 8, 8, 3), np.uint8),  # no frames
    ],
)
def test_write_rejects_bad_frames(tmp_path, frames):
    with pytest.raises(ValueError):
        write_clip(tmp_path / "bad.avi", frames)
    assert list(tmp_path.iterdir()) == []


def test_write_rejects_bad_suffix_and_fps(tmp_path):
    with pytest.raises(ValueError, match="avi"):
        write_clip(tmp_path / "clip.mp4", _ramp_clip(n_frames=2))
    with pytest.raises(ValueError, match="fps"):
        write_clip(tmp_path / "clip.avi", _ramp_clip(n_frames=2), fps=0)


def test_write_replaces_existing_clip(tmp_path):
    path = tmp_path / "clip.avi"
    write_clip(path, _ramp_clip(n_frames=3))
    write_clip(path, _ramp_clip(n_frames=6))
    with pytest.raises(VideoDecodeError, match="6 frames"):
        read_clip_frames(path, k=7)
    assert read_clip_frames(path, k=6, size=16).shape == (6, 16, 16, 3)


# --- sampled decoding (PyAV: only the kept frames and those they depend on are decoded) -------

CODE_BITS = 8  # frame t carries t as 8 black / white blocks along its top rows


def _coded_clip(n_frames=40, height=96, width=128, seed=0):
    """Textured frames (so resampling matters) whose top band encodes the frame index in binary."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    frames = np.empty((n_frames, height, width, 3), np.uint8)
    for t in range(n_frames):
        frames[t, ..., 0] = (127 + 100 * np.sin((xx + 3 * t) / 7.0)).astype(np.uint8)
        frames[t, ..., 1] = (127 + 100 * np.cos((yy - 2 * t) / 5.0)).astype(np.uint8)
        frames[t, ..., 2] = rng.integers(60, 200, (height, width), dtype=np.uint8)
        block = width // CODE_BITS
        for bit in range(CODE_BITS):
            frames[t, :16, bit * block : (bit + 1) * block] = 255 * ((t >> bit) & 1)
    return frames


def _decoded_index(frame: np.ndarray) -> int:
    """The frame index coded in the top band of a frame read back at its own size."""
    block = frame.shape[1] // CODE_BITS
    bits = [frame[2:14, b * block + 2 : (b + 1) * block - 2].mean() > 127 for b in range(CODE_BITS)]
    return sum(int(bit) << b for b, bit in enumerate(bits))


def _write_cv2(path, frames, fourcc="mp4v", fps=25.0):
    """mp4v .mp4 (a key frame every 12 frames) or MJPG .avi (every frame a key frame) via OpenCV."""
    import cv2

    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()


def _write_av(path, frames, codec, b_frames=0, gop=12, rotation=None):
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.max_b_frames, stream.codec_context.gop_size = b_frames, gop
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))


def _reference_read(path, k, size):
    """Reference: decode every frame sequentially with OpenCV, keep the sampled ones, resize them."""
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    decoded = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        decoded.append(frame)
    cap.release()
    keep = [decoded[i] for i in sample_frame_indices(len(decoded), k)]
    interp = lambda f: cv2.INTER_AREA if size * size < f.shape[0] * f.shape[1] else cv2.INTER_LINEAR  # noqa: E731
    return np.stack([cv2.resize(f, (size, size), interpolation=interp(f))[..., ::-1] for f in keep])


def _packets_decoded(path, k):
    """Packets the PyAV path sends to the decoder for one clip (it fails if the path is not taken)."""
    av = pytest.importorskip("av")
    from simlabel.media import video

    class Counting:
        def __init__(self, codec):
            self.codec, self.n = codec, 0

        def decode(self, packet):
            self.n += packet is not None
            return self.codec.decode(packet)

        def flush_buffers(self):
            self.codec.flush_buffers()

    with av.open(str(path)) as container:
        stream, packets = video._video_packets(container)
        counting = Counting(stream.codec_context)
        video._decode_at(counting, packets, sample_frame_indices(len(packets), k), 16)
        return counting.n


@pytest.mark.parametrize("codec", ["write_clip", "mjpg_avi", "mp4v_mp4", "mpeg4_bframes_mp4", "mpeg4_bframes_avi"])
@pytest.mark.parametrize("k", [1, 5, 8, 40])
def test_sampled_decode_equals_sequential_reference(tmp_path, codec, k):
    pytest.importorskip("av")
    from simlabel.media import video

    frames = _coded_clip()
    path = tmp_path / f"c.{codec[-3:]}" if codec != "write_clip" else tmp_path / "c.avi"
    if codec == "write_clip":  # the project's own clip format
        write_clip(path, frames)
    elif codec == "mjpg_avi":
        _write_cv2(path, frames, "MJPG")
    elif codec == "mp4v_mp4":
        _write_cv2(path, frames, "mp4v")
    else:
        _write_av(path, frames, "mpeg4", b_frames=2)
    fast = video._read_sampled(path, k, 64)
    assert fast is not None, "the PyAV path was not taken"
    # Same frames as the sequential reads: the module's own fallback and an independent reference.
    np.testing.assert_array_equal(fast, video._read_sequential(path, k, 64))
    np.testing.assert_array_equal(read_clip_frames(path, k, 64), _reference_read(path, k, 64))
    # Same frame indices: read at full size, the coded band gives back the sampled indices.
    full = video._read_sampled(path, k, 96)  # the clip is 128 x 96: a square 96 keeps the code legible
    assert [_decoded_index(f) for f in full] == sample_frame_indices(len(frames), k).tolist()


def test_sampled_decode_skips_frames(tmp_path):
    frames = _coded_clip(n_frames=60)
    _write_cv2(tmp_path / "c.avi", frames, "MJPG")  # every frame is a key frame
    _write_cv2(tmp_path / "c.mp4", frames, "mp4v")  # a key frame every 12 frames
    assert _packets_decoded(tmp_path / "c.avi", 4) == 4  # frames 7, 22, 37, 52: nothing else
    # Each wanted frame is decoded from its key frame (0, 12, 36, 48): 8 + 11 + 2 + 5 packets,
    # where the sequential read decodes 53.
    assert _packets_decoded(tmp_path / "c.mp4", 4) == 8 + 11 + 2 + 5


@pytest.mark.parametrize("rotation", [90, 180, -90])
def test_sampled_decode_applies_display_rotation_like_opencv(tmp_path, rotation):
    from simlabel.media import video

    path = tmp_path / "rotated.mp4"
    _write_av(path, _coded_clip(n_frames=20), "mpeg4", rotation=rotation)
    fast = video._read_sampled(path, 4, 32)
    assert fast is not None
    np.testing.assert_array_equal(fast, video._read_sequential(path, 4, 32))


def test_without_pyav_the_sequential_path_gives_the_same_frames(tmp_path, monkeypatch):
    from simlabel.media import video

    path = tmp_path / "c.mp4"
    _write_cv2(path, _coded_clip())
    with_av = read_clip_frames(path, 6, 48)
    monkeypatch.setattr(video, "av", None)
    assert video._read_sampled(path, 6, 48) is None
    np.testing.assert_array_equal(read_clip_frames(path, 6, 48), with_av)


def test_unusual_streams_fall_back_to_the_sequential_read(tmp_path, monkeypatch):
    pytest.importorskip("av")
    from simlabel.media import video

    path = tmp_path / "c.avi"
    write_clip(path, _coded_clip(n_frames=12))

    def refuse(container):
        raise video._UseSequential

    monkeypatch.setattr(video, "_video_packets", refuse)
    assert video._read_sampled(path, 3, 16) is None
    assert read_clip_frames(path, 3, 16).shape == (3, 16, 16, 3)
