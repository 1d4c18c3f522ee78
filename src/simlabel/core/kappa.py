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
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from simlabel.core.labels import MISSING


def one_hot_labels(y: np.ndarray, n_classes: int) -> sp.csr_matrix:
    """Sparse one-hot encoding of a label matrix.

    Parameters
    ----------
    y : (N, A) int, ``MISSING`` = -1.
    n_classes : C.

    Returns
    -------
    (N, A*C) CSR matrix of 0/1 floats, column ``a*C + y[i, a]`` set for every observed entry.
    """
    y = np.asarray(y)
    if y.ndim != 2:
        raise ValueError(f"label matrix must be 2-D (N, A), got shape {y.shape}")
    n_items, n_annotators = y.shape
    rows, cols = np.nonzero(y != MISSING)
    labels = y[rows, cols]
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must be in [0, {n_classes}) or {MISSING} for missing")
    return sp.csr_matrix(
        (np.ones(rows.size), (rows, cols * n_classes + labels)),
        shape=(n_items, n_annotators * n_classes),
    )


def colabel_counts(y: np.ndarray, n_classes: int) -> sp.csr_matrix:
    """(A*C, A*C) co-label counts ``M = O.T @ O`` of a label matrix (see module docstring)."""
    onehot = one_hot_labels(y, n_classes)
    return (onehot.T @ onehot).tocsr()


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
    coo = sp.coo_matrix(counts)
    rows_annot, rows_class = np.divmod(coo.row, n_classes)
    cols_annot, cols_class = np.divmod(coo.col, n_classes)
    keep = (rows_annot != cols_annot) & (coo.data != 0)
    rows_annot, rows_class = rows_annot[keep], rows_class[keep]
    cols_annot, cols_class, values = cols_annot[keep], cols_class[keep], coo.data[keep]

    pair_keys, pair = np.unique(rows_annot * n_annotators + cols_annot, return_inverse=True)
    n_pairs = pair_keys.size
    overlap = np.bincount(pair, weights=values, minlength=n_pairs)
    agree = np.bincount(pair, weights=values * (rows_class == cols_class), minlength=n_pairs)
    first_marginal = np.bincount(pair * n_classes + rows_class, weights=values, minlength=n_pairs * n_classes)
    second_marginal = np.bincount(pair * n_classes + cols_class, weights=values, minlength=n_pairs * n_classes)
    expected = (first_marginal * second_marginal).reshape(n_pairs, n_classes).sum(1)

    with np.errstate(divide="ignore", invalid="ignore"):
        p_o = agree / overlap
        p_e = expected / overlap**2
        kappa = (p_o - p_e) / (1.0 - p_e)
    # p_e = 1: both annotators used one single class on the overlap (then p_o = 1 too).
    degenerate = np.isclose(p_e, 1.0)
    kappa[degenerate] = np.where(np.isclose(p_o[degenerate], 1.0), 1.0, 0.0)
    kappa[overlap < min_overlap] = 0.0
    kappa = np.clip(np.nan_to_num(kappa, nan=0.0), 0.0, 1.0)

    similarity = np.zeros((n_annotators, n_annotators))
    similarity.flat[pair_keys] = kappa
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


class CoLabelCounts:
    """Co-label counts kept up to date as labels change, so kappa stays exact and cheap.

    ``update(old_rows, new_rows)`` applies ``M += cooc(new_rows) - cooc(old_rows)``: the
    counts are bilinear in the one-hot rows, so only the changed items are touched and the
    result equals a recount of the whole matrix.
    """

    def __init__(self, y: np.ndarray, n_classes: int):
        y = np.asarray(y)
        self.n_annotators = y.shape[1]
        self.n_classes = n_classes
        self.counts = colabel_counts(y, n_classes)

    def update(self, old_rows: np.ndarray, new_rows: np.ndarray) -> None:
        """Replace the labels of some items: ``old_rows`` / ``new_rows`` are (m, A) label rows."""
        delta = colabel_counts(new_rows, self.n_classes) - colabel_counts(old_rows, self.n_classes)
        self.counts = (self.counts + delta).tocsr()
        self.counts.eliminate_zeros()

    def kappa(self, min_overlap: int = 1) -> np.ndarray:
        """(A, A) similarity from the current counts (see ``kappa_from_counts``)."""
        return kappa_from_counts(self.counts, self.n_annotators, self.n_classes, min_overlap)


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
