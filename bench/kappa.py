"""Benchmark: sparse all-pairs Cohen's kappa from the long label table (CIFAR-10N and a scale case).

Part 1, CIFAR-10N (50,000 items, 747 annotators, 150,000 labels), every co-labelling pair
(min_overlap=1): ``simlabel.core.sparse_kappa.pairwise_kappa`` on the long table of
``labels.csv`` (ids mapped to indices with ``pd.factorize(sort=True)``) against

- the dense path, ``simlabel.core.kappa.kappa_matrix(y, 10, 1)`` on the (50000, 747) label matrix
  exactly as ``build_label_matrix(...)[0].to_numpy()`` returns it; timed interleaved with the
  sparse path (one call of each per repeat), medians compared;
- the naive loop, ``sklearn.metrics.cohen_kappa_score`` on every OVERLAPPING pair only (the pair
  list is given to the loop for free; each pair intersects the two annotators' sorted item
  lists, then calls sklearn). All 10,592 pairs are looped unless ``--sklearn-pairs`` asks for a
  random sample, in which case the loop time is EXTRAPOLATED (said so in the output).

The script asserts that the sparse result equals ``kappa_matrix`` (to 1e-12; in fact bit for bit)
and sklearn (to 1e-12, clipped at 0, SPEC section 1 edge rules) on every looped pair.

Part 2, scale (in a fresh child process, so that its peak memory is its own): a seeded synthetic
table of 100,000 items x 20 labels = 2,000,000 labels by 20,000 annotators (activity lognormal,
sigma 1: the busiest annotator labels ~50x the median), 10 classes, rows shuffled;
``pairwise_kappa_and_overlap(..., min_overlap=2)`` (the project's default), median of repeats.
Peak memory: the peak RSS of the child during one call minus its RSS just before
(``/proc/self/clear_refs`` resets the high-water mark, ``VmHWM`` reads it), with the peak traced by
``tracemalloc`` (numpy buffers) during another call as a cross-check. A random sample of the
returned pairs is checked against sklearn.

    .venv/bin/python bench/kappa.py [--repeats 15] [--sklearn-pairs 0] [--seed 0] [--skip-scale]

Last stdout line: {"seconds", "ratio_vs_sklearn", "ratio_vs_dense", "scale_seconds",
"scale_peak_gib", ...} (``seconds``: the sparse path on CIFAR-10N).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
import warnings

import numpy as np
from _common import CIFAR10N, emit, interleaved, load_average, load_cifar10n, machine, peak_rss_mb
from sklearn.metrics import cohen_kappa_score

from simlabel.core.kappa import kappa_matrix
from simlabel.core.sparse_kappa import pairwise_kappa, pairwise_kappa_and_overlap

GIB = 2**30


def load_long_table():
    """CIFAR-10N's labels.csv as (items, annotators, labels) index arrays and (N, A, C)."""
    import pandas as pd

    table = pd.read_csv(CIFAR10N / "labels.csv")
    items, item_ids = pd.factorize(table["item_id"], sort=True)
    annotators, annotator_ids = pd.factorize(table["annotator_id"], sort=True)
    labels = table["label"].to_numpy()
    return items, annotators, labels, item_ids.size, annotator_ids.size, int(labels.max()) + 1


def sklearn_pair_kappa(items_by, labels_by, j: int, k: int) -> float:
    """What a naive loop does for one overlapping pair: intersect the item lists, call sklearn."""
    _, at_j, at_k = np.intersect1d(items_by[j], items_by[k], assume_unique=True, return_indices=True)
    a, b = labels_by[j][at_j], labels_by[k][at_k]
    if (a == a[0]).all() and (b == a[0]).all():
        return 1.0  # p_e = 1 and p_o = 1 (sklearn would give nan)
    return max(float(cohen_kappa_score(a, b)), 0.0)


def per_annotator(items, annotators, labels, n_annotators):
    """Each annotator's sorted item indices and labels (the naive loop's input, not timed)."""
    order = np.lexsort((items, annotators))
    bounds = np.searchsorted(annotators[order], np.arange(n_annotators + 1))
    split = lambda x: np.split(x[order], bounds[1:-1])  # noqa: E731
    return split(items), split(labels)


