"""Kedro datasets the stack does not ship: NumPy arrays, torch checkpoints, video clips, the
label-matrix view of a long label table, sparse annotator similarities.

All writes go to a temporary file beside the target and are renamed into place, so a crash
never leaves a half-written catalog output.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
from kedro.io import AbstractDataset, DatasetError

from simlabel.atomic import atomic_path


class NpyDataset(AbstractDataset[np.ndarray, np.ndarray]):
    """A NumPy array in one ``.npy`` file; ``mmap_mode`` (e.g. ``r``) loads it memory-mapped."""

    def __init__(self, filepath: str, mmap_mode: str | None = None, metadata: dict | None = None):
        self._filepath = Path(filepath)
        self._mmap_mode = mmap_mode
        self.metadata = metadata

    def load(self) -> np.ndarray:
        return np.load(self._filepath, mmap_mode=self._mmap_mode, allow_pickle=False)

    def save(self, data: np.ndarray) -> None:
        with atomic_path(self._filepath) as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.asarray(data), allow_pickle=False)

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "mmap_mode": self._mmap_mode}


class TorchCheckpointDataset(AbstractDataset[dict, dict]):
    """A dict of tensors and plain values saved with ``torch.save`` (loaded on CPU)."""

    def __init__(self, filepath: str, metadata: dict | None = None):
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> dict:
        import torch

        return torch.load(self._filepath, map_location="cpu", weights_only=False)

    def save(self, data: dict) -> None:
        import torch

        with atomic_path(self._filepath) as tmp:
            torch.save(data, tmp)

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class VideoClipDataset(AbstractDataset[np.ndarray, Path]):
    """One video clip. ``save`` writes (T, H, W, 3) uint8 RGB frames; ``load`` returns the
    clip's path, so ingestion decodes only the K frames it samples (``media.video``)."""

    def __init__(self, filepath: str, fps: float = 12.0, metadata: dict | None = None):
        self._filepath = Path(filepath)
        self._fps = fps
        self.metadata = metadata

    def load(self) -> Path:
        if not self._filepath.is_file():
            raise DatasetError(f"video clip not found: {self._filepath}")
        return self._filepath

    def save(self, data: np.ndarray) -> None:
        from simlabel.media.video import write_clip

        write_clip(self._filepath, data, fps=self._fps)

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "fps": self._fps}


class CrowdFolderDataset(AbstractDataset[None, Any]):
    """A data folder in the input-folder format (``simlabel.folder``), read-only: ``load``
    checks it and returns a ``CrowdFolder`` whose arrays and clips are read on demand.
    ``require_labels: false`` accepts a folder of new, unlabelled items (predict)."""

    def __init__(self, path: str, require_labels: bool = True, metadata: dict | None = None):
        self._path = Path(path)
        self._require_labels = require_labels
        self.metadata = metadata

    def load(self):
        from simlabel.folder import read_crowd_folder

        return read_crowd_folder(self._path, require_labels=self._require_labels)

    def save(self, data: None) -> None:
        raise DatasetError(f"{self._path} is an input folder: simlabel never writes into it")

    def _exists(self) -> bool:
        return self._path.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}


class LabelMatrixDataset(AbstractDataset[None, Any]):
    """A long label table (``LabelTable.to_frame`` in Parquet, the ``labels`` entry) loaded as the
    (N, A) label-matrix DataFrame, for notebooks on small data; read-only."""

    def __init__(self, filepath: str, metadata: dict | None = None):
        self._filepath = Path(filepath)
        self.metadata = metadata

    # Past this many cells (800 MB of int64) the view refuses: a crowd that big is read as `labels`.
    MAX_CELLS = 10**8

    def load(self):
        import pandas as pd

        from simlabel.core.labels import LabelTable

        table = LabelTable.from_frame(pd.read_parquet(self._filepath))
        n_items, n_annotators = table.shape
        if n_items * n_annotators > self.MAX_CELLS:
            raise DatasetError(
                f"label_matrix would be {n_items} items x {n_annotators} annotators = "
                f"{n_items * n_annotators * 8 / 1e9:.1f} GB for {len(table)} labels: load `labels` (one row per "
                "label; LabelTable.from_frame) instead"
            )
        return table.to_matrix()

    def save(self, data: None) -> None:
        raise DatasetError(f"label_matrix is a read-only view of {self._filepath}: the pipelines write `labels`")

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class PairSimilarityDataset(AbstractDataset[Any, Any]):
    """A ``PairSimilarity`` (evidence pairs, prior rule, annotator ids) as plain arrays in one
    ``.npz`` (``PairSimilarity.to_arrays``; no pickles), so its size follows the pairs with
    evidence, not A^2. ``catalog.load("similarity").to_frame()`` gives the (A, A) DataFrame."""

    def __init__(self, filepath: str, metadata: dict | None = None):
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self):
        from simlabel.core.pair_similarity import PairSimilarity

        with np.load(self._filepath, allow_pickle=False) as arrays:
            return PairSimilarity.from_arrays({name: arrays[name] for name in arrays.files})

    def save(self, data) -> None:
        from simlabel.core.pair_similarity import PairSimilarity

        if not isinstance(data, PairSimilarity):
            raise DatasetError(f"{self._filepath.name} holds a PairSimilarity, got {type(data).__name__}")
        with atomic_path(self._filepath) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **data.to_arrays())

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class AtomicDataset(AbstractDataset[Any, Any]):
    """Any file dataset (``dataset``: its config, with ``filepath``) written atomically: saved
    to a temporary file beside the target and renamed onto it, so a crash never leaves a
    half-written catalog output.

    The catalog gets the wrapped dataset itself, of a subclass that differs only in ``save``
    and carries the wrapped class's name, so ``kedro viz`` shows (and previews) the real type,
    e.g. ``kedro_datasets.pandas.parquet_dataset.ParquetDataset``."""

    def __new__(cls, dataset: dict, metadata: dict | None = None):
        config = dict(dataset)
        if "filepath" not in config:
            raise DatasetError("AtomicDataset wraps a file dataset: its config needs a filepath")
        wrapped = AbstractDataset.from_config("atomic", {**config, **({"metadata": metadata} if metadata else {})})
        wrapped.__class__ = _atomic_class(type(wrapped))
        wrapped._atomic_config = config
        wrapped._atomic_target = Path(config["filepath"])
        return wrapped


@functools.cache
def _atomic_class(base: type) -> type:
    """``base`` with an atomic ``save`` (and pickling through ``AtomicDataset``), same name."""

    def save(self, data: Any) -> None:
        with atomic_path(self._atomic_target) as tmp:
            AbstractDataset.from_config("atomic_tmp", {**self._atomic_config, "filepath": str(tmp)}).save(data)

    def __reduce__(self):
        return AtomicDataset, (self._atomic_config, getattr(self, "metadata", None))

    return type(base.__name__, (base,), {"save": save, "__reduce__": __reduce__, "__module__": base.__module__,
                                         "__qualname__": base.__qualname__, "__doc__": base.__doc__})
