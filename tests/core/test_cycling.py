import numpy as np
import torch

from simlabel.core.cycling import (
    ConfidenceCycler,
    ImputedLabels,
    apply_imputations,
    propose_imputations,
)
from simlabel.core.kappa import CoLabelCounts, kappa_matrix


def impute(imputed, observed, items, p_soft, has_soft, conf, threshold, epoch, counts=None):
    chosen = propose_imputations(imputed, observed, items, p_soft, has_soft, conf, threshold)
    return apply_imputations(imputed, observed, *chosen, epoch, counts)


def test_imputation_rules():
    observed = np.array([[0, -1, -1], [-1, 1, -1]])
    imputed = ImputedLabels.empty(2, 3)
    p_soft = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], [[0.1, 0.9], [0.5, 0.5], [0.99, 0.01]]])
    has_soft = np.array([[True, True, True], [True, True, False]])
    conf = np.array([[0.95, 0.7, 0.3], [0.8, 0.9, 0.99]])
    n = impute(imputed, observed, np.array([0, 1]), p_soft, has_soft, conf, 0.6, epoch=1)
    # (0,0) and (1,1) are observed; (0,2) under threshold; (1,2) has no soft label.
    assert n == 2
    np.testing.assert_array_equal(imputed.label, [[-1, 1, -1], [1, -1, -1]])
    np.testing.assert_array_equal(imputed.epoch, [[-1, 1, -1], [1, -1, -1]])
    # A later, less confident imputation does not replace; a more confident one does.
    p2 = p_soft.copy()
    p2[0, 1] = [0.9, 0.1]
    p2[1, 0] = [0.9, 0.1]
    conf2 = np.array([[0.0, 0.65, 0.0], [0.85, 0.0, 0.0]])
    n = impute(imputed, observed, np.array([0, 1]), p2, has_soft, conf2, 0.6, epoch=2)
    assert n == 1
    np.testing.assert_array_equal(imputed.label, [[-1, 1, -1], [0, -1, -1]])
    assert imputed.epoch[1, 0] == 2 and imputed.confidence[1, 0] == 0.85
    frame = imputed.to_frame(["i0", "i1"], ["a", "b", "c"])
    assert frame.to_dict("list") == {
        "item_id": ["i0", "i1"], "annotator_id": ["b", "a"], "label": [1, 0], "confidence": [0.7, 0.85], "epoch": [1, 2],
    }


def test_similarity_after_imputation_equals_recount():
    rng = np.random.default_rng(1)
    observed = rng.integers(0, 4, (120, 8))
    observed[rng.random(observed.shape) < 0.8] = -1
    imputed = ImputedLabels.empty(*observed.shape)
    counts = CoLabelCounts(observed, 4)
    for epoch in range(1, 4):
        items = np.sort(rng.choice(120, 40, replace=False))
        p_soft = rng.dirichlet(np.ones(4), size=(40, 8))
        conf = rng.random((40, 8))
        impute(imputed, observed, items, p_soft, np.ones((40, 8), bool), conf, 0.5, epoch, counts)
        merged = imputed.merged_with(observed)
        np.testing.assert_array_equal(merged[observed != -1], observed[observed != -1])
        np.testing.assert_allclose(counts.kappa(2), kappa_matrix(merged, 4, 2), atol=1e-12)


def test_large_imputation_waves_stay_exact():
    """A dense wave (nearly every entry imputed at once: ~480,000 label pairs, counted by sparse
    products), then a few changes in the filled-in rows: kappa equals a recount after each."""
    rng = np.random.default_rng(2)
    observed = rng.integers(0, 3, (300, 40))
    observed[rng.random(observed.shape) < 0.9] = -1
    imputed = ImputedLabels.empty(*observed.shape)
    counts = CoLabelCounts(observed, 3)
    items = np.arange(300)
    # Impute nearly everything at once (a dense wave), then a few changes (incremental path).
    for epoch, fraction in ((1, 1.0), (2, 0.01)):
        p_soft = rng.dirichlet(np.ones(3), size=(300, 40))
        conf = np.where(rng.random((300, 40)) < fraction, 0.9 + 0.01 * epoch, 0.0)
        impute(imputed, observed, items, p_soft, np.ones((300, 40), bool), conf, 0.5, epoch, counts)
        np.testing.assert_allclose(counts.kappa(2), kappa_matrix(imputed.merged_with(observed), 3, 2), atol=1e-12)


def anchored_reference(observed: np.ndarray, imputed: np.ndarray, n_classes: int, min_overlap: int) -> np.ndarray:
    """Kappa over co-labels with at least one observed label, by brute force with sklearn."""
    from sklearn.metrics import cohen_kappa_score

    merged = np.where(observed >= 0, observed, imputed)
    n_annotators = observed.shape[1]
    expected = np.zeros((n_annotators, n_annotators))
    for j in range(n_annotators):
        for k in range(n_annotators):
            both = (merged[:, j] >= 0) & (merged[:, k] >= 0) & ((observed[:, j] >= 0) | (observed[:, k] >= 0))
            if j == k or both.sum() < min_overlap:
                continue
            a, b = merged[both, j], merged[both, k]
            if len(set(a) | set(b)) == 1:
                expected[j, k] = 1.0
                continue
            expected[j, k] = max(0.0, cohen_kappa_score(a, b))
    return np.nan_to_num(expected)


