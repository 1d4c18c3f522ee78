import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from simlabel.core.kappa import CoLabelCounts, kappa_matrix

MISSING = -1


def sklearn_kappa_matrix(y, min_overlap=1):
    """The reference: sklearn's kappa looped over every pair's overlap, SPEC section 1 edge rules."""
    n_annotators = y.shape[1]
    out = np.zeros((n_annotators, n_annotators))
    for j in range(n_annotators):
        for k in range(n_annotators):
            both = (y[:, j] != MISSING) & (y[:, k] != MISSING)
            if j == k or both.sum() < min_overlap or both.sum() == 0:
                continue
            a, b = y[both, j], y[both, k]
            if len(np.unique(np.concatenate([a, b]))) == 1:
                out[j, k] = 1.0  # p_e = 1 and p_o = 1
                continue
            out[j, k] = max(cohen_kappa_score(a, b), 0.0)
    return out


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("missing", [0.5, 0.8, 0.95])
def test_kappa_matches_sklearn_on_random_sparse_matrices(seed, missing):
    rng = np.random.default_rng(seed)
    n_items, n_annotators, n_classes = 200, 9, 4
    truth = rng.integers(0, n_classes, n_items)
    # Annotators agree with the truth at different rates, so kappas spread over [0, 1].
    agree = rng.uniform(0.2, 0.95, n_annotators)
    y = np.where(rng.random((n_items, n_annotators)) < agree, truth[:, None], rng.integers(0, n_classes, (n_items, n_annotators)))
    y[rng.random(y.shape) < missing] = MISSING
    for min_overlap in (1, 3):
        np.testing.assert_allclose(kappa_matrix(y, n_classes, min_overlap), sklearn_kappa_matrix(y, min_overlap), atol=1e-12)


def test_hand_computed_pair():
    # Overlap of 4 items: agree on 3. q_j = (2/4, 2/4), q_k = (1/4, 3/4): p_e = 0.5, p_o = 0.75.
    y = np.array([[0, 0], [0, 1], [1, 1], [1, 1], [0, MISSING]])
    kappa = kappa_matrix(y, 2)
    assert kappa[0, 1] == pytest.approx((0.75 - 0.5) / (1 - 0.5))
    assert kappa[1, 0] == kappa[0, 1]


def test_edge_cases():
    y = np.array(
        [
            # a0, a1: always the same single class (p_e = 1, p_o = 1 -> 1)
            # a2: always disagrees with a3 (negative kappa -> 0)
            # a4: labels nothing (empty annotator -> 0)
            # a5: shares one item with a0 only (tiny overlap -> 0 with min_overlap 2)
            [2, 2, 0, 1, MISSING, 2],
            [2, 2, 1, 0, MISSING, MISSING],
            [2, 2, 0, 1, MISSING, MISSING],
            [2, 2, 1, 0, MISSING, MISSING],
        ]
    )
    kappa = kappa_matrix(y, 3, min_overlap=2)
    assert kappa[0, 1] == 1.0
    assert cohen_kappa_score(y[:, 2], y[:, 3]) < 0 and kappa[2, 3] == 0.0
    assert (kappa[4] == 0).all() and (kappa[:, 4] == 0).all()
    assert kappa[0, 5] == 0.0
    assert kappa_matrix(y, 3, min_overlap=1)[0, 5] == 1.0  # one shared item, same label, p_e = 1
    assert (np.diag(kappa) == 0).all()
    np.testing.assert_array_equal(kappa, kappa.T)


def test_incremental_counts_equal_recount():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, (300, 12))
    y[rng.random(y.shape) < 0.85] = MISSING
    counts = CoLabelCounts(y, 5)
    current = y.copy()
    for _ in range(10):
        items = rng.choice(len(y), 7, replace=False)
        new_rows = current[items].copy()
        fill = (new_rows == MISSING) & (rng.random(new_rows.shape) < 0.3)
        new_rows[fill] = rng.integers(0, 5, fill.sum())
        counts.update(current[items], new_rows)
        current[items] = new_rows
        np.testing.assert_allclose(counts.kappa(2), kappa_matrix(current, 5, 2), atol=1e-12)
        assert (counts.counts != CoLabelCounts(current, 5).counts).nnz == 0


def test_rejects_bad_labels():
    with pytest.raises(ValueError, match="labels must be in"):
        kappa_matrix(np.array([[0, 3]]), 3)
    with pytest.raises(ValueError, match="2-D"):
        kappa_matrix(np.array([0, 1]), 3)


