import itertools

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from simlabel.core.kappa import kappa_matrix
from simlabel.core.similarity import (
    SIMILARITY_ESTIMATORS,
    ds_implied,
    estimate_similarity,
    expected_kappa,
    kappa,
    shrunk_kappa,
)

MISSING = -1


def _draw_labels(rng, truth, confusions):
    """(N, A) labels, annotator a's label of item i drawn from confusions[a, truth[i]]."""
    cdf = np.cumsum(confusions[:, truth], axis=-1)  # (A, N, C)
    u = rng.random((confusions.shape[0], truth.size, 1))
    return (u > cdf[..., :-1]).sum(-1).T.astype(np.int64)


def _confusions(rng, n_annotators, n_classes, accuracy):
    """Random row-stochastic (A, C, C): accuracy on the diagonal, the rest spread at random."""
    off = rng.dirichlet(np.ones(n_classes - 1), size=(n_annotators, n_classes))
    conf = np.zeros((n_annotators, n_classes, n_classes))
    for c in range(n_classes):
        conf[:, c, np.arange(n_classes) != c] = off[:, c] * (1 - np.asarray(accuracy))[:, None]
        conf[:, c, c] = accuracy
    return conf


# ------------------------------------------------------------------ expected kappa
def test_expected_kappa_matches_a_large_sample():
    rng = np.random.default_rng(0)
    n_classes, n_items = 4, 200_000
    prior = np.array([0.4, 0.3, 0.2, 0.1])
    conf = _confusions(rng, 4, n_classes, accuracy=[0.9, 0.7, 0.5, 0.3])
    conf = np.concatenate(
        [conf, conf[:1, :, [1, 0, 3, 2]]]
    )  # a fifth: annotator 0 with classes swapped
    truth = rng.choice(n_classes, n_items, p=prior)
    y = _draw_labels(rng, truth, conf)
    expected = expected_kappa(conf, prior, clip=False)
    for j, k in itertools.combinations(range(conf.shape[0]), 2):
        assert abs(expected[j, k] - cohen_kappa_score(y[:, j], y[:, k])) < 0.01, (j, k)
    assert expected[0, 4] < -0.1  # the swapped annotator disagrees systematically...
    clipped = expected_kappa(conf, prior)
    assert clipped[0, 4] == 0.0  # ...which the project's kappa clips to 0
    np.testing.assert_allclose(clipped, np.clip(expected, 0, 1))
    np.testing.assert_allclose(expected, expected.T)


def test_expected_kappa_two_classes_by_hand():
    conf = np.array([[[0.8, 0.2], [0.2, 0.8]], [[0.9, 0.1], [0.3, 0.7]]])
    # p_o = .5 (.8*.9 + .2*.1) + .5 (.2*.3 + .8*.7) = .68; q_0 = (.5, .5), q_1 = (.6, .4), p_e = .5
    # kappa_01 = .18 / .5; kappa_11 = (.70 - .52) / .48 (two independent labels of annotator 1)
    np.testing.assert_allclose(
        expected_kappa(conf, np.array([0.5, 0.5])), [[0.36, 0.36], [0.36, 0.375]], atol=1e-12
    )
    # Unequal prior: p_o = .25*.74 + .75*.62 = .65; q_0 = (.35, .65), q_1 = (.45, .55), p_e = .515
    np.testing.assert_allclose(
        expected_kappa(conf, np.array([0.25, 0.75]))[0, 1], 0.135 / 0.485, atol=1e-12
    )


def test_expected_kappa_degenerate_and_bad_shapes():
    always_zero = np.array([[1.0, 0.0], [1.0, 0.0]])
    always_one = always_zero[:, ::-1]
    conf = np.stack([always_zero, always_zero, always_one])
    out = expected_kappa(conf, np.array([0.5, 0.5]))
    assert out[0, 1] == 1.0  # p_e = 1 and p_o = 1
    assert out[0, 2] == 0.0  # p_e = 0, p_o = 0
    with pytest.raises(ValueError):
        expected_kappa(conf, np.array([1 / 3] * 3))
    with pytest.raises(ValueError):
        expected_kappa(conf[0], np.array([0.5, 0.5]))


