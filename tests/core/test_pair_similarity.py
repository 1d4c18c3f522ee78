"""The sparse similarity (``PairSimilarity``: evidence pairs + the estimator's prior rule) equals
the dense (A, A) estimators it replaced, on random crowds and on CIFAR-10N; its lookups (numpy,
torch, broadcast as the sampled step indexes it), storage and validation."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from simlabel.core.baselines import dawid_skene
from simlabel.core.kappa import _pair_statistics, colabel_counts, kappa_matrix
from simlabel.core.labels import MISSING, LabelTable, build_label_table
from simlabel.core.pair_similarity import PairSimilarity, as_pair_similarity, kappa_from_rates
from simlabel.core.similarity import (
    _auto_tau,
    ds_implied,
    expected_kappa,
    kappa,
    shrunk_kappa,
)
from simlabel.datasets import PairSimilarityDataset

CIFAR10N = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10n"


# ---- the dense estimators as they were before the similarity went sparse (kept verbatim) ----
def dense_pair_kappas(y, n_classes, min_overlap):
    n_annotators = y.shape[1]
    keys, overlap, agree, first, second = _pair_statistics(colabel_counts(y, n_classes), n_annotators, n_classes)
    evidence = np.where(overlap >= max(min_overlap, 1), overlap, 0.0)
    p_o, p_e = agree / overlap, (first * second).sum(1) / overlap**2
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = np.nan_to_num(p_o * (1 - p_o) / (1 - p_e) ** 2, nan=0.0, posinf=0.0)
    out = np.zeros((3, n_annotators, n_annotators))
    out[0].flat[keys] = np.where(evidence > 0, kappa_from_rates(p_o, p_e, clip=False), 0.0)
    out[1].flat[keys] = evidence
    out[2].flat[keys] = np.where(evidence > 0, spread, 0.0)
    return out[0], out[1], out[2]


def dense_shrunk_kappa(y, n_classes, tau="auto", min_overlap=1, prior="annotator"):
    raw, weight, spread = dense_pair_kappas(y, n_classes, min_overlap)
    total = weight.sum()
    mu = (weight * raw).sum() / total if total > 0 else 0.0
    tau = _auto_tau(raw, weight, spread, mu) if isinstance(tau, str) else tau
    if prior == "global":
        target = np.full_like(raw, mu)
    elif prior == "dawid_skene":
        target = dense_ds_implied(y, n_classes)
    else:
        per_annotator = ((weight * raw).sum(1) + tau * mu) / np.maximum(weight.sum(1) + tau, 1e-300)
        per_annotator = np.where(weight.sum(1) + tau > 0, per_annotator, mu)
        target = (per_annotator[:, None] + per_annotator[None, :]) / 2
    denominator = weight + tau
    with np.errstate(divide="ignore", invalid="ignore"):
        similarity = np.where(denominator > 0, (weight * raw + tau * target) / denominator, target)
    similarity = np.clip(similarity, 0.0, 1.0)
    np.fill_diagonal(similarity, 0.0)
    return similarity


def dense_ds_implied(y, n_classes):
    _, confusions, class_prior = dawid_skene(y, n_classes, diagonal_prior=0.0)
    similarity = expected_kappa(confusions, class_prior)
    np.fill_diagonal(similarity, 0.0)
    return similarity


def random_crowd(seed, n_items=400, n_annotators=30, n_classes=4, per_item=3):
    """Annotators in two pools that never co-label (every cross pair holds the prior), of
    varying accuracy, ``per_item`` labels per item."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, n_classes, n_items)
    accuracy = rng.uniform(0.2, 0.95, n_annotators)
    y = np.full((n_items, n_annotators), MISSING)
    half = n_annotators // 2
    for i in range(n_items):  # test data: the loop builds the reference input, not the code under test
        pool = np.arange(half) if i % 2 else np.arange(half, n_annotators)
        for a in rng.choice(pool, per_item, replace=False):
            y[i, a] = truth[i] if rng.random() < accuracy[a] else rng.integers(0, n_classes)
    return y