@pytest.mark.parametrize("pairs_max", [4096, 0], ids=["enumerated-pairs", "sparse-products"])
def test_incremental_similarity_equals_full_recompute_exactly(pairs_max, monkeypatch):
    """CoLabelCounts recomputes only the pairs an update touches: bit-identical to a recount,
    through label additions, changes and removals, new pairs and pairs losing their overlap;
    both ways of counting the changes (small updates enumerate label pairs, big ones multiply)."""
    import simlabel.core.kappa as kappa

    monkeypatch.setattr(kappa, "ENUMERATED_PAIRS_MAX", pairs_max)
    rng = np.random.default_rng(3)
    n_items, n_annotators, n_classes = 150, 10, 3
    y = rng.integers(0, n_classes, (n_items, n_annotators))
    y[rng.random(y.shape) < 0.8] = MISSING
    y[:, 9] = MISSING  # an annotator who labelled nothing yet: all its pairs are new
    y[:5, 9] = 1  # ... then a single-class one (p_e = 1 edge cases)
    counts = CoLabelCounts(y, n_classes)
    current = y.copy()
    before = counts.kappa(1)
    counts.kappa(3)  # two similarities kept up to date side by side
    for step in range(60):
        items = rng.choice(n_items, rng.integers(1, 4), replace=False)
        new_rows = current[items].copy()
        kind = step % 3
        if kind == 0:  # impute missing entries
            fill = (new_rows == MISSING) & (rng.random(new_rows.shape) < 0.2)
            new_rows[fill] = rng.integers(0, n_classes, fill.sum())
        elif kind == 1:  # change observed labels
            change = (new_rows != MISSING) & (rng.random(new_rows.shape) < 0.5)
            new_rows[change] = rng.integers(0, n_classes, change.sum())
        else:  # remove labels (overlaps shrink, some to zero)
            new_rows[rng.random(new_rows.shape) < 0.5] = MISSING
        counts.update(current[items], new_rows)
        current[items] = new_rows
        for min_overlap in (1, 3):
            np.testing.assert_array_equal(counts.kappa(min_overlap), kappa_matrix(current, n_classes, min_overlap))
    np.testing.assert_array_equal(counts.kappa(2), kappa_matrix(current, n_classes, 2))  # first asked late
    assert (counts.counts != CoLabelCounts(current, n_classes).counts).nnz == 0
    counts.update(current[:2], current[:2])  # no change
    np.testing.assert_array_equal(counts.kappa(1), kappa_matrix(current, n_classes, 1))
    # kappa() returns a new array: changing it, or later updates, leave earlier results alone.
    result = counts.kappa(1)
    result[:] = -1
    np.testing.assert_array_equal(counts.kappa(1), kappa_matrix(current, n_classes, 1))
    assert not np.array_equal(before, counts.kappa(1))
    np.testing.assert_array_equal(before, kappa_matrix(y, n_classes, 1))


def test_kappa_matrix_independent_of_memory_layout():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 4, (80, 7))
    y[rng.random(y.shape) < 0.6] = MISSING
    expected = sklearn_kappa_matrix(y)
    strided = np.repeat(y, 2, axis=1)[:, ::2]  # neither C- nor F-contiguous
    assert np.array_equal(strided, y) and not (strided.flags.c_contiguous or strided.flags.f_contiguous)
    for layout in (np.ascontiguousarray(y), np.asfortranarray(y), strided):
        np.testing.assert_allclose(kappa_matrix(layout, 4), expected, atol=1e-12)
        np.testing.assert_array_equal(kappa_matrix(layout, 4), kappa_matrix(y, 4))


def test_complete_kappa_equals_the_general_path_and_sklearn():
    from simlabel.core.kappa import complete_kappa

    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, (300, 7))
    y[:, 1] = y[:, 0]  # identical: kappa 1
    y[:, 2] = 2  # one class only: p_e = 1 with a partner that also says 2 -> 1, else 0
    y[:, 3] = 2
    y[:, 4] = (y[:, 0] + 1) % 4  # never agrees: negative kappa clipped to 0
    expected = kappa_matrix(y, 4, 1)
    np.testing.assert_array_equal(complete_kappa(y, 4), expected)
    assert complete_kappa(y, 4)[0, 5] == pytest.approx(max(cohen_kappa_score(y[:, 0], y[:, 5]), 0.0), abs=1e-12)
    assert complete_kappa(y, 4)[2, 3] == 1.0 and complete_kappa(y, 4)[0, 4] == 0.0
    with pytest.raises(ValueError, match="without missing entries"):
        complete_kappa(np.where(y == 0, -1, y), 4)
