from collections import Counter

import numpy as np
import pytest
import torch

from simlabel.core.baselines import annotator_predictions_from_truth, dawid_skene, majority_vote

# Items: clear winner, 1-vs-2 tie, nobody, unanimous, three-way tie, single label.
Y_MV = np.array(
    [
        [0, 0, 1, -1],
        [1, 2, -1, -1],
        [-1, -1, -1, -1],
        [3, 3, 3, 3],
        [0, 1, 2, -1],
        [-1, -1, 2, -1],
    ]
)
TIED = {1: {1, 2}, 4: {0, 1, 2}}


def simulate(n_items, n_classes, n_annotators, observed, seed, diag=(0.5, 0.9)):
    """Annotators with random confusions (diagonal uniform in ``diag``); returns truth, y, pi."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(n_classes, size=n_items)
    pi = np.empty((n_annotators, n_classes, n_classes))
    for a in range(n_annotators):
        for t in range(n_classes):
            d = rng.uniform(*diag)
            off = rng.dirichlet(np.ones(n_classes - 1)) * (1 - d)
            pi[a, t] = np.insert(off, t, d)
    cum = pi[:, truth].cumsum(-1)  # (A, N, C)
    y = (rng.random((n_annotators, n_items, 1)) > cum).sum(-1).T.astype(np.int64)
    y[rng.random(y.shape) >= observed] = -1
    return truth, y, pi


def test_majority_vote_hand_made():
    votes = majority_vote(Y_MV, 4, rng=0)
    assert votes.dtype == np.int64 and votes.shape == (6,)
    assert votes[[0, 2, 3, 5]].tolist() == [0, -1, 3, 2]
    for i, allowed in TIED.items():
        assert votes[i] in allowed
    np.testing.assert_array_equal(votes, majority_vote(Y_MV, 4, rng=0))
    np.testing.assert_array_equal(
        majority_vote(Y_MV, 4), majority_vote(Y_MV, 4, rng=np.random.default_rng(0))
    )
    # Ties are random (not the first class): across seeds every tied class wins sometimes.
    seen = {i: {int(majority_vote(Y_MV, 4, rng=s)[i]) for s in range(60)} for i in TIED}
    assert seen == TIED


def test_majority_vote_matches_counter_loop():
    y = np.random.default_rng(1).integers(-1, 5, size=(300, 7))
    votes = majority_vote(y, 5, rng=3)
    for i in range(len(y)):
        counts = Counter(int(v) for v in y[i] if v >= 0)
        if not counts:
            assert votes[i] == -1
        else:
            assert counts[int(votes[i])] == max(counts.values())


@pytest.mark.parametrize(
    "y, n_classes",
    [
        (np.zeros(3, dtype=np.int64), 2),
        (np.array([[0, 2]]), 2),
        (np.array([[0, -2]]), 2),
        (np.array([[0.0, 1.0]]), 2),
    ],
)
def test_invalid_inputs(y, n_classes):
    with pytest.raises(ValueError):
        majority_vote(y, n_classes)
    with pytest.raises(ValueError):
        dawid_skene(y, n_classes)


def test_dawid_skene_bad_parameters():
    with pytest.raises(ValueError, match="init"):
        dawid_skene(Y_MV, 4, init="random")
    with pytest.raises(ValueError, match="smoothing"):
        dawid_skene(Y_MV, 4, smoothing=0)


def test_dawid_skene_permuted_annotator():
    # Annotators 0 and 1 give the true class; annotator 2 always reports perm[true class].
    perm = np.array([1, 2, 0])
    truth = np.repeat(np.arange(3), [10, 12, 8])
    y = np.stack([truth, truth, perm[truth]], axis=1)
    y = np.vstack([y, [[-1, -1, -1]]])  # plus one unlabelled item
    post, pi, prior = dawid_skene(y, 3)
    np.testing.assert_array_equal(post[:-1].argmax(1), truth)
    assert post[:-1].max(1).min() > 0.99
    np.testing.assert_allclose(pi[0], np.eye(3), atol=0.01)
    np.testing.assert_allclose(pi[1], np.eye(3), atol=0.01)
    np.testing.assert_allclose(pi[2], np.eye(3)[perm], atol=0.01)
    np.testing.assert_allclose(prior, [10 / 30, 12 / 30, 8 / 30], atol=0.01)
    np.testing.assert_allclose(post[-1], prior)


def test_dawid_skene_sparse_annotators_are_defined():
    truth, y, _ = simulate(300, 3, 5, observed=0.8, seed=3)
    y[:, 3] = -1
    y[:, 4] = -1
    y[0, 4] = truth[0]  # annotator 3 labelled nothing, annotator 4 one item
    post, pi, _ = dawid_skene(y, 3)
    assert np.isfinite(post).all() and np.isfinite(pi).all()
    np.testing.assert_allclose(pi[3], np.full((3, 3), 1 / 3))
    np.testing.assert_allclose(pi.sum(2), 1)
    assert pi[4, truth[0]].argmax() == truth[0] and pi[4, truth[0], truth[0]] > 0.5


def test_dawid_skene_recovers_confusions():
    truth, y, pi_true = simulate(2000, 4, 8, observed=0.3, seed=0)
    post, pi, prior = dawid_skene(y, 4)
    assert post.shape == (2000, 4) and pi.shape == (8, 4, 4) and prior.shape == (4,)
    np.testing.assert_allclose(post.sum(1), 1)
    np.testing.assert_allclose(pi.sum(2), 1)
    assert np.abs(pi - pi_true).mean() < 0.05
    labelled = (y >= 0).any(1)
    acc_ds = (post.argmax(1) == truth)[labelled].mean()
    acc_mv = (majority_vote(y, 4, rng=0) == truth)[labelled].mean()
    assert acc_ds > acc_mv + 0.02


def test_dawid_skene_many_annotators_is_stable():
    truth, y, pi_true = simulate(200, 10, 500, observed=1.0, seed=1, diag=(0.2, 0.5))
    # Every item's joint p(y, labels) underflows float64 in linear space (exp(-745) == 0).
    log_joint = np.log(pi_true)[
        np.arange(500)[None, :, None], np.arange(10)[None, None, :], y[:, :, None]
    ].sum(1)
    assert log_joint.max() < -745
    post, pi, prior = dawid_skene(y, 10)
    assert np.isfinite(post).all() and np.isfinite(pi).all() and np.isfinite(prior).all()
    np.testing.assert_allclose(post.sum(1), 1)
    assert (post.argmax(1) == truth).all()


def test_annotator_predictions_from_truth_matches_loop():
    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.ones(3), size=5)
    pi = rng.dirichlet(np.ones(3), size=(4, 3))
    expected = np.zeros((5, 4, 3))
    for m in range(5):
        for a in range(4):
            for z in range(3):
                expected[m, a, z] = sum(p[m, t] * pi[a, t, z] for t in range(3))
    out = annotator_predictions_from_truth(p, pi)
    np.testing.assert_allclose(out, expected)
    np.testing.assert_allclose(out.sum(-1), 1)
    out_t = annotator_predictions_from_truth(torch.tensor(p), torch.tensor(pi))
    assert isinstance(out_t, torch.Tensor)
    np.testing.assert_allclose(out_t.numpy(), expected)
    with pytest.raises(ValueError):
        annotator_predictions_from_truth(p, pi[:, :2])


def test_diagonal_prior_keeps_unseen_rows_correct():
    # Annotator 1 only ever saw class-0 items: without a prior its rows for classes 1, 2 are
    # uniform-ish; with a diagonal prior they say "mostly right".
    y = np.array([[0, 0], [0, 0], [1, -1], [2, -1], [1, -1], [2, -1]])
    _, plain, _ = dawid_skene(y, 3)
    _, prior, _ = dawid_skene(y, 3, diagonal_prior=1.0)
    assert plain[1, 1].argmax() != 1 or plain[1, 1, 1] < 0.4
    assert prior[1, 1].argmax() == 1 and prior[1, 2].argmax() == 2
    np.testing.assert_allclose(prior.sum(-1), 1.0)
    with pytest.raises(ValueError, match="diagonal_prior"):
        dawid_skene(y, 3, diagonal_prior=-1.0)