def sklearn_loop(table, sparse, n_pairs_asked: int, seed: int):
    """Time the sklearn loop over the overlapping pairs (all, or a sample); check the values."""
    items, annotators, labels, _, n_annotators, _ = table
    upper = sp_upper(sparse)
    j_all, k_all = upper
    n_overlapping = j_all.size
    chosen = np.arange(n_overlapping)
    if 0 < n_pairs_asked < n_overlapping:
        chosen = np.sort(np.random.default_rng(seed).choice(n_overlapping, n_pairs_asked, replace=False))
    items_by, labels_by = per_annotator(items, annotators, labels, n_annotators)
    values = np.empty(chosen.size)
    started = time.perf_counter()
    for t, (j, k) in enumerate(zip(j_all[chosen].tolist(), k_all[chosen].tolist(), strict=True)):
        values[t] = sklearn_pair_kappa(items_by, labels_by, j, k)
    looped_s = time.perf_counter() - started
    ours = np.asarray(sparse[j_all[chosen], k_all[chosen]]).ravel()
    diff = float(np.abs(ours - values).max()) if values.size else 0.0
    assert diff <= 1e-12, f"sparse kappa differs from sklearn by {diff}"
    extrapolated = chosen.size < n_overlapping
    total_s = looped_s * n_overlapping / chosen.size
    return total_s, looped_s, chosen.size, n_overlapping, extrapolated, diff, int((values > 0).sum())


def sp_upper(matrix):
    """(rows, cols) of the stored entries above the diagonal of a CSR matrix."""
    coo = matrix.tocoo()
    keep = coo.row < coo.col
    return coo.row[keep], coo.col[keep]


def cifar_part(args) -> dict:
    table = load_long_table()
    items, annotators, labels, n_items, n_annotators, n_classes = table
    y, y_classes, load_s = load_cifar10n()
    assert y.shape == (n_items, n_annotators) and y_classes == n_classes
    print(f"data: cifar10n long table: {items.size} labels, {n_items} items, {n_annotators} annotators, {n_classes} classes; dense y {y.shape} {y.dtype} (built in {load_s:.1f} s)")
    shuffled = np.random.default_rng(args.seed).permutation(items.size)
    shuffled_table = (items[shuffled], annotators[shuffled], labels[shuffled])
    fns = {
        "sparse": lambda: pairwise_kappa(items, annotators, labels, n_items, n_annotators, n_classes, 1),
        "dense": lambda: kappa_matrix(y, n_classes, min_overlap=1),
        "sparse_shuffled": lambda: pairwise_kappa(*shuffled_table, n_items, n_annotators, n_classes, 1),
        "sparse_min_overlap_2": lambda: pairwise_kappa(items, annotators, labels, n_items, n_annotators, n_classes, 2),
    }
    for fn in fns.values():
        fn()  # warm-up
    times = interleaved(fns, args.repeats)
    median = {name: float(np.median(t)) for name, t in times.items()}
    for name, t in times.items():
        print(f"{name:22s} median {median[name]:.4f} s over {args.repeats} interleaved repeats (min {min(t):.4f}, max {max(t):.4f})")

    sparse = fns["sparse"]()
    dense = fns["dense"]()
    dense_diff = float(np.abs(sparse.toarray() - dense).max())
    assert dense_diff <= 1e-12 and np.array_equal(sparse.toarray(), dense), "sparse != kappa_matrix"
    assert np.array_equal(fns["sparse_shuffled"]().toarray(), dense)
    np.testing.assert_array_equal(fns["sparse_min_overlap_2"]().toarray(), kappa_matrix(y, n_classes, 2))
    print(f"check: sparse == kappa_matrix bit for bit (max |diff| {dense_diff:.1e}), also from the shuffled table and at min_overlap=2")

    tracemalloc.start()
    fns["sparse"]()
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"peak traced memory of one sparse call: {traced / 2**20:.1f} MiB (the dense y alone: {y.nbytes / 2**20:.0f} MiB)")

    total_s, looped_s, n_looped, n_overlapping, extrapolated, sk_diff, positive = sklearn_loop(table, sparse, args.sklearn_pairs, args.seed)
    how = f"EXTRAPOLATED from {n_looped} random pairs ({looped_s:.1f} s)" if extrapolated else "all of them looped"
    print(f"sklearn loop over the {n_overlapping} overlapping pairs: {total_s:.1f} s ({how}); max |diff| to sparse {sk_diff:.1e}, {positive} pairs with kappa > 0")
    ratio_sklearn = total_s / median["sparse"]
    ratio_dense = median["dense"] / median["sparse"]
    print(f"ratios: sklearn loop / sparse {ratio_sklearn:.0f}x; kappa_matrix / sparse {ratio_dense:.1f}x")
    print(f"target <= 0.015 s: {'MET' if median['sparse'] <= 0.015 else 'MISSED'} ({median['sparse']:.4f} s)")
    return {
        "seconds": round(median["sparse"], 5),
        "ratio_vs_sklearn": round(ratio_sklearn, 1),
        "ratio_vs_dense": round(ratio_dense, 2),
        "dense_seconds": round(median["dense"], 5),
        "sklearn_seconds": round(total_s, 2),
        "sklearn_extrapolated": extrapolated,
        "seconds_shuffled_input": round(median["sparse_shuffled"], 5),
        "max_abs_diff": max(dense_diff, sk_diff),
    }


