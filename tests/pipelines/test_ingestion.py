import logging

import numpy as np
import pytest

from simlabel.folder import FolderFormatError
from simlabel.media.video import VideoDecodeError, write_clip
from simlabel.pipelines.ingestion.nodes import decode_clips, embed_clips

PARAMS = {"frames_per_clip": 4, "frame_size": 224, "on_bad_video": "error", "workers": 2}


@pytest.fixture
def clips(tmp_path):
    """Two good clips of known colours, one garbage file, one clip shorter than K."""
    paths = {}
    for name, colour in (("good_a", (200, 30, 30)), ("good_b", (30, 30, 200))):
        paths[name] = tmp_path / f"{name}.avi"
        write_clip(paths[name], np.full((10, 48, 64, 3), colour, np.uint8))
    paths["garbage"] = tmp_path / "garbage.avi"
    paths["garbage"].write_bytes(b"this is not a video" * 50)
    paths["short"] = tmp_path / "short.avi"
    write_clip(paths["short"], np.zeros((2, 48, 64, 3), np.uint8))
    return paths


def loaders(paths, names):
    return {name: paths[name] for name in names}


def test_frames_are_sampled_resized_and_in_item_order(clips, caplog):
    with caplog.at_level(logging.INFO):
        frames, items, bad = decode_clips(loaders(clips, ["good_b", "good_a"]), PARAMS)
    assert frames.shape == (2, 4, 224, 224, 3) and frames.dtype == np.uint8
    assert items["item_id"].tolist() == ["good_a", "good_b"]
    np.testing.assert_allclose(frames[0].reshape(-1, 3).mean(0), (200, 30, 30), atol=8)
    np.testing.assert_allclose(frames[1].reshape(-1, 3).mean(0), (30, 30, 200), atol=8)
    assert bad.empty
    assert "decoded 2 / 2 clips" in caplog.text and "frames/s" in caplog.text


@pytest.mark.parametrize("bad_name", ["garbage", "short"])
def test_bad_clip_is_a_clear_error_naming_the_file(clips, bad_name):
    with pytest.raises(VideoDecodeError, match=bad_name):
        decode_clips(loaders(clips, ["good_a", bad_name]), PARAMS)


def test_skip_policy_drops_and_lists_bad_clips(clips):
    frames, items, bad = decode_clips(loaders(clips, ["good_a", "garbage", "short"]), {**PARAMS, "on_bad_video": "skip"})
    assert items["item_id"].tolist() == ["good_a"]
    assert frames.shape[0] == 1 and frames.reshape(-1, 3).mean(0)[0] > 150  # the good clip, not zeros
    assert sorted(bad["item_id"]) == ["garbage", "short"]
    assert bad["error"].str.len().gt(0).all()


def test_unknown_policy_and_empty_folder():
    with pytest.raises(ValueError, match="on_bad_video"):
        decode_clips({"a": None}, {**PARAMS, "on_bad_video": "ignore"})
    with pytest.raises(FolderFormatError, match="no video clips"):
        decode_clips({}, PARAMS)


def test_embeddings_are_per_frame_and_deterministic():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (2, 2, 224, 224, 3), dtype=np.uint8)
    params = {"backbone": "efficientnet_lite0", "device": "cpu", "batch_size": 4}
    first = embed_clips(frames, params)
    assert first.shape == (2, 2, 1280) and first.dtype == np.float32
    np.testing.assert_allclose(embed_clips(frames, params), first, rtol=1e-5, atol=1e-5)
    assert not np.allclose(first[0, 0], first[0, 1])


def test_images_embed_at_the_configured_size(tmp_path):
    """ingestion.image_size reaches the backbone: null keeps 32x32 images at their own size, whose
    embeddings differ from the 224x224 upsampled ones."""
    import pandas as pd

    from simlabel.folder import read_crowd_folder
    from simlabel.pipelines.ingestion.nodes import embed_images

    rng = np.random.default_rng(0)
    np.save(tmp_path / "images.npy", rng.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8))
    pd.DataFrame({"item_id": [0, 1, 2], "annotator_id": "a", "label": [0, 1, 0]}).to_csv(tmp_path / "labels.csv", index=False)
    folder = read_crowd_folder(tmp_path)
    params = {"backbone": "efficientnet_lite0", "batch_size": 4, "device": "cpu"}
    native = embed_images(folder, {"input_kind": "auto"}, {**params, "image_size": None})
    upsampled = embed_images(folder, {"input_kind": "auto"}, {**params, "image_size": 224})
    assert native.shape == upsampled.shape == (3, 1, 1280)
    assert not np.allclose(native, upsampled, atol=1e-3)
    np.testing.assert_allclose(embed_images(folder, {"input_kind": "auto"}, params), upsampled, atol=1e-4)