# -------------------------------------------------------------------- estimators
def _sparse_labels(seed, n_items=300, n_annotators=8, n_classes=4, missing=0.8):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, n_classes, n_items)
    conf = _confusions(rng, n_annotators, n_classes, rng.uniform(0.3, 0.95, n_annotators))
    y = _draw_labels(rng, truth, conf)
    y[rng.random(y.shape) < missing] = MISSING
    return y


@pytest.mark.parametrize("name", sorted(SIMILARITY_ESTIMATORS))
def test_every_estimator_has_the_common_signature(name):
    y = _sparse_labels(1)
    s = np.asarray(SIMILARITY_ESTIMATORS[name](y, 4, min_overlap=2))
    assert s.shape == (8, 8) and s.dtype == np.float64
    np.testing.assert_allclose(s, s.T, atol=1e-12)
    assert (s >= 0).all() and (s <= 1).all()
    assert (np.diag(s) == 0).all()  # as kappa_matrix
    np.testing.assert_array_equal(estimate_similarity(y, 4, name, min_overlap=2), s)


def test_kappa_estimator_is_the_papers_kappa():
    y = _sparse_labels(2)
    np.testing.assert_array_equal(kappa(y, 4, min_overlap=3), kappa_matrix(y, 4, 3))
    # The estimator goes through the long table (sparse_kappa); same values on a Fortran-ordered
    # matrix (as pandas gives it), with min_overlap 0 or 1, and on the hand-computed TOY.
    wide = np.asfortranarray(_sparse_labels(3, n_items=500, n_annotators=30, missing=0.9))
    for min_overlap in (0, 1, 2):
        np.testing.assert_array_equal(kappa(wide, 4, min_overlap=min_overlap), kappa_matrix(wide, 4, min_overlap))
    np.testing.assert_allclose(kappa(TOY, 2), [[0, 0.5, 1], [0.5, 0, 0], [1, 0, 0]], atol=1e-12)
    with pytest.raises(ValueError, match="estimator"):
        estimate_similarity(y, 4, "nope")


# Annotators 0 and 1 co-label 4 items: p_o = 3/4, q = (1/2, 1/2) and (3/4, 1/4), p_e = 1/2 -> kappa 1/2.
# Annotators 0 and 2 co-label 2 items and agree: p_o = 1, p_e = 1/2 -> kappa 1. 1 and 2 never meet.
TOY = np.array([[0, 0, -1], [0, 0, -1], [1, 1, -1], [1, 0, -1], [0, -1, 0], [1, -1, 1]])


def test_shrunk_kappa_by_hand_global_prior():
    mu = (4 * 0.5 + 2 * 1.0) / 6  # overlap-weighted mean kappa = 2/3
    expected = np.array(
        [
            [0, (4 * 0.5 + 2 * mu) / 6, (2 * 1.0 + 2 * mu) / 4],
            [(4 * 0.5 + 2 * mu) / 6, 0, mu],
            [(2 * 1.0 + 2 * mu) / 4, mu, 0],
        ]
    )
    np.testing.assert_allclose(shrunk_kappa(TOY, 2, tau=2, prior="global"), expected, atol=1e-12)
    np.testing.assert_allclose(expected[0, 1:], [5 / 9, 5 / 6])


def test_shrunk_kappa_by_hand_annotator_prior():
    # m_j = (sum_k n_jk kappa_jk + tau mu) / (sum_k n_jk + tau): m_0 = 2/3, m_1 = 5/9, m_2 = 5/6.
    m = np.array([2 / 3, 5 / 9, 5 / 6])
    expected = np.array(
        [
            [0, (2 + 2 * (m[0] + m[1]) / 2) / 6, (2 + 2 * (m[0] + m[2]) / 2) / 4],
            [0, 0, (m[1] + m[2]) / 2],
            [0, 0, 0],
        ]
    )
    expected += expected.T
    s = np.asarray(shrunk_kappa(TOY, 2, tau=2, prior="annotator"))
    np.testing.assert_allclose(s, expected, atol=1e-12)
    np.testing.assert_allclose(s[0, 1:], [29 / 54, 7 / 8])
    np.testing.assert_allclose(s[1, 2], 25 / 36)


