"""Benchmark: the labels at the stage boundaries, a long table against the (N, A) matrix it replaced.

The label_matrix stage writes the labels once; the similarity stage, every training node (one
per method) and reporting load them. Both formats, on CIFAR-10N (50,000 items x 747 annotators,
150,000 labels), timed interleaved (one round of each per repeat, medians compared):

- ``dense`` (before): ``build_label_matrix`` -> the (N, A) DataFrame, ``to_parquet`` (what
  ``pandas.ParquetDataset`` does), ``read_parquet`` + ``to_numpy`` (what a node did on load);
- ``table`` (now): ``build_label_table`` -> ``LabelTable``, ``to_frame().to_parquet``,
  ``read_parquet`` + ``LabelTable.from_frame``.

Both builds start from the same ``labels.csv`` frame (read once, untimed). The script checks that
the loaded table and the loaded matrix hold the same labels.

Scale (``--scale``, default on): a seeded synthetic table of 100,000 items x 20 labels = 2M labels
by 20,000 annotators (``bench/kappa.py``'s generator): ``to_frame`` + write and read +
``from_frame``, with this process's peak RSS (run first, so the generator's arrays are the rest
of it). Its matrix would be 100,000 x 20,000 x 8 bytes =
16 GB (not built).

    .venv/bin/python bench/labels.py [--repeats 7] [--no-scale]

Last stdout line: {"load_seconds", "dense_load_seconds", "ratio_load_vs_dense", "file_mb",
"dense_file_mb", "scale_load_seconds", "scale_file_mb", "scale_peak_rss_mb", ...}.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import CIFAR10N, emit, interleaved, load_average, machine, peak_rss_mb
from kappa import scale_table

from simlabel.core.labels import LabelTable, build_label_matrix, build_label_table

FORMATS = {  # build from labels.csv, write, load as a node does
    "dense": (lambda labels, items: build_label_matrix(labels, items)[0], lambda built, path: built.to_parquet(path),
              lambda path: pd.read_parquet(path).to_numpy()),
    "table": (lambda labels, items: build_label_table(labels, items)[0],
              lambda built, path: built.to_frame().to_parquet(path),
              lambda path: LabelTable.from_frame(pd.read_parquet(path))),
}


def timed_round(name: str, labels, items, path: Path) -> dict:
    """Seconds to build, write and load the labels in format ``name``."""
    build, write, load = FORMATS[name]
    times, started = {}, time.perf_counter()
    built = build(labels, items)
    times["build"], started = time.perf_counter() - started, time.perf_counter()
    write(built, path)
    times["write"], started = time.perf_counter() - started, time.perf_counter()
    load(path)
    times["load"] = time.perf_counter() - started
    return times


def cifar_part(folder: Path, repeats: int) -> dict:
    labels = pd.read_csv(CIFAR10N / "labels.csv", dtype=str)
    items = pd.read_csv(CIFAR10N / "items.csv", dtype=str)["item_id"].tolist()
    paths = {"dense": folder / "label_matrix.parquet", "table": folder / "labels.parquet"}
    rounds = {"dense": [], "table": []}
    fns = {name: (lambda name=name: rounds[name].append(timed_round(name, labels, items, paths[name]))) for name in rounds}
    for fn in fns.values():
        fn()  # warm-up (page cache, imports)
    for name in rounds:
        rounds[name].clear()
    interleaved(fns, repeats)
    median = {name: {part: float(np.median([r[part] for r in rs])) for part in ("build", "write", "load")}
              for name, rs in rounds.items()}
    sizes = {name: path.stat().st_size / 1e6 for name, path in paths.items()}
    for name in rounds:
        print(f"{name:6s} build {median[name]['build']:.3f} s  write {median[name]['write']:.3f} s  "
              f"load {median[name]['load']:.4f} s  file {sizes[name]:.2f} MB  (medians of {repeats} interleaved rounds)")
    loaded = LabelTable.from_frame(pd.read_parquet(paths["table"]))
    assert np.array_equal(loaded.to_numpy(), pd.read_parquet(paths["dense"]).to_numpy()), "table != matrix"
    print(f"check: the loaded table's labels equal the loaded matrix ({len(loaded)} labels, "
          f"{loaded.shape[0]} x {loaded.shape[1]}); in memory {sum(a.nbytes for a in (loaded.items, loaded.annotators, loaded.labels)) / 1e6:.1f} MB "
          f"against {loaded.shape[0] * loaded.shape[1] * 8 / 1e6:.0f} MB")
    return {
        "load_seconds": median["table"]["load"], "dense_load_seconds": median["dense"]["load"],
        "ratio_load_vs_dense": median["dense"]["load"] / median["table"]["load"],
        "build_seconds": median["table"]["build"], "dense_build_seconds": median["dense"]["build"],
        "write_seconds": median["table"]["write"], "dense_write_seconds": median["dense"]["write"],
        "file_mb": sizes["table"], "dense_file_mb": sizes["dense"],
    }


def scale_part(folder: Path) -> dict:
    n_items, n_annotators = 100_000, 20_000
    items, annotators, labels = scale_table(0, n_items, n_annotators, 20, 10)[:3]
    started = time.perf_counter()
    table = LabelTable.from_entries(np.arange(n_items).astype(str), np.arange(n_annotators).astype(str),
                                    items, annotators, labels)
    table.to_frame().to_parquet(folder / "scale.parquet")
    write = time.perf_counter() - started
    started = time.perf_counter()
    loaded = LabelTable.from_frame(pd.read_parquet(folder / "scale.parquet"))
    load = time.perf_counter() - started
    assert len(loaded) == len(labels) == 2_000_000 and np.array_equal(loaded.labels, table.labels)
    size = (folder / "scale.parquet").stat().st_size / 1e6
    print(f"scale  {n_items} items x {n_annotators} annotators, {len(labels)} labels: build + write {write:.2f} s, "
          f"load {load:.2f} s, file {size:.1f} MB, peak RSS of this process {peak_rss_mb():.0f} MB "
          f"(its matrix: {n_items * n_annotators * 8 / 1e9:.0f} GB, not built)")
    return {"scale_write_seconds": write, "scale_load_seconds": load, "scale_file_mb": size,
            "scale_peak_rss_mb": peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-scale", action="store_true")
    args = parser.parse_args()
    print(f"machine: {machine()}; {load_average()}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    with tempfile.TemporaryDirectory() as folder:
        # the scale case first: the peak RSS it reports is then its own (generation included)
        summary = {} if args.no_scale else scale_part(Path(folder))
        summary |= cifar_part(Path(folder), args.repeats)
    print(f"the load each stage pays (similarity, every training node, reporting): "
          f"{summary['load_seconds']:.4f} s against {summary['dense_load_seconds']:.3f} s ({summary['ratio_load_vs_dense']:.0f}x)")
    emit({k: round(v, 5) for k, v in summary.items()})


if __name__ == "__main__":
    main()