ESTIMATOR_CASES = [
    ("kappa", lambda y, c, m: kappa(y, c, m), lambda y, c, m: kappa_matrix(y, c, m)),
    ("shrunk_annotator", lambda y, c, m: shrunk_kappa(y, c, min_overlap=m),
     lambda y, c, m: dense_shrunk_kappa(y, c, min_overlap=m)),
    ("shrunk_global", lambda y, c, m: shrunk_kappa(y, c, min_overlap=m, prior="global"),
     lambda y, c, m: dense_shrunk_kappa(y, c, min_overlap=m, prior="global")),
    ("shrunk_tau3", lambda y, c, m: shrunk_kappa(y, c, tau=3.0, min_overlap=m),
     lambda y, c, m: dense_shrunk_kappa(y, c, tau=3.0, min_overlap=m)),
    ("shrunk_ds", lambda y, c, m: shrunk_kappa(y, c, min_overlap=m, prior="dawid_skene"),
     lambda y, c, m: dense_shrunk_kappa(y, c, min_overlap=m, prior="dawid_skene")),
    ("ds_implied", lambda y, c, m: ds_implied(y, c), lambda y, c, m: dense_ds_implied(y, c)),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name,sparse,dense", ESTIMATOR_CASES, ids=[c[0] for c in ESTIMATOR_CASES])
def test_sparse_estimators_equal_the_dense_ones(name, sparse, dense, seed):
    y = random_crowd(seed)
    table = LabelTable.from_numpy(y)
    for min_overlap in (1, 3):
        similarity = sparse(table, 4, min_overlap)
        assert isinstance(similarity, PairSimilarity) and similarity.shape == (30, 30)
        np.testing.assert_allclose(similarity.to_dense(), dense(y, 4, min_overlap), rtol=0, atol=1e-12)
        # only pairs with evidence are stored: the pools never meet, so at most 2 * 15 * 14 pairs
        assert similarity.n_pairs <= 2 * 15 * 14
    assert np.array_equal(np.asarray(sparse(y, 4, 1)), sparse(table, 4, 1).to_dense())  # matrix or table


def test_pairs_without_evidence_hold_the_prior_rule_by_hand():
    y = random_crowd(4)
    table = LabelTable.from_numpy(y)
    # kappa: nothing stored across the pools, 0 there
    assert kappa(table, 4).at([0, 29], [29, 0]).tolist() == [0.0, 0.0]
    # global prior: one constant for every cross pair, the overlap-weighted mean kappa (clipped)
    shrunk = shrunk_kappa(table, 4, prior="global")
    assert shrunk.prior_kind == "constant"
    assert np.unique(shrunk.to_dense()[:15, 15:]).size == 1
    # annotator prior: (m_j + m_k) / 2 clipped, from the stored per-annotator means
    shrunk = shrunk_kappa(table, 4)
    means = shrunk.prior["per_annotator"]
    np.testing.assert_allclose(shrunk.to_dense()[3, 20], np.clip((means[3] + means[20]) / 2, 0, 1), atol=1e-15)
    # Dawid-Skene: no pair stored at all, every value is the bilinear rule
    implied = ds_implied(table, 4)
    assert implied.n_pairs == 0 and implied.nbytes < 30 * (16 + 4 + 1) * 8


def test_lookups_numpy_torch_and_broadcast_equal_the_matrix():
    similarity = shrunk_kappa(LabelTable.from_numpy(random_crowd(5)), 4, prior="dawid_skene")
    dense = similarity.to_dense()
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, 30, 500), rng.integers(0, 30, 500)
    # to_dense forms the Dawid-Skene rule by matrix products, lookups by dot products: same to rounding
    np.testing.assert_allclose(similarity.at(rows, cols), dense[rows, cols], rtol=0, atol=1e-12)
    # the sampled step's shapes: annotators (E, 1) against labellers (E, L)
    annotators, index = torch.from_numpy(rng.integers(0, 30, (64, 1))), torch.from_numpy(rng.integers(0, 30, (64, 5)))
    looked_up = similarity.tensor("cpu", torch.float64)[annotators, index]
    np.testing.assert_allclose(looked_up.numpy(), dense[annotators.numpy(), index.numpy()], rtol=0, atol=1e-12)
    as_float = similarity.tensor("cpu").to(torch.float32)[annotators, index]
    np.testing.assert_allclose(as_float.numpy(), dense[annotators.numpy(), index.numpy()], atol=1e-6)
    # blocks of chosen annotators, and the dense matrix's own round trip
    chosen = np.array([2, 7, 19, 28])
    np.testing.assert_array_equal(similarity.to_dense(chosen), dense[np.ix_(chosen, chosen)] * (1 - np.eye(4)))
    np.testing.assert_array_equal(PairSimilarity.from_dense(dense).to_dense(), dense)
    assert as_pair_similarity(similarity) is similarity