def test_shrunk_kappa_min_overlap_turns_small_overlaps_into_no_evidence():
    # With min_overlap 3 only pair (0, 1) is evidence: mu = 1/2 and (0, 2) gets the prior.
    s = np.asarray(shrunk_kappa(TOY, 2, tau=2, min_overlap=3, prior="global"))
    np.testing.assert_allclose(s[0, 1], 0.5)
    np.testing.assert_allclose([s[0, 2], s[1, 2]], [0.5, 0.5])


@pytest.mark.parametrize("prior", ["global", "annotator"])
@pytest.mark.parametrize("seed", range(3))
def test_shrunk_kappa_tends_to_kappa_as_tau_vanishes(prior, seed):
    y = _sparse_labels(seed, missing=0.92)
    observed = (y != MISSING).astype(int)
    overlap = observed.T @ observed
    evidence = (overlap >= 2) & ~np.eye(8, dtype=bool)
    assert evidence.any() and (~evidence & ~np.eye(8, dtype=bool)).any()
    s = np.asarray(shrunk_kappa(y, 4, tau=1e-12, min_overlap=2, prior=prior))
    np.testing.assert_allclose(s[evidence], kappa_matrix(y, 4, 2)[evidence], atol=1e-9)


def test_pairs_without_overlap_get_the_prior():
    """Two blocks of annotators that never co-label: cross-block pairs get mu, computed with sklearn."""
    rng = np.random.default_rng(5)
    y = _sparse_labels(3, n_items=400, missing=0.6)
    y[:200, 4:] = MISSING
    y[200:, :4] = MISSING
    weights, values = [], []
    for j, k in itertools.combinations(range(8), 2):
        both = (y[:, j] != MISSING) & (y[:, k] != MISSING)
        if both.sum() >= 2:
            weights.append(both.sum())
            values.append(cohen_kappa_score(y[both, j], y[both, k]))  # unclipped
    mu = np.average(values, weights=weights)
    s = np.asarray(shrunk_kappa(y, 4, tau=float(rng.uniform(1, 20)), min_overlap=2, prior="global"))
    np.testing.assert_allclose(s[:4, 4:], mu, atol=1e-12)
    assert not np.allclose(s[:4, :4][~np.eye(4, dtype=bool)], mu)


def test_auto_tau_shrinks_identical_annotators_and_keeps_well_measured_differences():
    rng = np.random.default_rng(7)
    n_classes = 4
    prior = np.full(n_classes, 0.25)
    # Identical annotators, few co-labels per pair: the spread of kappa is all noise.
    same = np.repeat(_confusions(rng, 1, n_classes, [0.7]), 12, axis=0)
    truth = rng.integers(0, n_classes, 300)
    y = _draw_labels(rng, truth, same)
    y[rng.random(y.shape) < 0.85] = MISSING
    target = expected_kappa(same, prior)[0, 1]
    off = ~np.eye(12, dtype=bool)
    raw, auto = kappa_matrix(y, n_classes, 2), np.asarray(shrunk_kappa(y, n_classes, tau="auto", min_overlap=2))
    has = (raw > 0) & off
    assert auto[off].std() < 0.3 * raw[has].std()
    assert np.abs(auto[off] - target).mean() < 0.5 * np.abs(raw[has] - target).mean()
    # Very different annotators, thousands of co-labels per pair: auto keeps each pair's kappa.
    conf = _confusions(rng, 6, n_classes, [0.95, 0.9, 0.7, 0.5, 0.4, 0.3])
    truth = rng.integers(0, n_classes, 20_000)
    y = _draw_labels(rng, truth, conf)
    y[rng.random(y.shape) < 0.5] = MISSING
    np.testing.assert_allclose(
        shrunk_kappa(y, n_classes, tau="auto"), kappa_matrix(y, n_classes), atol=0.01
    )


def test_shrunk_kappa_rejects_bad_options():
    for options in ({"tau": -1.0}, {"tau": "big"}, {"prior": "median"}):
        with pytest.raises(ValueError):
            shrunk_kappa(TOY, 2, **options)


