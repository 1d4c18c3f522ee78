"""Inputs -> per-item token embeddings (N, T, D), by input kind:

- videos: K frames per clip, sampled uniformly, resized to 224 x 224 and stored once (uint8),
  then embedded by a frozen ImageNet backbone (T = K frames);
- images: resized to 224 x 224 inside the same backbone (T = 1);
- features: used as they are (T = 1, or the array's own token axis if it is (N, T, D)).

Each kind has its own node; the nodes of the other kinds return empty outputs, so `kedro viz`
shows which stages an input kind goes through.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import torch

from simlabel.folder import CrowdFolder, FolderFormatError, array_item_ids
from simlabel.media.video import VideoDecodeError, read_clip_frames
from simlabel.models.backbones import embed_frames, load_backbone
from simlabel.training.loop import resolve_device

logger = logging.getLogger(__name__)
BAD_VIDEO_POLICIES = ("error", "skip")
ITEM_COLUMNS = ["item_id", "source"]
BAD_VIDEO_COLUMNS = ["item_id", "source", "error"]


def _empty_items() -> pd.DataFrame:
    return pd.DataFrame(columns=ITEM_COLUMNS)


def extract_frames(crowd_folder: CrowdFolder, dataset: dict, params: dict) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """Decode every clip, sample ``frames_per_clip`` frames uniformly, resize to ``frame_size``.

    Returns
    -------
    frames : (N, K, S, S, 3) uint8 in item-id order; (0, K, S, S, 3) unless the input is videos.
    items : item_id, source (file name) of the N clips.
    bad_videos : item_id, source, error of the clips skipped (``on_bad_video: skip``).
    """
    k, size = params["frames_per_clip"], params["frame_size"]
    kind, _ = crowd_folder.choose_input(dataset["input_kind"])
    if kind != "videos":
        logger.info("input is %s: no frames to extract", kind)
        return np.zeros((0, k, size, size, 3), np.uint8), _empty_items(), pd.DataFrame(columns=BAD_VIDEO_COLUMNS)
    return decode_clips(crowd_folder.video_files(), params)


def decode_clips(clips: dict, params: dict) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """``{item_id: path}`` -> frames (N, K, S, S, 3) uint8, items, bad videos (see ``extract_frames``)."""
    policy = params["on_bad_video"]
    if policy not in BAD_VIDEO_POLICIES:
        raise ValueError(f"on_bad_video must be one of {BAD_VIDEO_POLICIES}, got {policy!r}")
    if not clips:
        raise FolderFormatError("no video clips found in the input folder")
    k, size = params["frames_per_clip"], params["frame_size"]
    item_ids = sorted(clips)
    frames = np.empty((len(item_ids), k, size, size, 3), dtype=np.uint8)
    errors: dict[str, str] = {}

    def decode(row: int) -> None:
        try:
            frames[row] = read_clip_frames(clips[item_ids[row]], k, size)
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
        {"item_id": list(errors), "source": [clips[i].name for i in errors], "error": list(errors.values())},
        columns=BAD_VIDEO_COLUMNS,
    )
    if len(bad):
        logger.warning("skipped %d unreadable clips (on_bad_video: skip), listed in bad_videos:\n%s", len(bad), bad.to_string(index=False))
    kept = [i for i, ok in zip(item_ids, keep, strict=True) if ok]
    items = pd.DataFrame({"item_id": kept, "source": [clips[i].name for i in kept]})
    return frames[keep], items, bad


def _encoder(params: dict):
    torch.manual_seed(0)
    return load_backbone(params["backbone"]), resolve_device(params["device"])


def embed_clips(frames: np.ndarray, params: dict) -> np.ndarray:
    """Per-frame embeddings (N, K, D) float32 from a frozen ImageNet-pretrained backbone."""
    if len(frames) == 0:
        return np.zeros((0, frames.shape[1], 0), np.float32)
    encoder, device = _encoder(params)
    logger.info("embedding %d frames with %s on %s", frames.shape[0] * frames.shape[1], params["backbone"], device)
    return embed_frames(frames, encoder, batch_size=params["batch_size"], device=device, threads=params.get("threads"))


def embed_images(crowd_folder: CrowdFolder, dataset: dict, params: dict) -> np.ndarray:
    """(N, 1, D) embeddings of ``images*.npy`` (N, H, W, 3) uint8, resized to
    ``params["image_size"]`` (224; null keeps their own size: 32x32 images embed ~13x faster) in
    the backbone; (0, 1, 0) unless the input is images."""
    kind, path = crowd_folder.choose_input(dataset["input_kind"])
    if kind != "images":
        return np.zeros((0, 1, 0), np.float32)
    images = crowd_folder.load_array(path)
    if images.ndim == 3:  # grayscale
        images = np.repeat(images[..., None], 3, axis=-1)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise FolderFormatError(f"{path}: images must be (N, H, W, 3) uint8, got {images.shape} {images.dtype}")
    encoder, device = _encoder(params)
    logger.info("embedding %d images %dx%d with %s on %s", len(images), *images.shape[1:3], params["backbone"], device)
    return embed_frames(images[:, None], encoder, batch_size=params["batch_size"], device=device,
                        image_size=params.get("image_size", 224), threads=params.get("threads"))


def read_features(crowd_folder: CrowdFolder, dataset: dict) -> np.ndarray:
    """``features*.npy`` as (N, T, D) float32 tokens (T = 1 for an (N, D) table); (0, 1, 0)
    unless the input is features."""
    kind, path = crowd_folder.choose_input(dataset["input_kind"])
    if kind != "features":
        return np.zeros((0, 1, 0), np.float32)
    features = np.asarray(crowd_folder.load_array(path), dtype=np.float32)
    if features.ndim == 2:
        features = features[:, None, :]
    if features.ndim != 3:
        raise FolderFormatError(f"{path}: features must be (N, D) or (N, T, D), got shape {features.shape}")
    bad = ~np.isfinite(features)
    if bad.any():
        raise FolderFormatError(f"{path}: {int(bad.any(axis=(1, 2)).sum())} rows hold NaN or infinite values")
    return features


def select_embeddings(
    crowd_folder: CrowdFolder,
    dataset: dict,
    video_embeddings: np.ndarray,
    image_embeddings: np.ndarray,
    feature_embeddings: np.ndarray,
) -> np.ndarray:
    """The embeddings (N, T, D) of the folder's input kind (row i = item i of ``ingested_items``)."""
    kind, path = crowd_folder.choose_input(dataset["input_kind"])
    embeddings = {"videos": video_embeddings, "images": image_embeddings, "features": feature_embeddings}[kind]
    logger.info("%s: %d items, tokens of shape %s", path.name, len(embeddings), embeddings.shape[1:])
    return embeddings


def list_items(crowd_folder: CrowdFolder, dataset: dict, video_items: pd.DataFrame) -> pd.DataFrame:
    """The N items that have an input, in row order: the decoded clips, or one per array row."""
    kind, path = crowd_folder.choose_input(dataset["input_kind"])
    if kind == "videos":
        return video_items
    n_rows = len(crowd_folder.load_array(path))  # a memory map: only the header is read
    return pd.DataFrame({"item_id": array_item_ids(n_rows), "source": path.name})
