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
