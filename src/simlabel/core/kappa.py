"""Cohen's kappa between every pair of annotators, from one-hot co-label counts.

The co-label count matrix ``M`` is (A*C, A*C): ``M[j*C + c, k*C + d]`` = number of items that
annotator j labelled c and annotator k labelled d. It is ``O.T @ O`` for the sparse (N, A*C)
one-hot matrix ``O`` of the labels, so it only holds pairs that co-labelled something and
costs time in the number of co-labelled (item, j, k) triples, never N * A * A. Every pair's
kappa comes from its C x C block (SPEC section 1):

    n = block.sum(), p_o = trace(block) / n, p_e = sum_c rows_c * cols_c / n**2,
    kappa = (p_o - p_e) / (1 - p_e)

Decided by the SPEC: overlap below ``min_overlap`` -> 0 (no evidence); p_e = 1 -> 1 if p_o = 1
else 0; negative kappa -> 0; the diagonal is not used (set to 0).

Only the block statistics enter kappa: per ordered pair (j, k) its overlap ``n``, agreements
``trace(block)`` and the two marginals ``rows``, ``cols`` (C each). ``CoLabelCounts`` keeps these
per co-labelling pair, so an update recomputes only the pairs of annotators that co-labelled a
changed item (exact: the statistics are integer counts and go through the same formula as a full
recompute, so the result is bit-identical to it).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from simlabel.core.labels import MISSING, LabelTable, check_label_values, matrix_or_table

# A dense (A*A,) lookup table maps pair keys to compact pair indices below this size (a sort
# via np.unique above it); it is never larger than the (A, A) similarity that is returned.
_DENSE_PAIR_TABLE_MAX = 1 << 24
# CoLabelCounts.update enumerates label pairs up to this many (~0.4 us each), past it two sparse
# products (~1.5 ms whatever the size, then ~4 ns a pair): the crossover is about 4,000 pairs.
ENUMERATED_PAIRS_MAX = 4096
# |x - 1| <= atol + rtol * 1 with np.isclose's defaults, written out (isclose is slow on tiny arrays).
_ONE_TOLERANCE = 1e-8 + 1e-5


def observed_entries(y: np.ndarray | LabelTable, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, labels) of the observed entries of a 2-D label matrix or a ``LabelTable``, validated.

    The matrix is scanned once in its memory order (a Fortran-ordered matrix, as pandas'
    ``to_numpy`` returns it, is not read across its strides); a table is read as it is.
    """
    if isinstance(y, LabelTable):
        check_label_values(y.labels, n_classes)
        return y.items, y.annotators, y.labels
    y = np.asarray(y)
    if y.ndim != 2:
        raise ValueError(f"label matrix must be 2-D (N, A), got shape {y.shape}")
    n_items, n_annotators = y.shape
    if y.flags.f_contiguous and not y.flags.c_contiguous:
        flat_y = y.T.reshape(-1)  # a view: (A, N) in C order
        flat = np.flatnonzero(flat_y != MISSING)
        cols, rows = np.divmod(flat, n_items)
    else:
        flat_y = np.ascontiguousarray(y).reshape(-1)
        flat = np.flatnonzero(flat_y != MISSING)
        rows, cols = np.divmod(flat, n_annotators)
    labels = flat_y[flat]
    check_label_values(labels, n_classes)
    return rows, cols, labels.astype(np.int64, copy=False)


def colabel_counts(y: np.ndarray, n_classes: int) -> sp.csr_matrix:
    """(A*C, A*C) co-label counts ``M = O.T @ O`` of a label matrix or ``LabelTable`` (see module docstring)."""
    y = matrix_or_table(y)
    rows, cols, labels = observed_entries(y, n_classes)
    n_items, n_annotators = y.shape
    # CSC one-hot: its transpose is CSR, the product of CSR and CSC is the cheapest in scipy.
    onehot = sp.csc_matrix(
        (np.ones(rows.size), (rows, cols * n_classes + labels)),
        shape=(n_items, n_annotators * n_classes),
    )
    return sp.csr_matrix(onehot.T @ onehot)


