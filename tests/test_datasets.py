"""Catalog datasets: atomic writes (a failed save leaves the old file and no temporary file)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simlabel.datasets import AtomicDataset, NpyDataset


def test_atomic_dataset_round_trip_and_failed_save(tmp_path):
    target = tmp_path / "out" / "table.csv"
    dataset = AtomicDataset({"type": "pandas.CSVDataset", "filepath": str(target), "save_args": {"index": False}})
    assert not dataset.exists()
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    dataset.save(frame)
    pd.testing.assert_frame_equal(dataset.load(), frame)

    class Exploding:
        def to_csv(self, *args, **kwargs):
            raise RuntimeError("disk full")

    with pytest.raises(Exception, match="disk full"):
        dataset.save(Exploding())
    pd.testing.assert_frame_equal(dataset.load(), frame)  # the old file is intact
    assert sorted(p.name for p in target.parent.iterdir()) == ["table.csv"]  # no temporary left


def test_atomic_png_keeps_the_suffix_for_format_inference(tmp_path):
    from matplotlib.figure import Figure

    target = tmp_path / "plot.png"
    AtomicDataset({"type": "matplotlib.MatplotlibDataset", "filepath": str(target)}).save(Figure())
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_npy_dataset_memory_maps(tmp_path):
    dataset = NpyDataset(str(tmp_path / "a.npy"), mmap_mode="r")
    dataset.save(np.arange(6).reshape(2, 3))
    loaded = dataset.load()
    assert isinstance(loaded, np.memmap) and loaded.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_saved_files_get_the_umask_permissions_not_mkstemps_0600(tmp_path):
    import os
    import stat

    previous = os.umask(0o022)
    try:
        NpyDataset(str(tmp_path / "a.npy")).save(np.zeros(3))
        AtomicDataset({"type": "pandas.CSVDataset", "filepath": str(tmp_path / "t.csv")}).save(pd.DataFrame({"a": [1]}))
    finally:
        os.umask(previous)
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()} == {"a.npy": 0o644, "t.csv": 0o644}


def test_atomic_dataset_is_the_wrapped_type_for_viz_and_pickles(tmp_path):
    import pickle

    import pandas as pd
    from kedro_datasets.pandas import ParquetDataset

    from simlabel.datasets import AtomicDataset

    dataset = AtomicDataset({"type": "pandas.ParquetDataset", "filepath": str(tmp_path / "t.parquet")},
                            metadata={"kedro-viz": {"layer": "primary"}})
    assert isinstance(dataset, ParquetDataset)
    assert f"{type(dataset).__module__}.{type(dataset).__qualname__}" == "kedro_datasets.pandas.parquet_dataset.ParquetDataset"
    assert dataset.metadata == {"kedro-viz": {"layer": "primary"}}
    dataset.save(pd.DataFrame({"a": [1, 2, 3]}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]  # renamed into place
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy.load()["a"].tolist() == [1, 2, 3]
