"""Cohen's kappa of every co-labelling annotator pair, straight from the long label table.

``simlabel.core.kappa.kappa_matrix`` needs the dense (N, A) label matrix and returns a dense
(A, A) array; with tens of thousands of annotators neither fits. This module takes the long
table instead (three int arrays of length L: item index, annotator index, class index, one
entry per label given) and returns sparse (A, A) matrices holding only the pairs that
co-labelled at least ``min_overlap`` items. Cost: time and memory linear in L plus the number
of co-labelled (item, j, k) triples, never N * A, A * A or (A*C)^2.

Method (no Python loop over items, annotators or pairs):

1. sort the labels by (item, annotator) (an LSD radix sort made of stable 16-bit argsorts;
   skipped when the table is already sorted; a repeated (item, annotator) is an error);
2. every label at sorted position p pairs with the later labels q > p of the same item, so
   each unordered pair j < k of annotators who labelled the item appears once, with j at p;
3. each co-label (j, k, c_j, c_k) is packed into one integer
   ``c_j << (bits_C + 2 bits_A) | c_k << 2 bits_A | j << bits_A | k`` and the packed integers
   are radix-sorted on their pair-key bits (the low 2 bits_A): a pair's co-labels then form one
   run, from which come its overlap n (the run length), agreements (c_j == c_k) and
   ``expected = sum_c first_c * second_c`` (a bincount of c_j over (run, class) looked up at
   c_k and summed per run; a run of one co-label has expected = [c_j == c_k]);
4. the labels are processed in chunks of annotators (of the smaller index j) holding about
   ``max_chunk_pairs`` co-labels, so that memory stays bounded; pairs of different chunks
   have different j, so every pair is complete within its chunk.

Conventions are those of ``kappa_matrix`` (SPEC section 1), with the same formula and float64
operations, so the values are bit-identical to it: kappa = (p_o - p_e) / (1 - p_e) with p_o =
agree / n, p_e = sum_c first_c * second_c / n**2; p_e = 1 -> 1 if p_o = 1 else 0; negative kappa
-> 0 (stored explicitly: the pair has evidence); overlap < ``min_overlap`` -> no entry (the
caller's prior; ``kappa_matrix`` writes 0 there); the diagonal is not stored.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from simlabel.core.kappa import _ONE_TOLERANCE

# Co-labels (unordered annotator pairs of one item) handled at once: bounds the working memory
# (about 60 bytes per co-label) and keeps the radix sort's gathers in cache. On the scale
# benchmark (bench/kappa.py) 1 << 18 .. 1 << 21 took 1.6, 1.7, 1.8, 2.0 s: flat below 1 << 20.
MAX_CHUNK_PAIRS = 1 << 19
# The (runs, C) class-count table covers every run of a chunk while it has at most this many
# cells per co-label (or this floor); otherwise only the runs of >= 2 co-labels get one.
_TABLE_CELLS_PER_PAIR = 4
_TABLE_CELLS_FLOOR = 1 << 20


class PairStatistics(NamedTuple):
    """Co-label statistics of the unordered annotator pairs j < k, sorted by (j, k).

    All arrays have length P (pairs with overlap >= ``min_overlap``).
    first, second : int64 annotator indices, first < second.
    overlap : int64, items both labelled.
    agree : int64, items both labelled with the same class.
    expected : int64, ``sum_c first_c * second_c`` with first_c, second_c the two annotators'
        class counts on the overlap (p_e = expected / overlap**2).
    """

    first: np.ndarray
    second: np.ndarray
    overlap: np.ndarray
    agree: np.ndarray
    expected: np.ndarray


class PairwiseKappa(NamedTuple):
    """Kappa and overlap of every annotator pair with overlap >= ``min_overlap``.

    kappa : (A, A) CSR float64, symmetric, in [0, 1]; zeros of such pairs are stored.
    overlap : (A, A) CSR int64, the same sparsity pattern, items co-labelled by the pair.
    """

    kappa: sp.csr_matrix
    overlap: sp.csr_matrix


def _bits(n: int) -> int:
    """Bits needed for the values 0 .. n - 1 (at least 1)."""
    return max(int(n) - 1, 1).bit_length()


def _radix_sorted(values: np.ndarray, n_bits: int, *, return_order: bool = False):
    """Stable LSD radix sort of non-negative ints by their low ``n_bits`` bits, 16 bits per pass.

    numpy's stable argsort of 16-bit ints is a radix sort, several times faster than
    ``np.sort`` / ``np.argsort`` of 32- or 64-bit ints. Returns the sorted values, or the
    sorting permutation (int64) when ``return_order``.
    """
    order = None
    current = values
    for shift in range(0, max(n_bits, 1), 16):
        digit = ((current >> shift) & ((1 << min(16, n_bits - shift)) - 1)).astype(np.uint16)
        step = np.argsort(digit, kind="stable")
        current = current[step]
        if return_order:
            order = step if order is None else order[step]
    return order if return_order else current


def _validated(items, annotators, labels, n_items: int, n_annotators: int, n_classes: int):
    if n_classes < 1 or n_items < 0 or n_annotators < 0:
        raise ValueError(f"need n_classes >= 1 and n_items, n_annotators >= 0, got {n_items}, {n_annotators}, {n_classes}")
    arrays = [np.asarray(x) for x in (items, annotators, labels)]
    names = ("items", "annotators", "labels")
    limits = (n_items, n_annotators, n_classes)
    if any(x.ndim != 1 for x in arrays) or len({x.size for x in arrays}) != 1:
        raise ValueError(f"items, annotators, labels must be 1-D of one length, got shapes {[x.shape for x in arrays]}")
    for x, name, limit in zip(arrays, names, limits, strict=True):
        if x.size and not np.issubdtype(x.dtype, np.integer):
            raise ValueError(f"{name} must be integer indices, got dtype {x.dtype}")
        if x.size and (x.min() < 0 or x.max() >= limit):
            raise ValueError(f"{name} must be in [0, {limit}), got [{x.min()}, {x.max()}]")
    return arrays


def _sorted_by_item_annotator(items, annotators, labels, n_items: int, n_annotators: int, n_classes: int):
    """The table sorted by (item, annotator), as int64; a repeated (item, annotator) is an error.

    The three columns are packed into one int64 ``label << (i_bits + a_bits) | item << a_bits |
    annotator`` and radix-sorted on the low (item, annotator) bits: no permutation to apply.
    """
    items, annotators, labels = (x.astype(np.int64, copy=False) for x in (items, annotators, labels))
    a_bits = _bits(n_annotators)
    key_bits = _bits(n_items) + a_bits
    key = (items << a_bits) | annotators
    if key.size < 2 or (key[1:] > key[:-1]).all():
        return items, annotators, labels
    if key_bits + _bits(n_classes) > 62:  # too wide to pack: sort by permutation
        order = np.lexsort((annotators, items))
        key, items, annotators, labels = key[order], items[order], annotators[order], labels[order]
    else:
        packed = _radix_sorted((labels << key_bits) | key, key_bits)
        key = packed & ((1 << key_bits) - 1)
        items, annotators, labels = key >> a_bits, key & ((1 << a_bits) - 1), packed >> key_bits
    repeated = np.flatnonzero(key[1:] == key[:-1])
    if repeated.size:
        item, annotator = int(items[repeated[0]]), int(annotators[repeated[0]])
        raise ValueError(f"(item {item}, annotator {annotator}) is labelled more than once")
    return items, annotators, labels


def _later_labels(items: np.ndarray) -> np.ndarray:
    """For each position of the item-sorted table, how many labels of its item follow it."""
    n = items.size
    starts = np.flatnonzero(np.concatenate(([True], items[1:] != items[:-1])))
    ends = np.append(starts[1:], n)
    return np.repeat(ends, ends - starts) - np.arange(n) - 1


def _chunks(annotators: np.ndarray, later: np.ndarray, max_pairs: int) -> list[np.ndarray | None]:
    """Positions of the sorted table in chunks of whole annotators of about max_pairs co-labels.

    ``None`` stands for "every position" (the single-chunk case). A chunk holds at most
    ``max_pairs`` plus the co-labels of one annotator (an annotator is never split).
    """
    total = int(later.sum())
    if total <= max_pairs:
        return [None]
    order = _radix_sorted(annotators, _bits(int(annotators.max()) + 1), return_order=True)
    by_annotator = annotators[order]
    cumulative = np.cumsum(later[order])
    cuts = np.searchsorted(cumulative, np.arange(max_pairs, total, max_pairs), side="right")
    # Snap each cut back to the first position of its annotator.
    snapped = np.searchsorted(by_annotator, by_annotator[np.minimum(cuts, order.size - 1)], side="left")
    bounds = np.unique(np.concatenate(([0], snapped, [order.size])))
    return [order[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]


def _expected_counts(packed: np.ndarray, overlap: np.ndarray, selected: np.ndarray | None, layout) -> np.ndarray:
    """``sum_c first_c * second_c`` of the runs of the sorted co-labels (int64).

    It equals the sum over the run's co-labels e of first_{c_k(e)}, so one (runs, C) table of
    the first annotator's class counts is enough. ``selected`` (bool per run) restricts the
    work and the table to those runs (None: all runs).
    """
    a_bits, c_bits, n_classes = layout
    shift, c_mask = 2 * a_bits, (1 << c_bits) - 1
    lengths = overlap if selected is None else overlap[selected]
    index = np.int32 if lengths.size * n_classes < 2**31 - 1 else np.int64
    base = np.repeat(np.arange(0, lengths.size * n_classes, n_classes, dtype=index), lengths)
    codes = packed if selected is None else packed[np.repeat(selected, overlap)]
    table = np.bincount(base + ((codes >> (shift + c_bits)) & c_mask).astype(index), minlength=lengths.size * n_classes)
    contributions = table[base + ((codes >> shift) & c_mask).astype(index)]
    return np.add.reduceat(contributions, np.cumsum(lengths) - lengths) if lengths.size else np.zeros(0, np.int64)


def _chunk_statistics(positions, later, annotators, labels, tail, layout, min_overlap: int) -> PairStatistics:
    """Statistics of the pairs whose smaller annotator sits at ``positions`` (None: all positions).

    A co-label is packed as ``c_j << (c_bits + 2 a_bits) | c_k << 2 a_bits | (j - j0) << a_bits | k``:
    ``tail`` is the partner's half ``labels << 2 a_bits | annotators`` of every position,
    ``layout`` is (a_bits, c_bits, n_classes). Only the low (pair key) bits are sorted.
    """
    a_bits, c_bits, n_classes = layout
    shift, c_mask = 2 * a_bits, (1 << c_bits) - 1
    if positions is None:
        positions, counts, first, first_labels = np.arange(later.size), later, annotators, labels
    else:
        counts, first, first_labels = later[positions], annotators[positions], labels[positions]
    n_pairs = int(counts.sum())
    if n_pairs == 0:
        return PairStatistics(*(np.zeros(0, np.int64) for _ in range(5)))
    j0 = int(first.min())
    head = ((first_labels << (shift + c_bits)) | ((first - j0) << a_bits)).astype(tail.dtype)
    index = np.int32 if max(n_pairs, later.size) < 2**31 - 1 else np.int64
    partner = np.arange(n_pairs, dtype=index) + np.repeat((positions + 1 - np.cumsum(counts) + counts).astype(index), counts)
    packed = np.repeat(head, counts) | tail[partner]
    del partner, head
    packed = _radix_sorted(packed, _bits(int(first.max()) - j0 + 1) + a_bits)

    key = packed & ((1 << shift) - 1)
    new_run = np.empty(n_pairs, bool)
    new_run[0] = True
    np.not_equal(key[1:], key[:-1], out=new_run[1:])
    starts = np.flatnonzero(new_run)
    del new_run
    overlap = np.diff(starts, append=n_pairs)
    agree = np.add.reduceat(((packed >> (shift + c_bits)) & c_mask) == ((packed >> shift) & c_mask), starts, dtype=np.int64)
    keep = overlap >= min_overlap
    if starts.size * n_classes <= max(_TABLE_CELLS_PER_PAIR * n_pairs, _TABLE_CELLS_FLOOR):
        expected = _expected_counts(packed, overlap, None, layout)[keep]
    else:  # mostly runs of one co-label (p_e = [c_j == c_k] = agree): table for the others only
        multi = overlap >= max(2, min_overlap)
        expected = agree.copy()
        expected[multi] = _expected_counts(packed, overlap, multi, layout)
        expected = expected[keep]
    key = key[starts[keep]].astype(np.int64)
    return PairStatistics((key >> a_bits) + j0, key & ((1 << a_bits) - 1), overlap[keep], agree[keep], expected)


def colabel_pair_statistics(
    items, annotators, labels, n_items: int, n_annotators: int, n_classes: int, min_overlap: int = 2,
    *, max_chunk_pairs: int = MAX_CHUNK_PAIRS,
) -> PairStatistics:
    """Overlap, agreements and expected-agreement counts of every pair j < k with overlap >= min_overlap.

    Parameters
    ----------
    items, annotators, labels : (L,) int, the long label table: label ``labels[t]`` given by
        annotator ``annotators[t]`` to item ``items[t]``, indices in [0, n_items), [0,
        n_annotators), [0, n_classes); any order; one label per (item, annotator).
    n_items, n_annotators, n_classes : N, A, C.
    min_overlap : pairs that co-labelled fewer items are left out (values below 1 act as 1).
    max_chunk_pairs : co-labels processed at once (memory bound; results do not depend on it).

    Returns
    -------
    ``PairStatistics`` (arrays of length P, pairs sorted by (first, second)).
    """
    items, annotators, labels = _validated(items, annotators, labels, n_items, n_annotators, n_classes)
    a_bits, c_bits = _bits(n_annotators), _bits(n_classes)
    if 2 * (a_bits + c_bits) > 62:
        raise ValueError(f"{n_annotators} annotators x {n_classes} classes do not fit the packed int64 co-labels")
    min_overlap = max(int(min_overlap), 1)
    # The dense (runs, C) table of _expected_counts grows with C: fewer co-labels per chunk.
    max_chunk_pairs = max(1, min(int(max_chunk_pairs), max(1 << 16, (1 << 26) // n_classes)))
    if items.size == 0:
        return PairStatistics(*(np.zeros(0, np.int64) for _ in range(5)))
    items, annotators, labels = _sorted_by_item_annotator(items, annotators, labels, n_items, n_annotators, n_classes)
    later = _later_labels(items)
    tail_dtype = np.int32 if 2 * (a_bits + c_bits) <= 31 else np.int64
    tail = ((labels << (2 * a_bits)) | annotators).astype(tail_dtype)
    parts = [
        _chunk_statistics(chunk, later, annotators, labels, tail, (a_bits, c_bits, n_classes), min_overlap)
        for chunk in _chunks(annotators, later, max_chunk_pairs)
    ]
    columns = [list(column) for column in zip(*parts, strict=True)]
    del parts
    # One column at a time, each column's pieces freed once joined (peak: one extra column).
    return PairStatistics(*(np.concatenate(columns.pop(0)) for _ in range(len(PairStatistics._fields))))


def clipped_kappa(overlap: np.ndarray, agree: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Kappa of pairs from their counts, SPEC section 1 edge rules (as ``kappa_matrix``).

    overlap, agree, expected : (P,) counts (``PairStatistics``); overlap >= 1.
    Returns (P,) float64 in [0, 1].
    """
    # The float operations of kappa_matrix's formula, in place (few temporaries at 10^7 pairs).
    scratch = overlap.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_o = agree / scratch
        p_e = np.divide(expected, np.multiply(scratch, scratch, out=scratch), out=scratch)
        kappa = p_o - p_e
        denominator = np.subtract(1.0, p_e, out=p_e)
        np.divide(kappa, denominator, out=kappa)
        degenerate = np.abs(denominator, out=denominator) <= _ONE_TOLERANCE  # p_e = 1: one single class
        kappa[degenerate] = np.where(np.abs(p_o[degenerate] - 1.0) <= _ONE_TOLERANCE, 1.0, 0.0)
    return np.clip(kappa, 0.0, 1.0, out=kappa)


