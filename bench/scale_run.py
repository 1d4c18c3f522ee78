"""Benchmark: one method's similarity and training nodes on a large synthetic crowd, in the
scale mode (``training.soft_entries_per_item``), with the process's peak memory.

A seeded crowd (``bench/kappa.py``'s generator): ``--items`` items x ``--per-item`` labels by
``--annotators`` annotators (lognormal activity), 10 classes, 16-dimensional features whose
mean depends on the true class; split 60 / 20 / 20. The node functions are called as Kedro
calls them, with the labels in the format the stage writes: the long table (``LabelTable``)
where the code has one, else the (N, A) label-matrix DataFrame of earlier versions (so the same
script measures an older checkout: copy it into that checkout's ``bench/`` and run it there).

Peak memory: ``ru_maxrss`` of this process after building the inputs and at the end (the input
format is part of what a node costs: Kedro hands it the loaded dataset).

    OMP_NUM_THREADS=1 .venv/bin/python bench/scale_run.py [--items 100000] [--annotators 2000] [--per-item 3]
        [--estimator kappa]

Last stdout line: {"format", "estimator", "similarity_mb", "input_seconds", "similarity_seconds", "training_seconds",
"input_peak_rss_mb", "peak_rss_mb", "val_mean_accuracy", ...}.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from _common import emit, load_average, machine, peak_rss_mb
from kappa import scale_table

import simlabel.core.labels as labels_module
from simlabel.pipelines.similarity.nodes import compute_similarity
from simlabel.pipelines.training.nodes import train_method

N_CLASSES, N_FEATURES = 10, 16


def crowd(n_items: int, n_annotators: int, per_item: int, seed: int = 0):
    items, annotators, labels = scale_table(seed, n_items, n_annotators, per_item, N_CLASSES)
    # scale_table's truth is not returned: features follow each item's most frequent label
    votes = np.zeros((n_items, N_CLASSES), np.int64)
    np.add.at(votes, (items, labels), 1)
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.5, (N_CLASSES, N_FEATURES))
    embeddings = (centres[votes.argmax(1)] + rng.normal(size=(n_items, N_FEATURES))).astype(np.float32)
    return items, annotators, labels, embeddings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--annotators", type=int, default=2_000)
    parser.add_argument("--per-item", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--estimator", default="kappa", help="similarity.estimator (kappa, shrunk_kappa, ...)")
    parser.add_argument("--head-updates", default=None, help="training.head_updates (auto, dense, rows)")
    args = parser.parse_args()
    print(f"machine: {machine()}; {load_average()}")
    items, annotators, labels, embeddings = crowd(args.items, args.annotators, args.per_item)
    item_ids, annotator_ids = [f"i{k}" for k in range(args.items)], [f"w{a}" for a in range(args.annotators)]

    started = time.perf_counter()
    if hasattr(labels_module, "LabelTable"):
        fmt = "long table"
        node_labels = labels_module.LabelTable.from_entries(item_ids, annotator_ids, items, annotators, labels).to_frame()
    else:
        fmt = "(N, A) matrix"
        matrix = np.full((args.items, args.annotators), -1, np.int64)
        matrix[items, annotators] = labels
        node_labels = pd.DataFrame(matrix, index=pd.Index(item_ids, name="item_id"),
                                   columns=pd.Index(annotator_ids, name="annotator_id"))
        del matrix
    input_seconds, input_peak = time.perf_counter() - started, peak_rss_mb()
    split = labels_module.split_items(item_ids, {"train": 0.6, "val": 0.2, "test": 0.2}, 0)
    classes = [f"c{k}" for k in range(N_CLASSES)]

    started = time.perf_counter()
    similarity = compute_similarity(node_labels, split, classes, {"estimator": args.estimator, "min_overlap": 2})
    similarity_seconds = time.perf_counter() - started
    # what the stage hands on: a PairSimilarity (pairs with evidence + prior) or an (A, A) DataFrame
    similarity_mb = (similarity.nbytes if hasattr(similarity, "n_pairs") else similarity.memory_usage().sum()) / 1e6
    training = {"architectures": ["heads"], "max_epochs": args.epochs, "hidden": 32, "device": "cpu",
                "soft_entries_per_item": 4, "batch_size": 256}
    if args.head_updates:
        training["head_updates"] = args.head_updates
    started = time.perf_counter()
    outputs = train_method(embeddings, None, node_labels, split, similarity, classes, training, {"min_overlap": 2}, {},
                           method_name="simlabel")
    training_seconds = time.perf_counter() - started
    history = outputs["training_history"]
    print(f"{fmt}: {args.items} items x {args.annotators} annotators, {len(labels)} labels; inputs {input_seconds:.1f} s "
          f"(peak RSS {input_peak:.0f} MB), similarity node ({args.estimator}) {similarity_seconds:.1f} s "
          f"({similarity_mb:.1f} MB), training node "
          f"{training_seconds:.1f} s ({len(history)} epochs, val mean accuracy {history['val_mean_accuracy'].iloc[-1]:.3f}, "
          f"{len(outputs['predictions'])} predictions); peak RSS {peak_rss_mb():.0f} MB")
    emit({"format": fmt, "items": args.items, "annotators": args.annotators, "labels": int(len(labels)),
          "estimator": args.estimator, "similarity_mb": round(similarity_mb, 1), "head_updates": args.head_updates,
          "input_seconds": round(input_seconds, 3), "similarity_seconds": round(similarity_seconds, 3),
          "training_seconds": round(training_seconds, 3), "input_peak_rss_mb": round(input_peak),
          "peak_rss_mb": round(peak_rss_mb()), "val_mean_accuracy": round(float(history["val_mean_accuracy"].iloc[-1]), 4)})


if __name__ == "__main__":
    main()