def test_ds_implied_recovers_expected_kappa_for_pairs_that_never_co_label():
    rng = np.random.default_rng(11)
    n_items, n_classes = 20_000, 4
    prior = np.array([0.35, 0.3, 0.2, 0.15])
    accurate = _confusions(rng, 3, n_classes, [0.9, 0.85, 0.8])
    swapping = np.eye(n_classes)[[1, 0, 3, 2]] * 0.75 + 0.25 / n_classes  # a group of its own
    conf = np.concatenate(
        [accurate, np.stack([swapping] * 2), _confusions(rng, 1, n_classes, [0.5])]
    )
    truth = rng.choice(n_classes, n_items, p=prior)
    y = _draw_labels(rng, truth, conf)
    y[rng.random(y.shape) > 0.3] = MISSING  # each annotator labels ~30 %
    disjoint = [
        (0, 1),
        (3, 4),
        (2, 5),
    ]  # within the accurate group, within the swappers, and across
    for j, k in disjoint:  # these pairs never co-label: one of the two loses the item
        both = np.flatnonzero((y[:, j] != MISSING) & (y[:, k] != MISSING))
        drop = rng.random(both.size) < 0.5
        y[both[drop], j] = MISSING
        y[both[~drop], k] = MISSING
    truth_similarity = expected_kappa(conf, prior)
    np.fill_diagonal(truth_similarity, 0.0)
    estimate = np.asarray(ds_implied(y, n_classes))
    np.testing.assert_allclose(estimate, truth_similarity, atol=0.05)
    plain = kappa_matrix(y, n_classes)
    for j, k in disjoint:
        assert plain[j, k] == 0.0 and truth_similarity[j, k] > 0.05, (j, k)
    assert truth_similarity[3, 4] > 0.3 and truth_similarity[0, 3] < 0.05  # the groups are there


def test_model_informed_kappa_shrinks_observed_kappa_towards_the_models():
    from sklearn.metrics import cohen_kappa_score

    from simlabel.core.similarity import model_informed_kappa

    rng = np.random.default_rng(0)
    predicted = rng.integers(0, 3, (200, 3))
    predicted[:, 1] = np.where(rng.random(200) < 0.8, predicted[:, 0], predicted[:, 1])  # models 0, 1 agree
    y = np.full((6, 3), -1)
    y[:, 0] = [0, 1, 2, 0, 1, 2]
    y[:, 1] = [0, 1, 2, 0, 1, 1]  # 6 co-labelled items with annotator 0; annotator 2 labels nothing
    model_kappa = cohen_kappa_score(predicted[:, 0], predicted[:, 1])
    observed = cohen_kappa_score(y[:, 0], y[:, 1])
    for tau in (0.0, 6.0, 1e9):
        s = model_informed_kappa(y, predicted, 3, min_overlap=2, tau=tau)
        expected = (6 * observed + tau * model_kappa) / (6 + tau)
        assert s[0, 1] == pytest.approx(expected, abs=1e-9) and s[1, 0] == s[0, 1]
        # No overlap at all: the models' kappa, whatever tau (clipped at 0).
        assert s[0, 2] == pytest.approx(max(0.0, cohen_kappa_score(predicted[:, 0], predicted[:, 2])), abs=1e-9)
    assert np.diag(model_informed_kappa(y, predicted, 3)).tolist() == [0.0, 0.0, 0.0]


def test_shrunk_ds_kappa_gives_the_ds_implied_value_without_overlap_and_kappa_with_much():
    """prior="dawid_skene": a pair with no overlap gets exactly ds_implied's value; as tau -> 0
    a pair with evidence gets its own kappa (sklearn)."""
    y = _sparse_labels(9, n_items=400, missing=0.6)
    y[:200, 4:] = MISSING
    y[200:, :4] = MISSING  # annotators 0-3 never co-label with 4-7
    implied = np.asarray(ds_implied(y, 4))
    s = np.asarray(SIMILARITY_ESTIMATORS["shrunk_ds_kappa"](y, 4, min_overlap=2))
    np.testing.assert_allclose(s[:4, 4:], implied[:4, 4:], atol=1e-12)
    assert not np.allclose(s[:4, :4], implied[:4, :4])
    nearly_raw = np.asarray(shrunk_kappa(y, 4, tau=1e-12, min_overlap=2, prior="dawid_skene"))
    both = (y[:, 0] != MISSING) & (y[:, 1] != MISSING)
    assert nearly_raw[0, 1] == pytest.approx(max(cohen_kappa_score(y[both, 0], y[both, 1]), 0.0), abs=1e-9)