def _symmetric(first: np.ndarray, second: np.ndarray, n_annotators: int, *columns: np.ndarray) -> list[sp.csr_matrix]:
    """(A, A) CSR matrices with ``column[t]`` at (first[t], second[t]) and (second[t], first[t]).

    Zeros are kept (an entry means "the pair has evidence"). The pairs come sorted by (first,
    second) with first < second, so scipy's counting sort of the entries by row (COO -> CSR),
    given the mirrored entries first, leaves every row's columns sorted: canonical CSR, no sort.
    """
    index = np.int32 if max(n_annotators, 2 * first.size) < 2**31 - 1 else np.int64
    rows = np.concatenate((second, first)).astype(index)
    cols = np.concatenate((first, second)).astype(index)
    shape = (n_annotators, n_annotators)
    return [sp.csr_matrix((np.concatenate((c, c)), (rows, cols)), shape=shape) for c in columns]


def pairwise_kappa_and_overlap(
    items, annotators, labels, n_items: int, n_annotators: int, n_classes: int, min_overlap: int = 2,
    *, max_chunk_pairs: int = MAX_CHUNK_PAIRS,
) -> PairwiseKappa:
    """Sparse (A, A) Cohen's kappa and overlap counts from the long label table.

    Parameters as ``colabel_pair_statistics``. Returns ``PairwiseKappa(kappa, overlap)``: both
    (A, A) CSR, symmetric, no diagonal, an entry for every pair that co-labelled at least
    ``min_overlap`` items (kappa 0 included). ``kappa.toarray()`` equals
    ``kappa_matrix(y, n_classes, min_overlap)`` of the same labels as an (N, A) matrix.
    """
    stats = colabel_pair_statistics(
        items, annotators, labels, n_items, n_annotators, n_classes, min_overlap, max_chunk_pairs=max_chunk_pairs
    )
    kappa = clipped_kappa(stats.overlap, stats.agree, stats.expected)
    first, second, overlap = stats.first, stats.second, stats.overlap
    del stats  # agree and expected are no longer needed
    return PairwiseKappa(*_symmetric(first, second, n_annotators, kappa, overlap))


def pairwise_kappa(
    items, annotators, labels, n_items: int, n_annotators: int, n_classes: int, min_overlap: int = 2,
    *, max_chunk_pairs: int = MAX_CHUNK_PAIRS,
) -> sp.csr_matrix:
    """Sparse (A, A) float64 Cohen's kappa of every pair with overlap >= ``min_overlap``.

    See ``pairwise_kappa_and_overlap`` (this is its ``kappa``).
    """
    stats = colabel_pair_statistics(
        items, annotators, labels, n_items, n_annotators, n_classes, min_overlap, max_chunk_pairs=max_chunk_pairs
    )
    (kappa,) = _symmetric(stats.first, stats.second, n_annotators, clipped_kappa(stats.overlap, stats.agree, stats.expected))
    return kappa