def test_storage_round_trip_without_pickles(tmp_path):
    ids = pd.Index([f"w{i}" for i in range(30)], name="annotator_id")
    for similarity in (kappa(LabelTable.from_numpy(random_crowd(6), annotator_ids=ids), 4),
                       shrunk_kappa(LabelTable.from_numpy(random_crowd(6), annotator_ids=ids), 4),
                       ds_implied(LabelTable.from_numpy(random_crowd(6), annotator_ids=ids), 4),
                       PairSimilarity.constant(0)):
        dataset = PairSimilarityDataset(str(tmp_path / "s.npz"))
        dataset.save(similarity)
        with np.load(tmp_path / "s.npz", allow_pickle=False) as arrays:  # plain arrays only
            assert {"keys", "values", "prior_kind"} <= set(arrays.files)
        loaded = dataset.load()
        np.testing.assert_array_equal(loaded.to_dense(), similarity.to_dense())
        assert loaded.prior_kind == similarity.prior_kind and loaded.empty == similarity.empty
        if not similarity.empty:
            assert list(loaded.annotator_ids) == list(ids)
            assert list(loaded.to_frame().columns) == list(ids)
    with pytest.raises(Exception, match="PairSimilarity"):
        dataset.save(pd.DataFrame())


def test_bad_pair_similarities_are_refused():
    with pytest.raises(ValueError, match="sorted"):
        PairSimilarity(3, np.array([5, 1]), np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="diagonal"):
        PairSimilarity(3, np.array([4]), np.array([0.5]))
    with pytest.raises(ValueError, match="prior takes"):
        PairSimilarity(3, np.zeros(0), np.zeros(0), "mean", {"value": np.zeros(1)})
    with pytest.raises(ValueError, match="3 rows"):
        PairSimilarity(3, np.zeros(0), np.zeros(0), "mean", {"per_annotator": np.zeros(2)})
    with pytest.raises(ValueError, match="one length"):
        PairSimilarity(3, np.array([1]), np.zeros(2))
    with pytest.raises(ValueError, match="annotator ids"):
        PairSimilarity.constant(3, annotator_ids=pd.Index(["a"]))


@pytest.mark.skipif(not (CIFAR10N / "labels.csv").is_file(), reason="needs ../shared/data/cifar10n")
def test_cifar10n_sparse_equals_dense():
    labels = pd.read_csv(CIFAR10N / "labels.csv", dtype=str)
    items = pd.read_csv(CIFAR10N / "items.csv", dtype=str)["item_id"].tolist()
    table, classes = build_label_table(labels, items)
    train = table.of_items(np.arange(len(items)) % 5 < 3)
    y = train.to_numpy()
    for sparse, dense in [(kappa(train, 10, 2), kappa_matrix(y, 10, 2)),
                          (shrunk_kappa(train, 10, min_overlap=2), dense_shrunk_kappa(y, 10, min_overlap=2))]:
        np.testing.assert_allclose(sparse.to_dense(), dense, rtol=0, atol=1e-12)
        # 747 annotators: most pairs never co-label, so far fewer than A^2 values are stored
        assert sparse.n_pairs < 0.2 * 747 * 746
        assert list(sparse.annotator_ids) == list(table.annotator_ids)


def _node_inputs(n_items=80, n_annotators=9):
    from tests.core.test_label_table import ids, random_matrix

    rng = np.random.default_rng(0)
    table = LabelTable.from_numpy(random_matrix(5, n_items=n_items, n_annotators=n_annotators, n_classes=3, observed=0.3),
                                  ids("i", n_items), ids("w", n_annotators))
    split = pd.DataFrame({"item_id": ids("i", n_items), "split": np.where(np.arange(n_items) < 50, "train", "val")})
    return table, split, rng.normal(size=(n_items, 6)).astype(np.float32)


