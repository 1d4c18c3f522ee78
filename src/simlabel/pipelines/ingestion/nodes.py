"""Video clips -> K frames per clip at 224 x 224 (uint8) -> frozen-backbone embeddings."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from simlabel.media.video import VideoDecodeError, read_clip_frames
from simlabel.models.backbones import embed_frames, load_backbone
from simlabel.training.loop import resolve_device

logger = logging.getLogger(__name__)
BAD_VIDEO_POLICIES = ("error", "skip")


def extract_frames(
    raw_videos: dict[str, Callable[[], Path]], params: dict
) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """Decode every clip, sample ``frames_per_clip`` frames uniformly, resize to ``frame_size``.

    Parameters
    ----------
    raw_videos : ``{partition id: loader}`` from a PartitionedDataset of clips; the item id is
        the file name without its extension.
    params : ``frames_per_clip`` (K), ``frame_size``, ``on_bad_video`` (``error`` | ``skip``),
        ``workers`` (clips decoded in parallel).

    Returns
    -------
    frames : (N, K, S, S, 3) uint8, rows in item-id order.
    items : item_id, source (file name) of the N clips.
    bad_videos : item_id, source, error of the clips skipped (empty unless ``skip``).
    """
    policy = params["on_bad_video"]
    if policy not in BAD_VIDEO_POLICIES:
        raise ValueError(f"on_bad_video must be one of {BAD_VIDEO_POLICIES}, got {policy!r}")
    if not raw_videos:
        raise ValueError("no video clips found in the input folder")
    k, size = params["frames_per_clip"], params["frame_size"]
    sources = {Path(pid).stem: loader for pid, loader in raw_videos.items()}
    if len(sources) != len(raw_videos):
        raise ValueError("two clips share one item id (same file name, different extensions)")
    item_ids = sorted(sources)
    frames = np.empty((len(item_ids), k, size, size, 3), dtype=np.uint8)
    errors: dict[str, str] = {}

    def decode(row: int) -> None:
        path = sources[item_ids[row]]()
        try:
            frames[row] = read_clip_frames(path, k, size)
        except VideoDecodeError as error:
            if policy == "error":
                raise
            errors[item_ids[row]] = str(error)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=params.get("workers", 2)) as pool:
        for done, _ in enumerate(pool.map(decode, range(len(item_ids))), start=1):
            if done % 20 == 0 or done == len(item_ids):
                elapsed = time.perf_counter() - start
                logger.info("decoded %d / %d clips (%.0f frames/s)", done, len(item_ids), done * k / elapsed)

    keep = np.array([item not in errors for item in item_ids])
    bad = pd.DataFrame(
        {"item_id": list(errors), "source": [str(sources[i]()) for i in errors], "error": list(errors.values())},
        columns=["item_id", "source", "error"],
    )
    if len(bad):
        logger.warning("skipped %d unreadable clips (on_bad_video: skip), listed in bad_videos:\n%s", len(bad), bad.to_string(index=False))
    kept_ids = [i for i, ok in zip(item_ids, keep, strict=True) if ok]
    items = pd.DataFrame({"item_id": kept_ids, "source": [sources[i]().name for i in kept_ids]})
    return frames[keep], items, bad


def embed_clips(frames: np.ndarray, params: dict) -> np.ndarray:
    """Per-frame embeddings (N, K, D) float32 from a frozen ImageNet-pretrained backbone."""
    torch.manual_seed(0)
    encoder = load_backbone(params["backbone"])
    device = resolve_device(params["device"])
    logger.info("embedding %d frames with %s on %s", frames.shape[0] * frames.shape[1], params["backbone"], device)
    return embed_frames(frames, encoder, batch_size=params["batch_size"], device=device)
