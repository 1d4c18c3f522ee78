"""Benchmark: all-pairs Cohen's kappa on the full CIFAR-10N label matrix.

Measures ``simlabel.core.kappa.kappa_matrix(y, 10, min_overlap=1)`` (best of a few repeats) on the
(50000, 747) label matrix, against the naive implementation: ``sklearn.metrics.cohen_kappa_score``
looped over annotator pairs, each pair first computing its overlap mask (that is how a naive loop
finds out that a pair shares no item) and calling sklearn only when the overlap is non-empty.
The naive loop over all A*(A-1)/2 pairs takes too long, so it runs on a uniform random sample of
pairs and its time is EXTRAPOLATED to all pairs (both measured in this process). The kappa values
of the sampled pairs are checked against sklearn (SPEC section 1 edge rules, clipped at 0).
Peak memory of one kappa_matrix call (tracemalloc) shows that neither an (A*C)^2 dense array nor
an N x A x C array is built.

    .venv/bin/python bench/kappa.py [--pairs 20000] [--repeats 7] [--seed 0]

Last stdout line: {"seconds": ..., "ratio_vs_sklearn": ...}.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
import warnings

import numpy as np
from _common import best_of, emit, load_cifar10n, machine, peak_rss_mb
from sklearn.metrics import cohen_kappa_score

from simlabel.core.kappa import kappa_matrix

MISSING = -1


def naive_pair_kappa(y: np.ndarray, j: int, k: int, min_overlap: int = 1) -> tuple[float, bool]:
    """What a naive loop does for one pair: overlap mask, then sklearn on the overlap.

    Returns (kappa with SPEC edge rules, whether sklearn was called)."""
    both = (y[:, j] != MISSING) & (y[:, k] != MISSING)
    n = int(both.sum())
    if n == 0 or n < min_overlap:
        return 0.0, False
    a, b = y[both, j], y[both, k]
    if (a == a[0]).all() and (b == a[0]).all():
        return 1.0, True  # p_e = 1 and p_o = 1 (sklearn would give nan)
    return max(float(cohen_kappa_score(a, b)), 0.0), True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20000, help="random pairs timed with the naive sklearn loop")
    parser.add_argument("--repeats", type=int, default=7, help="repeats of kappa_matrix (best is reported)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # sklearn's divide warnings on degenerate pairs

    y, n_classes, load_s = load_cifar10n()
    n_items, n_annotators = y.shape
    n_pairs = n_annotators * (n_annotators - 1) // 2
    order = "F (column-major)" if y.flags.f_contiguous and not y.flags.c_contiguous else "C (row-major)"
    print(f"machine: {machine()}")
    print(
        f"data: cifar10n label matrix {y.shape} {y.dtype}, {order} as build_label_matrix returns it, "
        f"{int((y != MISSING).sum())} labels, {n_classes} classes (built in {load_s:.1f} s)"
    )

    # --- kappa_matrix ------------------------------------------------------------------------
    kappa_matrix(y, n_classes, min_overlap=1)  # warm-up (imports, caches)
    seconds, all_times, similarity = best_of(lambda: kappa_matrix(y, n_classes, min_overlap=1), args.repeats)
    print(
        f"kappa_matrix(y, {n_classes}, min_overlap=1): best {seconds:.4f} s of {args.repeats} "
        f"(all: {', '.join(f'{t:.4f}' for t in all_times)})"
    )

    # --- peak memory of one call ---------------------------------------------------------------
    tracemalloc.start()
    kappa_matrix(y, n_classes, min_overlap=1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    ac2 = (n_annotators * n_classes) ** 2 * 8
    nac = n_items * n_annotators * n_classes * 1
    print(
        f"peak memory allocated inside one kappa_matrix call (tracemalloc): {peak / 2**20:.1f} MiB; "
        f"a dense (A*C)^2 float64 array would be {ac2 / 2**20:.0f} MiB, an N x A x C bool array "
        f"{nac / 2**20:.0f} MiB, the input y itself {y.nbytes / 2**20:.0f} MiB"
    )
    assert peak < min(ac2, nac), "kappa_matrix allocated as much as an (A*C)^2 or N x A x C array"

    # --- naive sklearn loop on a random sample of pairs, extrapolated -------------------------
    rng = np.random.default_rng(args.seed)
    flat = rng.choice(n_pairs, size=min(args.pairs, n_pairs), replace=False)
    j_all, k_all = np.triu_indices(n_annotators, 1)
    sample_j, sample_k = j_all[flat], k_all[flat]
    naive_values = np.empty(flat.size)
    called = np.zeros(flat.size, bool)
    per_pair = np.empty(flat.size)
    for t, (j, k) in enumerate(zip(sample_j.tolist(), sample_k.tolist(), strict=True)):
        started = time.perf_counter()
        naive_values[t], called[t] = naive_pair_kappa(y, j, k)
        per_pair[t] = time.perf_counter() - started
    sampled_s = per_pair.sum()
    naive_all_s = per_pair.mean() * n_pairs
    print(
        f"naive sklearn loop: timed on {flat.size} uniformly random pairs of {n_pairs} "
        f"({100 * flat.size / n_pairs:.1f} %): {sampled_s:.2f} s; {int(called.sum())} of them overlap "
        f"(sklearn called, {per_pair[called].mean() * 1e3:.2f} ms each), {int((~called).sum())} do not "
        f"(overlap mask only, {per_pair[~called].mean() * 1e6:.0f} us each)"
    )
    # Stratified cross-check: the number of overlapping pairs is known from the similarity's inputs.
    observed = (y != MISSING).astype(np.float32)
    overlapping = int(np.count_nonzero(np.triu(observed.T @ observed, 1)))
    stratified_s = (
        overlapping * per_pair[called].mean() + (n_pairs - overlapping) * per_pair[~called].mean()
    )
    print(
        f"naive sklearn loop over all {n_pairs} pairs: EXTRAPOLATED {naive_all_s:.1f} s "
        f"(mean per sampled pair x pairs); stratified cross-check with the true {overlapping} "
        f"overlapping pairs: {stratified_s:.1f} s"
    )

    # --- correctness on the sampled pairs -----------------------------------------------------
    ours = similarity[sample_j, sample_k]
    np.testing.assert_allclose(ours, naive_values, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(similarity, similarity.T)
    print(
        f"check: kappa_matrix equals sklearn (clipped at 0, SPEC edge rules) on all {flat.size} "
        f"sampled pairs (max |diff| {np.abs(ours - naive_values).max():.1e}; "
        f"{int((naive_values > 0).sum())} of them with kappa > 0)"
    )

    ratio = naive_all_s / seconds
    print(f"ratio (extrapolated naive loop / kappa_matrix): {ratio:.0f}x")
    print(
        f"targets: <= 0.2 s: {'MET' if seconds <= 0.2 else 'MISSED'} ({seconds:.4f} s); "
        f">= 500x: {'MET' if ratio >= 500 else 'MISSED'} ({ratio:.0f}x)"
    )
    print(f"peak RSS of the whole process (includes loading the CSV and y): {peak_rss_mb():.0f} MiB")
    emit({"seconds": round(seconds, 5), "ratio_vs_sklearn": round(ratio, 1)})


if __name__ == "__main__":
    main()