def test_cycler_paper_refresh_is_kappa_of_observed_plus_imputed():
    rng = np.random.default_rng(3)
    observed = rng.integers(0, 3, (80, 6))
    observed[rng.random(observed.shape) < 0.7] = -1
    cycler = ConfidenceCycler(observed, 3, min_overlap=2, threshold=0.5, refresh="paper")
    p_soft = torch.tensor(rng.dirichlet(np.ones(3) * 0.3, size=(80, 6)))
    chosen = cycler.propose(np.arange(80), p_soft, torch.ones(80, 6, dtype=torch.bool))
    similarity = cycler.apply(chosen, epoch=1)
    assert cycler.n_imputed > 0
    np.testing.assert_allclose(similarity, kappa_matrix(cycler.imputed.merged_with(observed), 3, 2), atol=1e-12)


def test_cycler_anchored_refresh_ignores_imputed_pairs_and_survives_state_round_trip():
    rng = np.random.default_rng(4)
    observed = rng.integers(0, 3, (80, 6))
    observed[rng.random(observed.shape) < 0.7] = -1
    cycler = ConfidenceCycler(observed, 3, min_overlap=2, threshold=0.4, refresh="anchored")
    for epoch in (1, 2):
        p_soft = torch.tensor(rng.dirichlet(np.ones(3) * 0.3, size=(80, 6)))
        cycler.apply(cycler.propose(np.arange(80), p_soft, torch.ones(80, 6, dtype=torch.bool)), epoch)
    expected = anchored_reference(observed, cycler.imputed.label, 3, 2)
    np.testing.assert_allclose(cycler.similarity(), expected, atol=1e-9)
    # Anchored differs from the literal refresh once imputed labels co-occur.
    assert not np.allclose(expected, kappa_matrix(cycler.imputed.merged_with(observed), 3, 2))
    restored = ConfidenceCycler(observed, 3, min_overlap=2, threshold=0.4, refresh="anchored")
    restored.load_state(cycler.state())
    np.testing.assert_array_equal(restored.similarity(), cycler.similarity())
    np.testing.assert_array_equal(restored.imputed.label, cycler.imputed.label)


def test_cycling_warns_when_its_co_label_counts_could_outgrow_memory(caplog, monkeypatch):
    import simlabel.core.cycling as cycling

    observed = np.array([[0, 1, -1], [1, -1, 0]])
    monkeypatch.setattr(cycling, "COUNTS_WARNING", 35)  # (3 annotators x 2 classes)^2 = 36 class pairs
    with caplog.at_level("WARNING", logger="simlabel.core.cycling"):
        ConfidenceCycler(observed, 2, refresh="models", track_counts=False)  # keeps no counts: silent
        assert not caplog.records
        ConfidenceCycler(observed, 2)
    assert len(caplog.records) == 1 and "3 annotators x 2 classes" in caplog.text and "3.6e+01" in caplog.text
    monkeypatch.setattr(cycling, "COUNTS_WARNING", 36)
    caplog.clear()
    ConfidenceCycler(observed, 2)
    assert not caplog.records


def test_the_long_imputation_table_matches_dense_arrays_under_random_writes():
    """ImputedLabels keeps one row per imputed entry; a dense reference written alongside."""
    from simlabel.core.labels import LabelTable

    rng = np.random.default_rng(0)
    n, a = 40, 9
    observed = np.where(rng.random((n, a)) < 0.2, rng.integers(0, 3, (n, a)), -1)
    imputed = ImputedLabels.empty(n, a)
    label, conf, epoch = np.full((n, a), -1), np.zeros((n, a)), np.full((n, a), -1)
    for step in range(1, 8):
        flat = rng.choice(n * a, size=rng.integers(1, 60), replace=False)
        rows, cols = np.divmod(flat, a)
        values, confidences = rng.integers(0, 3, len(flat)), rng.random(len(flat))
        before = imputed.at(rows, cols)
        np.testing.assert_array_equal(before[0], label[rows, cols])
        np.testing.assert_array_equal(before[1], conf[rows, cols])
        imputed.write(rows, cols, values, confidences, step)
        label[rows, cols], conf[rows, cols], epoch[rows, cols] = values, confidences, step
        np.testing.assert_array_equal(imputed.label, label)
        np.testing.assert_array_equal(imputed.confidence, conf)
        np.testing.assert_array_equal(imputed.epoch, epoch)
        some = rng.choice(n, 7, replace=False)
        np.testing.assert_array_equal(imputed.rows(some)[0], label[some])
        np.testing.assert_array_equal(imputed.rows(some)[1], conf[some])
    assert len(imputed) == (label != -1).sum()
    # an entry given twice in one write keeps its last value, as array assignment does
    imputed.write(np.array([0, 5, 0]), np.array([1, 2, 1]), np.array([2, 1, 0]), np.array([0.1, 0.2, 0.3]), 9)
    label[[0, 5, 0], [1, 2, 1]], conf[[0, 5, 0], [1, 2, 1]] = [2, 1, 0], [0.1, 0.2, 0.3]
    np.testing.assert_array_equal(imputed.label, label)
    np.testing.assert_array_equal(imputed.confidence, conf)
    assert len(imputed) == (label != -1).sum()
    # merged with the observed labels, from the matrix or its table (only missing entries imputed)
    table = LabelTable.from_numpy(observed)
    reference = np.where(observed != -1, observed, label)
    np.testing.assert_array_equal(imputed.merged_with(observed), reference)
    np.testing.assert_array_equal(imputed.merged_with(table, np.array([3, 1])), reference[[3, 1]])
    fillable = ImputedLabels.empty(n, a)
    free = np.flatnonzero(observed.ravel() == -1)[:50]
    fillable.write(*np.divmod(free, a), np.ones(50, np.int64), np.ones(50), 1)
    np.testing.assert_array_equal(fillable.merged_table(table).to_numpy(), fillable.merged_with(observed))