def test_sampled_runs_never_make_the_similarity_dense(monkeypatch):
    """Sampled steps without cycling look pairs up in the sparse similarity (stage's or their
    own estimator's): no (A, A) array of it is made; a dense step does make one (the guard is real)."""
    import simlabel.training.loop as loop
    from simlabel.pipelines.similarity.nodes import compute_similarity
    from simlabel.pipelines.training.nodes import train_method

    monkeypatch.setattr(loop, "DENSE_SIMILARITY_MAX", 0)  # 9 annotators stand for a crowd too big for a matrix
    table, split, embeddings = _node_inputs()
    made = []
    dense = PairSimilarity.to_dense
    monkeypatch.setattr(PairSimilarity, "to_dense", lambda self, annotators=None: made.append(annotators) or dense(
        self, annotators))
    training = {"architectures": ["heads"], "max_epochs": 2, "hidden": 8, "device": "cpu", "soft_entries_per_item": 3}
    for estimator in ("kappa", "shrunk_kappa"):
        similarity = compute_similarity(table.to_frame(), split, ["a", "b", "c"], {"estimator": estimator, "min_overlap": 2})
        for method in ({}, {"similarity_estimator": "shrunk_ds_kappa", "soft_label_source": "mixed"}):
            outputs = train_method(embeddings, None, table.to_frame(), split, similarity, ["a", "b", "c"], training,
                                   {"min_overlap": 2}, method, method_name="m")
            assert made == [] and len(outputs["predictions"]) == len(table), (estimator, method)
    assert outputs["refined_similarity"].prior_kind == "kappa"  # shrunk_ds: the Dawid-Skene rule, kept sparse
    train_method(embeddings, None, table.to_frame(), split, similarity, ["a", "b", "c"],
                 {**training, "soft_entries_per_item": None}, {"min_overlap": 2}, {}, method_name="dense")
    assert made == [None]
    monkeypatch.setattr(loop, "DENSE_SIMILARITY_MAX", 9)  # a small crowd: the sampled step indexes a matrix
    train_method(embeddings, None, table.to_frame(), split, similarity, ["a", "b", "c"], training,
                 {"min_overlap": 2}, {}, method_name="small")
    assert made == [None, None]


@pytest.mark.parametrize("estimator", ["kappa", "shrunk_kappa", "shrunk_ds_kappa"])
def test_a_sampled_run_trains_the_same_on_the_sparse_and_the_dense_similarity(estimator, monkeypatch):
    import simlabel.training.loop as loop
    from simlabel.core.similarity import similarity_from_params
    from simlabel.training.config import TrainConfig
    from simlabel.training.loop import train_annotator_models

    table, split, embeddings = _node_inputs()
    train = (split["split"] == "train").to_numpy()
    similarity = similarity_from_params(table.of_items(train), 3, {"estimator": estimator, "min_overlap": 2})
    config = TrainConfig.from_params({"architecture": "heads", "max_epochs": 3, "hidden": 8, "device": "cpu",
                                      "soft_entries_per_item": 3, "seed": 4})
    # The dense matrix of the very float32 values the sparse tensor gives (to_dense forms the
    # Dawid-Skene rule by matrix products, 1e-16 away: enough to turn a pair's exact 0 into 1e-17,
    # which switches Eq. 4's weights from uniform to that one labeller)
    every = torch.arange(9)
    dense = similarity.tensor("cpu")[every[:, None], every[None, :]].numpy()
    np.testing.assert_allclose(dense, similarity.to_dense(), rtol=0, atol=1e-7)
    monkeypatch.setattr(loop, "DENSE_SIMILARITY_MAX", 0)  # the sparse lookups, not a matrix of them
    runs = [train_annotator_models(embeddings[:, None], table, train, ~train, s, 3, config)
            for s in (similarity, dense)]
    assert runs[0].similarity is similarity and isinstance(runs[1].similarity, np.ndarray)
    for column in ("loss", "val_mean_accuracy"):
        np.testing.assert_array_equal(runs[0].history[column].to_numpy(), runs[1].history[column].to_numpy())
