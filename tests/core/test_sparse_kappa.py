from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import cohen_kappa_score

import simlabel.core.sparse_kappa as sparse_kappa
from simlabel.core.kappa import kappa_matrix
from simlabel.core.sparse_kappa import (
    clipped_kappa,
    colabel_pair_statistics,
    pairwise_kappa,
    pairwise_kappa_and_overlap,
)

MISSING = -1
CIFAR10N_LABELS = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10n" / "labels.csv"


def long_table(y, rng=None):
    """(items, annotators, labels) of the observed entries of an (N, A) matrix, shuffled if rng."""
    items, annotators = np.nonzero(y != MISSING)
    labels = y[items, annotators]
    if rng is not None:
        order = rng.permutation(items.size)
        items, annotators, labels = items[order], annotators[order], labels[order]
    return items, annotators, labels


def random_labels(seed, n_items=120, n_annotators=9, n_classes=4, missing=0.7):
    """Annotators who agree with a hidden truth at different rates, with labels missing at random."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, n_classes, n_items)
    agree = rng.uniform(0.1, 0.95, n_annotators)
    noise = rng.integers(0, n_classes, (n_items, n_annotators))
    y = np.where(rng.random((n_items, n_annotators)) < agree, truth[:, None], noise)
    y[rng.random(y.shape) < missing] = MISSING
    return y


def sparse_from_matrix(y, n_classes, min_overlap, rng=None, **kwargs):
    items, annotators, labels = long_table(y, rng)
    return pairwise_kappa_and_overlap(items, annotators, labels, *y.shape, n_classes, min_overlap, **kwargs)


def expected_overlap(y, min_overlap):
    observed = (y != MISSING).astype(np.int64)
    overlap = observed.T @ observed
    np.fill_diagonal(overlap, 0)
    overlap[overlap < max(min_overlap, 1)] = 0
    return overlap


def stored(matrix, j, k):
    """Whether (j, k) is an entry of a CSR matrix (an explicit zero counts)."""
    return k in matrix.indices[matrix.indptr[j] : matrix.indptr[j + 1]]


def assert_well_formed(result, n_annotators):
    for matrix in result:
        assert isinstance(matrix, sp.csr_matrix)
        assert matrix.shape == (n_annotators, n_annotators)
        assert matrix.has_canonical_format
        assert (matrix != matrix.T).nnz == 0
        assert matrix.diagonal().tolist() == [0] * n_annotators
    # Same pattern: an entry for every pair with evidence, kappa 0 included.
    np.testing.assert_array_equal(result.kappa.indptr, result.overlap.indptr)
    np.testing.assert_array_equal(result.kappa.indices, result.overlap.indices)
    assert result.kappa.dtype == np.float64 and result.overlap.dtype == np.int64


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("min_overlap", [1, 2, 5])
def test_equals_sklearn_on_every_overlapping_pair(seed, min_overlap):
    y = random_labels(seed, missing=[0.3, 0.6, 0.85][seed % 3])
    result = sparse_from_matrix(y, 4, min_overlap, np.random.default_rng(seed))
    assert_well_formed(result, y.shape[1])
    kappa, overlap = result.kappa.toarray(), result.overlap.toarray()
    for j in range(y.shape[1]):
        for k in range(y.shape[1]):
            both = (y[:, j] != MISSING) & (y[:, k] != MISSING)
            if j == k or both.sum() < min_overlap:
                assert result.kappa[j, k] == 0 and overlap[j, k] == 0
                continue
            a, b = y[both, j], y[both, k]
            reference = 1.0 if np.unique(np.concatenate([a, b])).size == 1 else max(cohen_kappa_score(a, b), 0.0)
            assert overlap[j, k] == both.sum()
            assert abs(kappa[j, k] - reference) <= 1e-12


@pytest.mark.parametrize("seed", range(8))
def test_equals_dense_kappa_matrix_bit_for_bit(seed):
    rng = np.random.default_rng(100 + seed)
    n_items, n_annotators, n_classes = int(rng.integers(1, 300)), int(rng.integers(1, 40)), int(rng.integers(1, 12))
    y = random_labels(seed, n_items, n_annotators, n_classes, missing=rng.uniform(0, 0.98))
    for min_overlap in (0, 1, 2, 4):
        result = sparse_from_matrix(y, n_classes, min_overlap, rng)
        assert_well_formed(result, n_annotators)
        np.testing.assert_array_equal(result.kappa.toarray(), kappa_matrix(y, n_classes, max(min_overlap, 1)))
        np.testing.assert_array_equal(result.overlap.toarray(), expected_overlap(y, min_overlap))


@pytest.mark.parametrize("max_chunk_pairs", [1, 7, 50])
def test_chunking_and_class_table_modes_do_not_change_the_result(monkeypatch, max_chunk_pairs):
    y = random_labels(3, n_items=200, n_annotators=25, n_classes=5, missing=0.8)
    reference = sparse_from_matrix(y, 5, 1)
    for sparse_table in (False, True):
        if sparse_table:  # the (runs, C) table only for runs of >= 2 co-labels
            monkeypatch.setattr(sparse_kappa, "_TABLE_CELLS_PER_PAIR", 0)
            monkeypatch.setattr(sparse_kappa, "_TABLE_CELLS_FLOOR", 0)
        for min_overlap in (1, 2, 3):
            result = sparse_from_matrix(y, 5, min_overlap, np.random.default_rng(1), max_chunk_pairs=max_chunk_pairs)
            np.testing.assert_array_equal(result.kappa.toarray(), kappa_matrix(y, 5, min_overlap))
            np.testing.assert_array_equal(result.overlap.toarray(), expected_overlap(y, min_overlap))
        np.testing.assert_array_equal(
            sparse_from_matrix(y, 5, 1, max_chunk_pairs=max_chunk_pairs).kappa.toarray(), reference.kappa.toarray()
        )


def test_chunks_hold_whole_annotators():
    # One very active annotator: its co-labels exceed max_chunk_pairs alone.
    y = random_labels(7, n_items=150, n_annotators=12, missing=0.6)
    y[:, 4] = np.random.default_rng(0).integers(0, 4, 150)
    items, annotators, labels = long_table(y)
    stats = colabel_pair_statistics(items, annotators, labels, *y.shape, 4, 1, max_chunk_pairs=10)
    keys = stats.first * y.shape[1] + stats.second
    assert (stats.first < stats.second).all() and (np.diff(keys) > 0).all()
    np.testing.assert_array_equal(clipped_kappa(stats.overlap, stats.agree, stats.expected), kappa_matrix(y, 4)[stats.first, stats.second])


def test_pair_statistics_by_hand():
    # Overlap of 4 items, agree on 3; first annotator's classes (2, 2), second's (1, 3):
    # expected = 2 * 1 + 2 * 3 = 8, p_e = 8 / 16 = 0.5, p_o = 0.75, kappa = 0.5.
    y = np.array([[0, 0], [0, 1], [1, 1], [1, 1], [0, MISSING]])
    stats = colabel_pair_statistics(*long_table(y), 5, 2, 2)
    assert [a.tolist() for a in stats] == [[0], [1], [4], [3], [8]]
    kappa = pairwise_kappa(*long_table(y), 5, 2, 2)
    assert kappa[0, 1] == kappa[1, 0] == pytest.approx(0.5)


def test_edge_cases():
    y = np.array(
        [
            # a0, a1: always the same single class (p_e = 1, p_o = 1 -> 1)
            # a2: always disagrees with a3 (negative kappa -> 0, stored: the pair has evidence)
            # a4: labels nothing
            # a5: shares one item with a0 .. a3 (below min_overlap 2 -> no entry)
            [2, 2, 0, 1, MISSING, 2],
            [2, 2, 1, 0, MISSING, MISSING],
            [2, 2, 0, 1, MISSING, MISSING],
            [2, 2, 1, 0, MISSING, MISSING],
        ]
    )
    result = sparse_from_matrix(y, 3, 2)
    assert_well_formed(result, 6)
    kappa = result.kappa
    assert kappa[0, 1] == 1.0
    assert cohen_kappa_score(y[:, 2], y[:, 3]) < 0 and kappa[2, 3] == 0.0
    assert result.overlap[2, 3] == 4 and stored(kappa, 2, 3) and stored(kappa, 3, 2)
    assert kappa[4].nnz == 0 and result.overlap[:, 4].nnz == 0
    assert result.overlap[0, 5] == 0 and result.overlap[5].nnz == 0  # one shared item < min_overlap
    np.testing.assert_array_equal(kappa.toarray(), kappa_matrix(y, 3, 2))
    # One co-labelled item with min_overlap 1: same label -> p_e = p_o = 1 -> 1; different -> 0.
    one = sparse_from_matrix(y, 3, 1)
    assert one.kappa[0, 5] == 1.0 and one.overlap[0, 5] == 1
    assert one.kappa[2, 5] == 0.0 and one.overlap[2, 5] == 1
    np.testing.assert_array_equal(one.kappa.toarray(), kappa_matrix(y, 3, 1))
    # p_e = 1 with p_o < 1 cannot happen (p_e = 1 means both used one single, equal class).


def test_no_overlap_and_empty_tables():
    # Every item labelled once: no pair co-labels anything.
    y = np.full((5, 4), MISSING)
    y[np.arange(5), np.arange(5) % 4] = 1
    for result in (sparse_from_matrix(y, 2, 1), sparse_from_matrix(np.full((3, 4), MISSING), 2, 1)):
        assert_well_formed(result, 4)
        assert result.kappa.nnz == 0 and result.overlap.nnz == 0
    empty = np.zeros(0, np.int64)
    assert pairwise_kappa(empty, empty, empty, 0, 3, 2).shape == (3, 3)


def test_agrees_with_and_without_sorting_and_with_any_int_dtype():
    y = random_labels(11, n_items=80, n_annotators=10, n_classes=3, missing=0.5)
    sorted_table = long_table(y)
    reference = pairwise_kappa(*sorted_table, *y.shape, 3, 1)
    shuffled = long_table(y, np.random.default_rng(0))
    small = [a.astype(np.int16) for a in shuffled]
    for table in (shuffled, small):
        result = pairwise_kappa(*table, *y.shape, 3, 1)
        np.testing.assert_array_equal(result.toarray(), reference.toarray())
        np.testing.assert_array_equal(result.indices, reference.indices)


def test_huge_index_ranges_fall_back_to_a_permutation_sort():
    # n_items * n_annotators * n_classes too wide to pack into one int64 for the first sort.
    y = random_labels(12, n_items=60, n_annotators=8, n_classes=3, missing=0.4)
    items, annotators, labels = long_table(y, np.random.default_rng(2))
    result = pairwise_kappa(items * 2**30, annotators, labels, 2**45, 2**20, 3, 1)
    assert result.shape == (2**20, 2**20)
    np.testing.assert_array_equal(result[:8, :8].toarray(), kappa_matrix(y, 3, 1))
    assert result.nnz == np.count_nonzero(expected_overlap(y, 1))


def test_bad_tables_are_rejected():
    items, annotators, labels = np.array([0, 0, 1]), np.array([0, 1, 0]), np.array([1, 0, 1])
    with pytest.raises(ValueError, match="more than once"):
        pairwise_kappa(np.array([0, 1, 0]), np.array([0, 0, 0]), labels, 2, 2, 2)
    with pytest.raises(ValueError, match="labels must be in"):
        pairwise_kappa(items, annotators, labels + 1, 2, 2, 2)
    with pytest.raises(ValueError, match="annotators must be in"):
        pairwise_kappa(items, annotators - 1, labels, 2, 2, 2)
    with pytest.raises(ValueError, match="items must be in"):
        pairwise_kappa(items, annotators, labels, 1, 2, 2)
    with pytest.raises(ValueError, match="one length"):
        pairwise_kappa(items, annotators[:2], labels, 2, 2, 2)
    with pytest.raises(ValueError, match="integer"):
        pairwise_kappa(items.astype(float), annotators, labels, 2, 2, 2)
    with pytest.raises(ValueError, match="n_classes >= 1"):
        pairwise_kappa(items[:0], annotators[:0], labels[:0], 2, 2, 0)


@pytest.mark.skipif(not CIFAR10N_LABELS.exists(), reason="CIFAR-10N labels not present in ../shared/data")
def test_cifar10n_equals_dense_kappa_matrix():
    """All 150,000 CIFAR-10N labels (50,000 items, 747 annotators): runs in about a second."""
    import pandas as pd

    table = pd.read_csv(CIFAR10N_LABELS)
    items, _ = pd.factorize(table["item_id"], sort=True)
    annotators, annotator_ids = pd.factorize(table["annotator_id"], sort=True)
    labels = table["label"].to_numpy()
    n_items, n_annotators = int(items.max()) + 1, annotator_ids.size
    y = np.full((n_items, n_annotators), MISSING, np.int8)
    y[items, annotators] = labels
    observed = sp.csr_matrix((np.ones(items.size, np.int64), (items, annotators)), shape=y.shape)
    overlap = (observed.T @ observed).toarray()
    np.fill_diagonal(overlap, 0)
    for min_overlap in (1, 2):
        result = pairwise_kappa_and_overlap(items, annotators, labels, n_items, n_annotators, 10, min_overlap)
        assert_well_formed(result, n_annotators)
        np.testing.assert_array_equal(result.kappa.toarray(), kappa_matrix(y, 10, min_overlap))
        np.testing.assert_array_equal(result.overlap.toarray(), np.where(overlap >= min_overlap, overlap, 0))