def _pair_index(keys: np.ndarray, n_annotators: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct pair keys and each key's index into them (``np.unique(..., return_inverse)``)."""
    if n_annotators * n_annotators > _DENSE_PAIR_TABLE_MAX:
        return np.unique(keys, return_inverse=True)
    table = np.zeros(n_annotators * n_annotators, np.int64)
    table[keys] = 1
    pair_keys = np.flatnonzero(table)
    table[pair_keys] = np.arange(pair_keys.size)
    return pair_keys, table[keys]


def _pair_statistics(counts: sp.spmatrix, n_annotators: int, n_classes: int):
    """Block statistics of every ordered annotator pair (j != k) present in ``counts``.

    Returns
    -------
    pair_keys : (P,) int64, ``j * A + k``, sorted.
    overlap, agree : (P,) float64, items co-labelled, items co-labelled with the same class.
    first, second : (P, C) float64, class counts of j and of k on the overlap.
    """
    csr = sp.csr_matrix(counts)
    csr.sum_duplicates()
    row = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    rows_annot, rows_class = np.divmod(row, n_classes)
    cols_annot, cols_class = np.divmod(csr.indices.astype(np.int64), n_classes)
    values = csr.data
    keep = (rows_annot != cols_annot) & (values != 0)
    rows_annot, rows_class = rows_annot[keep], rows_class[keep]
    cols_annot, cols_class, values = cols_annot[keep], cols_class[keep], values[keep]

    pair_keys, pair = _pair_index(rows_annot * n_annotators + cols_annot, n_annotators)
    n_pairs = pair_keys.size
    overlap = np.bincount(pair, weights=values, minlength=n_pairs)
    agree = np.bincount(pair, weights=values * (rows_class == cols_class), minlength=n_pairs)
    first = np.bincount(pair * n_classes + rows_class, weights=values, minlength=n_pairs * n_classes)
    second = np.bincount(pair * n_classes + cols_class, weights=values, minlength=n_pairs * n_classes)
    return pair_keys, overlap, agree, first.reshape(n_pairs, n_classes), second.reshape(n_pairs, n_classes)


def _kappa_values(overlap, agree, first, second, min_overlap: int) -> np.ndarray:
    """Clipped kappa of pairs from their block statistics (SPEC section 1 edge rules)."""
    return _kappa_from_expected(overlap, agree, (first * second).sum(1), min_overlap)


def _kappa_from_expected(overlap, agree, expected, min_overlap: int) -> np.ndarray:
    """Clipped kappa of pairs from overlap, agreements and ``expected = sum_c first_c * second_c``
    (counts, so any exact way of summing them gives the same values)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        p_o = agree / overlap
        p_e = expected / overlap**2
        kappa = (p_o - p_e) / (1.0 - p_e)
        # p_e = 1 (np.isclose's tolerance): both annotators used one single class on the
        # overlap (then p_o = 1 too).
        degenerate = np.abs(p_e - 1.0) <= _ONE_TOLERANCE
        kappa[degenerate] = np.where(np.abs(p_o[degenerate] - 1.0) <= _ONE_TOLERANCE, 1.0, 0.0)
    kappa[overlap < min_overlap] = 0.0
    kappa = np.clip(kappa, 0.0, 1.0, out=kappa)
    kappa[np.isnan(kappa)] = 0.0  # no overlap
    return kappa


def kappa_from_counts(
    counts: sp.spmatrix, n_annotators: int, n_classes: int, min_overlap: int = 1
) -> np.ndarray:
    """All pairwise kappas from a co-label count matrix.

    Parameters
    ----------
    counts : (A*C, A*C) sparse co-label counts (``colabel_counts``).
    n_annotators, n_classes : A, C.
    min_overlap : pairs with fewer co-labelled items get kappa 0.

    Returns
    -------
    (A, A) float64 similarity: kappa clipped at 0, 0 on the diagonal.
    """
    pair_keys, overlap, agree, first, second = _pair_statistics(counts, n_annotators, n_classes)
    similarity = np.zeros((n_annotators, n_annotators))
    similarity.flat[pair_keys] = _kappa_values(overlap, agree, first, second, min_overlap)
    return similarity


def complete_kappa(y: np.ndarray, n_classes: int) -> np.ndarray:
    """``kappa_matrix(y, n_classes, 1)`` for a label matrix without missing entries (e.g. every
    annotator model's predicted label on the same items), where every pair co-labelled all N items.

    Only agreements and marginals enter kappa, so instead of the (A*C)^2 co-label counts it takes
    C products of the (N, A) class indicators, ``agree = sum_c B_c.T @ B_c`` (exact integer
    counts in float64), and the per-annotator class counts; the same formula and edge rules, so
    the values are identical. Why: ``refresh: models`` recomputes this every epoch (6,000 items x
    220 annotators x 10 classes, one thread: 0.10 s against 1.2-1.5 s for the general path).

    Returns (A, A) float64, symmetric, in [0, 1], zero diagonal.
    """
    y = np.asarray(y)
    if y.ndim != 2 or (y == MISSING).any():
        raise ValueError("complete_kappa needs a 2-D label matrix without missing entries")
    check_label_values(y.ravel(), n_classes)
    n_items, n_annotators = y.shape
    agree = np.zeros((n_annotators, n_annotators))
    counts = np.zeros((n_annotators, n_classes))
    for c in range(n_classes):  # C matrix products; never a loop over items or pairs
        indicator = (y == c).astype(np.float64)
        agree += indicator.T @ indicator
        counts[:, c] = indicator.sum(0)
    overlap = np.full(n_annotators * n_annotators, float(n_items))
    expected = (counts @ counts.T).ravel()  # integer counts: exact in float64
    similarity = _kappa_from_expected(overlap, agree.ravel(), expected, 1).reshape(n_annotators, n_annotators)
    np.fill_diagonal(similarity, 0.0)
    return similarity


def kappa_matrix(y: np.ndarray, n_classes: int, min_overlap: int = 1) -> np.ndarray:
    """(A, A) Cohen's kappa similarity of all annotator pairs of a label matrix (SPEC section 1).

    Parameters
    ----------
    y : (N, A) int, ``MISSING`` = -1.
    n_classes : C.
    min_overlap : pairs that co-labelled fewer items get 0.

    Returns
    -------
    (A, A) float64, symmetric, in [0, 1], zero diagonal.
    """
    y = np.asarray(y)
    return kappa_from_counts(colabel_counts(y, n_classes), y.shape[1], n_classes, min_overlap)


def _row_pairs(rows: np.ndarray, n_classes: int):
    """Ordered pairs of labels of the same row, each label with itself included.

    Returns (j, c, k, d, row): annotator and class of both labels and the row index of the pair.
    """
    item, annot = np.nonzero(rows != MISSING)  # sorted by item
    labels = rows[item, annot].astype(np.int64, copy=False)
    check_label_values(labels, n_classes)
    per_row = np.bincount(item, minlength=rows.shape[0])
    row_start = np.cumsum(per_row) - per_row
    per_entry = per_row[item]
    left = np.repeat(np.arange(item.size), per_entry)
    right = row_start[item[left]] + np.arange(left.size) - np.repeat(np.cumsum(per_entry) - per_entry, per_entry)
    return annot[left], labels[left], annot[right], labels[right], item[left]


class CoLabelCounts:
    """Co-label counts kept up to date as labels change, so kappa stays exact and cheap.

    ``update(old_rows, new_rows)`` applies ``M += cooc(new_rows) - cooc(old_rows)``: the
    counts are bilinear in the one-hot rows, so only the changed items are touched and the
    result equals a recount of the whole matrix. The per-pair block statistics and the
    similarity of every ``min_overlap`` asked for so far are kept too: an update recomputes
    only the kappa of the pairs of annotators that labelled one of the changed items (before
    or after the change), and ``kappa()`` copies the result. ``counts`` (the sparse matrix) is
    brought up to date when it is read.
    """

    def __init__(self, y: np.ndarray | LabelTable, n_classes: int):
        y = matrix_or_table(y)
        self.n_annotators = a = y.shape[1]
        self.n_classes = n_classes
        self._counts = colabel_counts(y, n_classes)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        keys, overlap, agree, first, second = _pair_statistics(self._counts, a, n_classes)
        self._n_pairs = keys.size
        self._keys, self._overlap, self._agree, self._first, self._second = keys, overlap, agree, first, second
        self._slot = np.full(a * a, -1, np.int32 if a * a < 2**31 else np.int64)
        self._slot[keys] = np.arange(keys.size)
        self._similarity: dict[int, np.ndarray] = {}

    @property
    def counts(self) -> sp.csr_matrix:
        """(A*C, A*C) co-label counts of the current labels (``colabel_counts``)."""
        if self._pending:
            rows, cols, weights = (np.concatenate(parts) for parts in zip(*self._pending, strict=True))
            self._pending = []
            size = self.n_annotators * self.n_classes
            delta = sp.csr_matrix((weights, (rows, cols)), shape=(size, size))  # sums duplicates
            self._counts = (self._counts + delta).tocsr()
            self._counts.eliminate_zeros()
        return self._counts

    def _grow(self, n_new: int) -> None:
        needed = self._n_pairs + n_new
        capacity = self._keys.size
        if needed <= capacity:
            return
        capacity = max(needed, 2 * capacity, 64)
        extra = capacity - self._keys.size
        self._keys = np.concatenate([self._keys, np.zeros(extra, self._keys.dtype)])
        self._overlap = np.concatenate([self._overlap, np.zeros(extra)])
        self._agree = np.concatenate([self._agree, np.zeros(extra)])
        self._first = np.concatenate([self._first, np.zeros((extra, self.n_classes))])
        self._second = np.concatenate([self._second, np.zeros((extra, self.n_classes))])

    def _changes(self, old_rows: np.ndarray, new_rows: np.ndarray):
        """(j, c_j, k, c_k, weight) changes of the co-label counts: the old rows' co-labels count
        -1, the new rows' +1 (those of unchanged labels cancel). A few rows: enumerate their label
        pairs. Many, or densely imputed ones (a row of 300 labels has 90,000 pairs): two sparse
        products as a recount does (~1.5 ms fixed, then ~100x cheaper per pair)."""
        c, m = self.n_classes, old_rows.shape[0]
        if self.update_cost(old_rows, new_rows) <= ENUMERATED_PAIRS_MAX:
            j, cj, k, ck, row = _row_pairs(np.concatenate([old_rows, new_rows]), c)
            return j, cj, k, ck, np.where(row < m, -1.0, 1.0)
        delta = (colabel_counts(new_rows, c) - colabel_counts(old_rows, c)).tocoo()
        nonzero = delta.data != 0
        (j, cj), (k, ck) = np.divmod(delta.row[nonzero].astype(np.int64), c), np.divmod(delta.col[nonzero].astype(np.int64), c)
        return j, cj, k, ck, delta.data[nonzero]

    @staticmethod
    def update_cost(old_rows: np.ndarray, new_rows: np.ndarray) -> int:
        """Label pairs the rows hold (it grows as labels per row squared)."""
        per_row = (np.asarray(old_rows) != MISSING).sum(1) ** 2 + (np.asarray(new_rows) != MISSING).sum(1) ** 2
        return int(per_row.sum())

    def update(self, old_rows: np.ndarray, new_rows: np.ndarray) -> None:
        """Replace the labels of some items: ``old_rows`` / ``new_rows`` are (m, A) label rows."""
        old_rows, new_rows = np.asarray(old_rows), np.asarray(new_rows)
        if old_rows.shape != new_rows.shape or old_rows.ndim != 2 or old_rows.shape[1] != self.n_annotators:
            raise ValueError(
                f"old_rows and new_rows must both be (m, {self.n_annotators}), got {old_rows.shape} and {new_rows.shape}"
            )
        a, c = self.n_annotators, self.n_classes
        j, cj, k, ck, weights = self._changes(old_rows, new_rows)
        self._pending.append((j * c + cj, k * c + ck, weights))
        if len(self._pending) >= 4096:
            self.counts  # noqa: B018 - folds the pending changes into the sparse counts
        pair = j != k  # the diagonal blocks are counted but do not enter kappa
        j, cj, k, ck, weights = j[pair], cj[pair], k[pair], ck[pair], weights[pair]
        keys = j * a + k
        slots = self._slot[keys].astype(np.int64)
        fresh = slots < 0
        if fresh.any():
            new_keys = np.unique(keys[fresh])
            self._grow(new_keys.size)
            new_slots = np.arange(self._n_pairs, self._n_pairs + new_keys.size)
            self._keys[new_slots] = new_keys
            self._slot[new_keys] = new_slots
            self._n_pairs += new_keys.size
            slots = self._slot[keys].astype(np.int64)
        touched = self._accumulate(slots, cj, ck, weights)
        for min_overlap, similarity in self._similarity.items():
            similarity.flat[self._keys[touched]] = _kappa_values(
                self._overlap[touched], self._agree[touched], self._first[touched], self._second[touched], min_overlap
            )

    def _accumulate(self, slots, cj, ck, weights) -> np.ndarray:
        """Add the changes to the pair statistics; returns the pairs touched (sorted slots)."""
        if 8 * slots.size < self._n_pairs:  # few changes: scattered adds
            np.add.at(self._overlap, slots, weights)
            np.add.at(self._agree, slots, weights * (cj == ck))
            np.add.at(self._first, (slots, cj), weights)
            np.add.at(self._second, (slots, ck), weights)
            return np.unique(slots)
        # Many (a densely imputed batch: millions): counting passes over all pairs, no sort or hash.
        n, c = self._n_pairs, self.n_classes
        self._overlap[:n] += np.bincount(slots, weights, minlength=n)
        self._agree[:n] += np.bincount(slots, weights * (cj == ck), minlength=n)
        self._first[:n] += np.bincount(slots * c + cj, weights, minlength=n * c).reshape(n, c)
        self._second[:n] += np.bincount(slots * c + ck, weights, minlength=n * c).reshape(n, c)
        return np.flatnonzero(np.bincount(slots, minlength=n))

    def kappa_without(self, other: CoLabelCounts, min_overlap: int = 1) -> np.ndarray:
        """(A, A) kappa of these counts minus ``other``'s (the co-labels of a subset of the same
        labels, e.g. imputed-only labels): pair statistics are counts, so they subtract exactly."""
        n = self._n_pairs
        keys = self._keys[:n]
        overlap, agree = self._overlap[:n].copy(), self._agree[:n].copy()
        first, second = self._first[:n].copy(), self._second[:n].copy()
        slots = other._slot[keys].astype(np.int64)
        shared = slots >= 0
        overlap[shared] -= other._overlap[slots[shared]]
        agree[shared] -= other._agree[slots[shared]]
        first[shared] -= other._first[slots[shared]]
        second[shared] -= other._second[slots[shared]]
        similarity = np.zeros((self.n_annotators, self.n_annotators))
        similarity.flat[keys] = _kappa_values(overlap, agree, first, second, min_overlap)
        return similarity

    def kappa(self, min_overlap: int = 1) -> np.ndarray:
        """(A, A) similarity from the current counts (equals ``kappa_from_counts(self.counts, ...)``).

        The first call for a ``min_overlap`` computes all pairs; updates keep it current.
        Returns a new array each time.
        """
        similarity = self._similarity.get(min_overlap)
        if similarity is None:
            n = self._n_pairs
            similarity = np.zeros((self.n_annotators, self.n_annotators))
            similarity.flat[self._keys[:n]] = _kappa_values(
                self._overlap[:n], self._agree[:n], self._first[:n], self._second[:n], min_overlap
            )
            self._similarity[min_overlap] = similarity
        return similarity.copy()


def transport_matrices(counts: sp.spmatrix, n_annotators: int, n_classes: int, prior: float = 1.0) -> np.ndarray:
    """Pairwise label transport ``T[a, k, c, z] = P(a says z | k says c)`` from co-label counts.

    Each row adds ``prior`` pseudo-counts on the diagonal (and a tiny uniform floor), so pairs
    with little or no overlap fall back to "a says what k says" (the paper's soft label) and
    pairs with a long shared history follow it.

    Parameters
    ----------
    counts : (A*C, A*C) co-label counts (``colabel_counts``).
    n_annotators, n_classes : A, C.
    prior : pseudo-count on the diagonal (> 0).

    Returns
    -------
    (A, A, C, C) float32, rows (last axis) sum to 1.
    """
    if prior <= 0:
        raise ValueError(f"transport prior must be > 0, got {prior}")
    a, c = n_annotators, n_classes
    if (a * c) ** 2 > 1e8:
        raise ValueError(f"label transport keeps an (A*C)^2 = {(a * c) ** 2:.1e} array: too many annotators x classes")
    dense = np.asarray(sp.csr_matrix(counts).todense(), dtype=np.float64).reshape(a, c, a, c)  # [k, c, a, z]
    joint = dense.transpose(2, 0, 1, 3) + prior * np.eye(c) + 1e-3  # [a, k, c, z]
    return (joint / joint.sum(-1, keepdims=True)).astype(np.float32)