def scale_table(seed: int, n_items: int, n_annotators: int, per_item: int, n_classes: int):
    """Seeded synthetic long table: ``per_item`` distinct annotators per item (lognormal activity)."""
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 1.0, n_annotators)
    activity /= activity.sum()
    items = np.repeat(np.arange(n_items), per_item)
    annotators = rng.choice(n_annotators, size=items.size, p=activity)
    for _ in range(100):  # redraw repeated (item, annotator) entries until there are none
        key = items * n_annotators + annotators
        order = np.argsort(key, kind="stable")
        repeated = order[1:][key[order][1:] == key[order][:-1]]
        if repeated.size == 0:
            break
        annotators[repeated] = rng.choice(n_annotators, size=repeated.size, p=activity)
    truth = rng.integers(0, n_classes, n_items)
    accuracy = rng.uniform(0.3, 0.95, n_annotators)
    noise = rng.integers(0, n_classes, items.size)
    labels = np.where(rng.random(items.size) < accuracy[annotators], truth[items], noise)
    shuffle = rng.permutation(items.size)
    return items[shuffle], annotators[shuffle], labels[shuffle]


def rss_bytes(field: str) -> int | None:
    """VmRSS / VmHWM of this process from /proc (None where unavailable)."""
    try:
        with open("/proc/self/status") as status:
            line = next(x for x in status if x.startswith(field + ":"))
        return int(line.split()[1]) * 1024
    except (OSError, StopIteration):
        return None


def reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def scale_child(args) -> dict:
    """The scale case, run in its own process (see the module docstring)."""
    n_items, n_annotators, per_item, n_classes = args.scale_items, args.scale_annotators, args.scale_labels_per_item, 10
    started = time.perf_counter()
    items, annotators, labels = scale_table(args.seed, n_items, n_annotators, per_item, n_classes)
    activity = np.bincount(annotators, minlength=n_annotators)
    co_labels = n_items * per_item * (per_item - 1) // 2
    print(f"scale data: {items.size} labels, {n_items} items x {per_item}, {n_annotators} annotators (labels per annotator: median {np.median(activity):.0f}, max {activity.max()}), {n_classes} classes, {co_labels} co-labelled (item, j < k) triples; generated in {time.perf_counter() - started:.1f} s")
    call = lambda: pairwise_kappa_and_overlap(items, annotators, labels, n_items, n_annotators, n_classes, args.scale_min_overlap)  # noqa: E731
    gc.collect()
    before = rss_bytes("VmRSS")
    peak_resettable = reset_peak_rss()
    times = []
    started = time.perf_counter()
    result = call()
    times.append(time.perf_counter() - started)
    hwm = rss_bytes("VmHWM")
    peak = (hwm - before) / GIB if peak_resettable and hwm and before else float("nan")
    pairs = result.kappa.nnz // 2
    for _ in range(args.scale_repeats - 1):
        del result
        gc.collect()
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    del result
    gc.collect()
    tracemalloc.start()
    result = call()
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    seconds = float(np.median(times))
    print(f"scale: pairwise_kappa_and_overlap(min_overlap={args.scale_min_overlap}): median {seconds:.2f} s over {len(times)} calls ({', '.join(f'{t:.2f}' for t in times)}); {pairs} pairs stored")
    print(f"scale peak memory: RSS high-water during one call minus RSS before it {peak:.3f} GiB (VmHWM reset via clear_refs: {peak_resettable}); tracemalloc peak of another call {traced / GIB:.3f} GiB; RSS before the call {before / GIB:.3f} GiB (data + interpreter)")

    rng = np.random.default_rng(args.seed + 1)
    rows, cols = sp_upper(result.kappa)
    sample = rng.choice(rows.size, min(args.scale_check_pairs, rows.size), replace=False)
    items_by, labels_by = per_annotator(items, annotators, labels, n_annotators)
    reference = np.array([sklearn_pair_kappa(items_by, labels_by, j, k) for j, k in zip(rows[sample].tolist(), cols[sample].tolist(), strict=True)])
    overlap = np.array([np.intersect1d(items_by[j], items_by[k]).size for j, k in zip(rows[sample].tolist(), cols[sample].tolist(), strict=True)])
    diff = float(np.abs(np.asarray(result.kappa[rows[sample], cols[sample]]).ravel() - reference).max())
    assert diff <= 1e-12 and np.array_equal(np.asarray(result.overlap[rows[sample], cols[sample]]).ravel(), overlap)
    print(f"scale check: {sample.size} random stored pairs equal sklearn (max |diff| {diff:.1e}) and their overlap counts")
    print(f"targets: scale < 10 s: {'MET' if seconds < 10 else 'MISSED'}; peak < 2 GB: {'MET' if peak * GIB < 2e9 else 'MISSED'}")
    return {"scale_seconds": round(seconds, 3), "scale_peak_gib": round(peak, 3), "scale_traced_peak_gib": round(traced / GIB, 3), "scale_pairs": int(pairs), "scale_max_abs_diff": diff}


def run_scale_child(args) -> dict:
    """Run this script with --scale-child in a fresh interpreter; echo its output, return its JSON."""
    command = [sys.executable, __file__, "--scale-child", *sys.argv[1:]]
    done = subprocess.run(command, capture_output=True, text=True, check=False, env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    lines = done.stdout.strip().splitlines()
    print("\n".join(lines[:-1]))
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        raise SystemExit(f"scale child failed with exit status {done.returncode}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="interleaved repeats on CIFAR-10N (medians reported)")
    parser.add_argument("--sklearn-pairs", type=int, default=0, help="overlapping pairs looped with sklearn (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-scale", action="store_true", help="CIFAR-10N part only")
    parser.add_argument("--scale-items", type=int, default=100_000)
    parser.add_argument("--scale-annotators", type=int, default=20_000)
    parser.add_argument("--scale-labels-per-item", type=int, default=20)
    parser.add_argument("--scale-min-overlap", type=int, default=2)
    parser.add_argument("--scale-repeats", type=int, default=3)
    parser.add_argument("--scale-check-pairs", type=int, default=300)
    parser.add_argument("--scale-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # sklearn's divide warnings on degenerate pairs
    if args.scale_child:
        emit(scale_child(args))
        return
    print(f"machine: {machine()}; at start: {load_average()}")
    summary = cifar_part(args)
    if not args.skip_scale:
        summary.update(run_scale_child(args))
    print(f"at the end: {load_average()}; peak RSS of this process {peak_rss_mb():.0f} MiB")
    emit(summary)


if __name__ == "__main__":
    main()
