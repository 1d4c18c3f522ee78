"""The input-folder format: any folder holding one crowd-labelled data set.

```
my_data/
  labels.csv     item_id,annotator_id,label   one row per label given (ids may be strings;
                                              labels are class indices or class names)
  classes.txt    optional: line k names class k
  truth.csv      optional: item_id,label      expert labels, used only for reporting
  and ONE input kind:
  features.npy   (N, D) float   row i is item i (item_id = row index)
  images.npy     (N, H, W, 3) uint8  row i is item i; resized to 224 x 224 for the backbone
  videos/        one clip per item, named <item_id>.<ext> (avi, mp4, mov, mkv, webm)
```
``features*.npy`` / ``images*.npy`` (e.g. ``images64.npy``) count as features / images; files
starting with ``test_`` or ``valid_`` are ignored (held-out items without crowd labels). A
folder with features beside images uses the features (they are usually computed from those
images); ``input_kind`` picks another. Two files of one kind, or videos beside an array, are
ambiguous and an error.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

INPUT_KINDS = ("features", "images", "videos")
VIDEO_SUFFIXES = {".avi", ".mp4", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
LABEL_COLUMNS = ["item_id", "annotator_id", "label"]


class FolderFormatError(ValueError):
    """A data folder that does not follow the input-folder format."""


@dataclass
class CrowdFolder:
    """A data folder, read lazily: tables now, arrays and clips when asked."""

    path: Path
    labels: pd.DataFrame
    classes: list[str] | None
    truth: pd.DataFrame | None
    inputs: dict[str, list[Path]] = field(default_factory=dict)

    def choose_input(self, input_kind: str = "auto") -> tuple[str, Path]:
        """The input kind and file (or folder) to use.

        Raises
        ------
        FolderFormatError
            No input, an ambiguous folder, or ``input_kind`` not present.
        """
        if input_kind not in ("auto", *INPUT_KINDS):
            raise FolderFormatError(f"input_kind must be auto or one of {INPUT_KINDS}, got {input_kind!r}")
        present = {kind: paths for kind, paths in self.inputs.items() if paths}
        if not present:
            raise FolderFormatError(
                f"{self.path}: no input found: add features.npy (N x D), images.npy (N x H x W x 3 uint8) "
                "or a videos/ folder with one clip per item"
            )
        if input_kind == "auto":
            if "videos" in present and len(present) > 1:
                others = ", ".join(p.name for k, ps in present.items() if k != "videos" for p in ps)
                raise FolderFormatError(
                    f"{self.path}: two input kinds, videos/ and {others}: they identify items differently "
                    "(file names vs rows); set input_kind to the one to use"
                )
            input_kind = "features" if "features" in present else next(iter(present))
        if input_kind not in present:
            raise FolderFormatError(f"{self.path}: input_kind is {input_kind!r} but the folder has no {input_kind}")
        paths = present[input_kind]
        if len(paths) > 1:
            raise FolderFormatError(
                f"{self.path}: two {input_kind} files ({', '.join(p.name for p in paths)}): keep one, "
                f"or set input_file to the one to use"
            )
        return input_kind, paths[0]

    def load_array(self, path: Path) -> np.ndarray:
        """A features / images array, memory-mapped."""
        return np.load(path, mmap_mode="r", allow_pickle=False)

    def video_files(self) -> dict[str, Path]:
        """``{item_id: clip path}`` of the videos/ folder."""
        clips = sorted(p for p in (self.path / "videos").iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        by_item: dict[str, Path] = {}
        for clip in clips:
            if clip.stem in by_item:
                raise FolderFormatError(f"two clips for item {clip.stem!r}: {by_item[clip.stem].name}, {clip.name}")
            by_item[clip.stem] = clip
        return by_item


def _input_files(folder: Path) -> dict[str, list[Path]]:
    def arrays(prefix: str) -> list[Path]:
        return sorted(p for p in folder.glob(f"{prefix}*.npy") if not re.match(r"(test|valid)_", p.name))

    videos = folder / "videos"
    has_videos = videos.is_dir() and any(p.suffix.lower() in VIDEO_SUFFIXES for p in videos.iterdir())
    return {"features": arrays("features"), "images": arrays("images"), "videos": [videos] if has_videos else []}


def read_crowd_folder(path: str | Path, require_labels: bool = True) -> CrowdFolder:
    """Read and check a data folder (see the module docstring for the format).

    ``require_labels=False`` accepts a folder without ``labels.csv`` (new items to predict).

    Raises
    ------
    FolderFormatError
        Missing folder, missing ``labels.csv`` or its columns, an unreadable ``truth.csv``.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FolderFormatError(
            f"data folder not found: {folder} (the embedded demo data set is written by "
            "`kedro run --pipeline=demo_data`; another folder: --params=\"dataset_dir=<folder>\")"
        )
    labels_file = folder / "labels.csv"
    if not labels_file.is_file():
        if require_labels:
            raise FolderFormatError(f"{folder}: no labels.csv (columns item_id,annotator_id,label; one row per label)")
        return CrowdFolder(folder, pd.DataFrame(columns=LABEL_COLUMNS), _read_classes(folder), None, _input_files(folder))
    labels = pd.read_csv(labels_file, dtype=str, keep_default_na=False)
    missing = [c for c in LABEL_COLUMNS if c not in labels.columns]
    if missing:
        raise FolderFormatError(f"{labels_file}: missing columns {missing} (found {list(labels.columns)})")
    if labels.empty:
        raise FolderFormatError(f"{labels_file}: no labels")
    classes = _read_classes(folder)
    truth = None
    if (folder / "truth.csv").is_file():
        truth = pd.read_csv(folder / "truth.csv", dtype=str)
        if not {"item_id", "label"} <= set(truth.columns):
            raise FolderFormatError(f"{folder / 'truth.csv'}: needs columns item_id,label")
    return CrowdFolder(folder, labels[LABEL_COLUMNS], classes, truth, _input_files(folder))


def _read_classes(folder: Path) -> list[str] | None:
    classes_file = folder / "classes.txt"
    if not classes_file.is_file():
        return None
    return [line.strip() for line in classes_file.read_text().splitlines() if line.strip()] or None


def array_item_ids(n_rows: int) -> list[str]:
    """Item ids of an array input: the row indices, as strings."""
    return [str(i) for i in range(n_rows)]


def restrict_labels_to_items(labels: pd.DataFrame, item_ids, policy: str, source: str) -> pd.DataFrame:
    """Labels of items that have an input; labels of other items are an error (``policy``
    ``error``) or dropped with a warning (``drop``, e.g. inputs that cover a subset of items)."""
    if policy not in ("error", "drop"):
        raise ValueError(f"labels_without_inputs must be 'error' or 'drop', got {policy!r}")
    known = labels["item_id"].astype(str).str.strip().isin(set(item_ids))
    if known.all():
        return labels
    n_items = labels.loc[~known, "item_id"].nunique()
    message = (
        f"{int((~known).sum())} of {len(labels)} labels ({n_items} items) are for items without an input in "
        f"{source} ({len(item_ids)} items"
    )
    if policy == "error":
        raise FolderFormatError(
            f"{message}; for arrays item_id must be the row index). "
            "Set labels_without_inputs: drop to train on the items that have inputs."
        )
    if not known.any():
        raise FolderFormatError(f"{message}): no label is left")
    logger.warning("%s): dropped (labels_without_inputs: drop)", message)
    return labels[known]
