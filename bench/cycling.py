"""Benchmark: exact similarity after every confidence-cycling imputation, at CIFAR-10N scale.

Simulates Algorithm 1's imputations on the real (50000, 747) CIFAR-10N label matrix: random
missing (item, annotator) entries (every item has labels) get random labels, applied one at a
time. Three ways of keeping the (A, A) kappa similarity exact:

- incremental (per imputation): ``CoLabelCounts.update(old_row, new_row)`` + ``.kappa()`` after
  every single imputation (the paper's Algorithm 1 read literally, done the SPEC's way);
- baseline (per imputation): ``kappa_matrix`` recomputed from scratch on the updated matrix after
  every imputation (Algorithm 1 read literally), timed on the first ``--baseline`` imputations;
- batched (per cycle): one ``update`` with all imputed rows of the cycle + one ``.kappa()``.

Ratios are per-imputation costs measured in this process. The script asserts that all three give
bit-identical similarities (the baseline at the point where it stops, and a full recompute of
the final matrix against the incremental and batched results), and that the sparse count matrix
kept by ``CoLabelCounts`` equals a recount.

    .venv/bin/python bench/cycling.py [--imputations 2000] [--baseline 100] [--seed 0]

Last stdout line: {"ratio_vs_full_recompute": ...}.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import emit, load_cifar10n, machine

from simlabel.core.kappa import CoLabelCounts, colabel_counts, kappa_matrix

MISSING = -1


def draw_imputations(y: np.ndarray, n_classes: int, n: int, seed: int):
    """``n`` distinct random missing entries (item, annotator) of labelled items, random labels."""
    rng = np.random.default_rng(seed)
    labelled = np.flatnonzero((y != MISSING).any(1))
    chosen: dict[tuple[int, int], int] = {}
    while len(chosen) < n:
        item = int(rng.choice(labelled))
        annotator = int(rng.integers(y.shape[1]))
        if y[item, annotator] == MISSING and (item, annotator) not in chosen:
            chosen[(item, annotator)] = int(rng.integers(n_classes))
    entries = np.array([(i, a, c) for (i, a), c in chosen.items()], dtype=np.int64)
    return entries[:, 0], entries[:, 1], entries[:, 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imputations", type=int, default=2000)
    parser.add_argument("--baseline", type=int, default=100, help="imputations timed with a full recompute each")
    parser.add_argument("--min-overlap", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n_imp, n_base, min_overlap = args.imputations, min(args.baseline, args.imputations), args.min_overlap

    y, n_classes, load_s = load_cifar10n()
    y = np.ascontiguousarray(y)  # rows are read and written one item at a time below
    print(f"machine: {machine()}")
    print(f"data: cifar10n label matrix {y.shape}, {int((y != MISSING).sum())} labels, {n_classes} classes ({load_s:.1f} s to build)")
    items, annotators, labels = draw_imputations(y, n_classes, n_imp, args.seed)
    print(
        f"simulated imputations: {n_imp} distinct random missing (item, annotator) entries with random labels, "
        f"on {np.unique(items).size} distinct items, {np.unique(annotators).size} distinct annotators; min_overlap={min_overlap}"
    )

    # --- incremental, exact after every imputation --------------------------------------------
    started = time.perf_counter()
    counts = CoLabelCounts(y, n_classes)
    init_s = time.perf_counter() - started
    started = time.perf_counter()
    counts.kappa(min_overlap)
    first_kappa_s = time.perf_counter() - started
    print(f"setup (not in the per-imputation figures): CoLabelCounts(y) {init_s:.3f} s, first .kappa() {first_kappa_s:.3f} s")

    current = y.copy()
    per_imputation = np.empty(n_imp)
    at_baseline_end = None
    for t in range(n_imp):
        i, a, c = int(items[t]), int(annotators[t]), int(labels[t])
        started = time.perf_counter()
        old_row = current[i : i + 1].copy()
        current[i, a] = c
        counts.update(old_row, current[i : i + 1])
        similarity = counts.kappa(min_overlap)
        per_imputation[t] = time.perf_counter() - started
        if t == n_base - 1:
            at_baseline_end = similarity
    incremental_s = float(np.median(per_imputation))
    print(
        f"incremental (update + kappa() after each of {n_imp} imputations): total {per_imputation.sum():.3f} s, "
        f"per imputation median {incremental_s * 1e3:.3f} ms, mean {per_imputation.mean() * 1e3:.3f} ms, "
        f"p95 {np.percentile(per_imputation, 95) * 1e3:.3f} ms"
    )
    final_incremental = similarity

    # --- baseline: full recompute after each imputation (first n_base imputations) ------------
    baseline_matrix = y.copy()
    per_baseline = np.empty(n_base)
    for t in range(n_base):
        started = time.perf_counter()
        baseline_matrix[items[t], annotators[t]] = labels[t]
        recomputed = kappa_matrix(baseline_matrix, n_classes, min_overlap)
        per_baseline[t] = time.perf_counter() - started
    baseline_s = float(np.median(per_baseline))
    print(
        f"baseline (kappa_matrix from scratch after each imputation), timed on the first {n_base} imputations: "
        f"total {per_baseline.sum():.2f} s, per imputation median {baseline_s * 1e3:.1f} ms, mean {per_baseline.mean() * 1e3:.1f} ms "
        f"(all {n_imp} would take ~{baseline_s * n_imp:.0f} s)"
    )
    assert np.array_equal(recomputed, at_baseline_end), "incremental similarity differs from the full recompute"

    # --- batched: one update for the whole cycle ----------------------------------------------
    changed = np.unique(items)
    old_rows, new_rows = y[changed], current[changed]
    batched_times = []
    for _ in range(3):  # best of 3, each on fresh counts
        batched = CoLabelCounts(y, n_classes)
        batched.kappa(min_overlap)
        started = time.perf_counter()
        batched.update(old_rows, new_rows)
        final_batched = batched.kappa(min_overlap)
        batched_times.append(time.perf_counter() - started)
    batched_total = min(batched_times)
    batched_s = batched_total / n_imp
    print(
        f"batched (one update with the {changed.size} changed rows + one kappa() per cycle of {n_imp} imputations): "
        f"best of 3 {batched_total * 1e3:.1f} ms, {batched_s * 1e6:.1f} us per imputation"
    )

    # --- exactness ------------------------------------------------------------------------------
    final_full = kappa_matrix(current, n_classes, min_overlap)
    assert np.array_equal(final_incremental, final_full), "incremental final similarity differs from a full recompute"
    assert np.array_equal(final_batched, final_full), "batched final similarity differs from a full recompute"
    assert (counts.counts != colabel_counts(current, n_classes)).nnz == 0, "kept counts differ from a recount"
    print(
        f"check: final similarity after {n_imp} imputations is bit-identical (np.array_equal) from full recompute, "
        f"incremental and batched; also at imputation {n_base} (incremental vs baseline); "
        f"kept co-label counts equal a recount; {int((final_full != kappa_matrix(y, n_classes, min_overlap)).sum())} "
        f"similarity entries changed by the imputations"
    )

    ratio = baseline_s / incremental_s
    print(f"per-imputation cost ratio (full recompute / incremental): {ratio:.0f}x (medians)")
    print(f"per-imputation cost ratio (full recompute / batched): {baseline_s / batched_s:.0f}x")
    print(f"target >= 100x: {'MET' if ratio >= 100 else 'MISSED'} ({ratio:.0f}x)")
    emit({"ratio_vs_full_recompute": round(ratio, 1)})


if __name__ == "__main__":
    main()
