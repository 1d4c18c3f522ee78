"""The long label table (``LabelTable``) against the dense (N, A) matrix it replaces at the
stage boundaries: the same labels, the same removals, the same similarity, the same
prediction tables; on random cases and on CIFAR-10N."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from kedro.io import DatasetError

from simlabel.core.labels import (
    MISSING,
    LabelTable,
    build_label_table,
    remove_labels,
    remove_table_labels,
)
from simlabel.core.similarity import similarity_from_params
from simlabel.datasets import LabelMatrixDataset
from simlabel.models.factory import (
    AnnotatorsFromTruth,
    BlendedAnnotators,
    evaluates_entries,
    model_from_args,
)
from simlabel.pipelines.training.nodes import labelled_predictions
from simlabel.training.loop import BatchSource, TrainConfig, TrainingResult

CIFAR10N = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10n"


def random_matrix(seed: int, n_items=40, n_annotators=7, n_classes=4, observed=0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    matrix = np.where(rng.random((n_items, n_annotators)) < observed, rng.integers(0, n_classes, (n_items, n_annotators)),
                      MISSING)
    matrix[rng.integers(n_items)] = MISSING  # an item nobody labelled
    matrix[:, rng.integers(n_annotators)] = MISSING  # an annotator without labels
    return matrix


def ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{k}" for k in range(n)]


def legacy_remove_labels(y: np.ndarray, rows: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The dense implementation the table's replaced, verbatim."""
    y = np.array(y, dtype=np.int64, copy=True, order="C")
    candidates = np.flatnonzero(((y != MISSING) & np.asarray(rows, dtype=bool)[:, None]).ravel())
    n_remove = int(round(fraction * candidates.size))
    drop = np.random.default_rng(seed).choice(candidates, size=n_remove, replace=False)
    y.ravel()[drop] = MISSING
    return y


@pytest.mark.parametrize("seed", range(5))
def test_parquet_round_trip_keeps_every_label_item_and_annotator(tmp_path, seed):
    matrix = random_matrix(seed)
    table = LabelTable.from_numpy(matrix, ids("i", 40), ids("w", 7))
    assert len(table) == (matrix != MISSING).sum()
    table.to_frame().to_parquet(tmp_path / "labels.parquet")
    back = LabelTable.from_frame(pd.read_parquet(tmp_path / "labels.parquet"))
    np.testing.assert_array_equal(back.to_numpy(), matrix)
    assert list(back.item_ids) == ids("i", 40) and list(back.annotator_ids) == ids("w", 7)
    # the catalog's read-only matrix view of the same file
    view = LabelMatrixDataset(str(tmp_path / "labels.parquet"))
    pd.testing.assert_frame_equal(view.load(), back.to_matrix())
    assert view.load().index.name == "item_id" and view.load().columns.name == "annotator_id"
    with pytest.raises(DatasetError, match="read-only"):
        view.save(back.to_matrix())


def test_the_matrix_view_refuses_a_crowd_too_big_for_a_matrix(tmp_path):
    table = LabelTable.from_entries(ids("i", 20_000), ids("w", 10_000), [0, 5], [3, 9_999], [1, 0])
    table.to_frame().to_parquet(tmp_path / "labels.parquet")
    with pytest.raises(DatasetError, match="20000 items x 10000 annotators = 1.6 GB for 2 labels: load `labels`"):
        LabelMatrixDataset(str(tmp_path / "labels.parquet")).load()


def test_rows_in_any_order_are_sorted_and_bad_tables_are_refused():
    matrix = random_matrix(1)
    frame = LabelTable.from_numpy(matrix, ids("i", 40), ids("w", 7)).to_frame()
    shuffled = frame.sample(frac=1.0, random_state=0)
    np.testing.assert_array_equal(LabelTable.from_frame(shuffled).to_numpy(), matrix)
    with pytest.raises(ValueError, match="appears twice"):
        LabelTable.from_frame(pd.concat([frame, frame.iloc[:1]]))
    with pytest.raises(ValueError, match="must be categorical"):
        LabelTable.from_frame(frame.astype({"item_id": str}))
    with pytest.raises(ValueError, match="missing \\['label'\\]"):
        LabelTable.from_frame(frame.drop(columns="label"))
    with pytest.raises(ValueError, match="labels >= 0"):
        LabelTable.from_frame(frame.assign(label=-1))
    with pytest.raises(ValueError, match="sorted by \\(item, annotator\\)"):
        table = LabelTable.from_numpy(matrix)
        LabelTable(table.item_ids, table.annotator_ids, table.items[::-1], table.annotators[::-1], table.labels[::-1])


@pytest.mark.parametrize("seed", range(4))
def test_removal_removes_what_the_dense_removal_removed(seed):
    matrix = random_matrix(seed, n_items=60)
    rows = np.random.default_rng(seed).random(60) < 0.6
    for fraction in (0.0, 0.2, 0.5, 0.9):
        expected = legacy_remove_labels(matrix, rows, fraction, seed)
        np.testing.assert_array_equal(remove_table_labels(LabelTable.from_numpy(matrix), rows, fraction, seed).to_numpy(),
                                      expected)
        np.testing.assert_array_equal(remove_labels(matrix, rows, fraction, seed), expected)
    with pytest.raises(ValueError, match="in \\[0, 1\\)"):
        remove_table_labels(LabelTable.from_numpy(matrix), rows, 1.0, 0)


@pytest.mark.parametrize("estimator", ["kappa", "shrunk_kappa", "ds_implied", "shrunk_ds_kappa"])
def test_similarity_of_the_table_equals_that_of_the_matrix(estimator):
    matrix = random_matrix(3, n_items=200, observed=0.5)
    params = {"estimator": estimator, "min_overlap": 2}
    from_table = similarity_from_params(LabelTable.from_numpy(matrix), 4, params)
    np.testing.assert_array_equal(from_table, similarity_from_params(matrix, 4, params))
    assert from_table.shape == (7, 7) and from_table.to_dense().max() > 0


class Lookup(torch.nn.Module):
    """A 'model' whose inputs are item indices and whose outputs are fixed (N, A, C) log-probabilities."""

    def __init__(self, log_p: torch.Tensor):
        super().__init__()
        self.log_p = log_p

    def forward(self, rows, items=None, annotators=None):
        out = self.log_p[rows.long()]
        return out if items is None else out[items, annotators]


def fixed_result(log_p: torch.Tensor, architecture: str, batch_size: int) -> TrainingResult:
    inputs = BatchSource(torch.arange(len(log_p)), torch.device("cpu"))
    return TrainingResult(Lookup(log_p), {"architecture": architecture}, pd.DataFrame(), 1, 0.0, None, None, inputs,
                          batch_size)


@pytest.mark.parametrize("batch_size", [1, 3, 512])
@pytest.mark.parametrize("architecture", ["heads", "qumatl"])  # at the entries / from the (b, A, C) output
def test_prediction_table_from_the_table_equals_the_dense_reference(batch_size, architecture):
    matrix = random_matrix(2, n_items=30, observed=0.25)
    table = LabelTable.from_numpy(matrix, ids("i", 30), ids("w", 7))
    log_p = torch.log_softmax(torch.randn(30, 7, 4, generator=torch.Generator().manual_seed(0)), -1)
    split = pd.Series(np.where(np.arange(30) < 20, "train", "test"), index=table.item_ids)
    result = fixed_result(log_p, architecture, batch_size)
    assert result.evaluates_entries() == (architecture == "heads")
    got = labelled_predictions({architecture: result}, "m", table, split)
    rows, cols = np.nonzero(matrix != MISSING)  # the dense reference: every observed entry, row-major
    prob, pred = log_p.exp().max(-1)
    assert got["item_id"].tolist() == [f"i{r}" for r in rows] and got["annotator_id"].tolist() == [f"w{c}" for c in cols]
    np.testing.assert_array_equal(got["label"], matrix[rows, cols])
    np.testing.assert_array_equal(got["predicted"], pred.numpy()[rows, cols])
    np.testing.assert_allclose(got["probability"], prob.numpy()[rows, cols])
    assert got["split"].tolist() == split.to_numpy()[rows].tolist()


@pytest.mark.parametrize("architecture", ["heads", "madl"])
def test_a_model_evaluated_at_the_entries_equals_its_full_output(architecture):
    torch.manual_seed(0)
    config = TrainConfig.from_params({"architecture": architecture, "hidden": 8})
    model = model_from_args(config.model_args(6, 1, 40, 3)).eval()
    tokens = torch.randn(50, 1, 6)
    matrix = random_matrix(4, n_items=50, n_annotators=40, n_classes=3, observed=0.1)
    table = LabelTable.from_numpy(matrix)
    result = TrainingResult(model, {"architecture": architecture}, pd.DataFrame(), 1, 0.0, None, None,
                            BatchSource(tokens, torch.device("cpu")), 16)
    at_entries = torch.cat([log_p for _, _, log_p in result.log_proba_at(table)])
    with torch.no_grad():
        full = model(tokens)[torch.from_numpy(table.items), torch.from_numpy(table.annotators)]
    assert at_entries.shape == (len(table), 3)
    torch.testing.assert_close(at_entries, full, rtol=1e-5, atol=1e-6)
    # a crowd baseline (a classifier through each annotator's confusion) and a blend with the model
    confusions = torch.softmax(torch.randn(40, 3, 3), -1)
    crowd = AnnotatorsFromTruth(model_from_args(config.model_args(6, 1, 1, 3)), confusions).eval()
    blended = BlendedAnnotators([model, crowd]).eval()
    for wrapper in (crowd, blended):
        with torch.no_grad():
            full = wrapper(tokens)[torch.from_numpy(table.items), torch.from_numpy(table.annotators)]
            items = torch.from_numpy(table.items)
            torch.testing.assert_close(wrapper(tokens, items, torch.from_numpy(table.annotators)), full,
                                       rtol=1e-5, atol=1e-6)
    crowd_args = {**config.model_args(6, 1, 1, 3), "crowd_annotators": 40}
    assert evaluates_entries(crowd_args) and evaluates_entries({"blend": [config.model_args(6, 1, 40, 3), crowd_args]})
    qumatl = TrainConfig.from_params({"architecture": "qumatl", "hidden": 8}).model_args(6, 1, 40, 3)
    assert not evaluates_entries(qumatl) and not evaluates_entries({"blend": [qumatl, crowd_args]})


@pytest.mark.skipif(not (CIFAR10N / "labels.csv").is_file(), reason="needs ../shared/data/cifar10n")
def test_cifar10n_table_equals_the_dense_matrix_and_its_kappa():
    labels = pd.read_csv(CIFAR10N / "labels.csv", dtype=str)
    items = pd.read_csv(CIFAR10N / "items.csv", dtype=str)["item_id"].tolist()
    table, classes = build_label_table(labels, items)
    # an independent dense build: one cell per row of labels.csv
    annotators = sorted(labels["annotator_id"].unique(), key=int)
    dense = np.full((len(items), len(annotators)), MISSING)
    dense[pd.Index(items).get_indexer(labels["item_id"]), pd.Index(annotators).get_indexer(labels["annotator_id"])] = (
        labels["label"].astype(int))
    assert table.shape == dense.shape == (50000, 747) and len(table) == len(labels) == 150000
    np.testing.assert_array_equal(table.to_numpy(), dense)
    assert list(table.annotator_ids) == annotators and list(table.item_ids) == items
    train = np.arange(len(items)) % 5 < 3
    params = {"estimator": "kappa", "min_overlap": 1}
    np.testing.assert_array_equal(similarity_from_params(table.of_items(train), len(classes), params),
                                  similarity_from_params(np.where(train[:, None], dense, MISSING), len(classes), params))


def test_sampled_runs_never_build_the_label_matrix(monkeypatch):
    """The scale mode (``soft_entries_per_item``) with the shrunk similarities, the crowd
    baselines and confidence cycling (every refresh): labels from the node's long table to the
    loss, the imputations and the prediction tables without an (N, A) array."""
    from simlabel.pipelines.training.nodes import train_method

    rng = np.random.default_rng(0)
    matrix = random_matrix(5, n_items=80, n_annotators=9, n_classes=3, observed=0.3)
    table = LabelTable.from_numpy(matrix, ids("i", 80), ids("w", 9))
    embeddings = rng.normal(size=(80, 6)).astype(np.float32)
    split = pd.DataFrame({"item_id": ids("i", 80), "split": np.where(np.arange(80) < 50, "train",
                                                                      np.where(np.arange(80) < 65, "val", "test"))})
    similarity = pd.DataFrame(np.full((9, 9), 0.5), index=table.annotator_ids, columns=table.annotator_ids)
    training = {"architectures": ["heads"], "max_epochs": 2, "hidden": 8, "device": "cpu", "soft_entries_per_item": 3}
    built = []
    dense = LabelTable.to_numpy
    monkeypatch.setattr(LabelTable, "to_numpy", lambda self: built.append(self.shape) or dense(self))

    cycling = {"cycling": True, "threshold": 0.0}  # every soft-labelled entry is imputed
    for method in ({}, {"similarity_estimator": "shrunk_ds_kappa", "soft_label_source": "mixed"},
                   {"crowd_baseline": "dawid_skene"}, {"crowd_baseline": "consensus"}, cycling,
                   {**cycling, "refresh": "anchored", "imputed_as_targets": True},
                   {**cycling, "refresh": "models", "impute_from": "own_prediction"}):
        outputs = train_method(embeddings, None, table.to_frame(), split, similarity, ["a", "b", "c"], training,
                               {"min_overlap": 2}, method, method_name="m")
        # a crowd baseline's classifier of the true class has one column: (80, 1) is no crowd matrix
        assert (80, 9) not in built and len(outputs["predictions"]) == len(table), method
        if "cycling" in method:  # imputations happened, in a long table
            assert len(outputs["imputed_labels"]) > 0, method
    train_method(embeddings, None, table.to_frame(), split, similarity, ["a", "b", "c"],
                 {**training, "soft_entries_per_item": None}, {"min_overlap": 2}, {}, method_name="dense")
    assert (80, 9) in built  # the dense step reads the matrix: the guard above is real


def test_majority_vote_and_dawid_skene_read_the_table_as_the_matrix():
    from simlabel.core.baselines import dawid_skene, majority_vote

    matrix = random_matrix(6, n_items=120, observed=0.4)
    table = LabelTable.from_numpy(matrix)
    np.testing.assert_array_equal(majority_vote(table, 4, rng=3), majority_vote(matrix, 4, rng=3))
    for ours, reference in zip(dawid_skene(table, 4, diagonal_prior=1.0), dawid_skene(matrix, 4, diagonal_prior=1.0),
                               strict=True):
        np.testing.assert_array_equal(ours, reference)
    with pytest.raises(ValueError, match="labels must be in \\[0, 3\\)"):
        majority_vote(table, 3)


def test_a_dense_run_with_many_annotators_suggests_the_sampled_step(caplog):
    from simlabel.training.loop import DENSE_STEP_WARNING, train_annotator_models

    rng = np.random.default_rng(0)
    n_annotators = DENSE_STEP_WARNING
    matrix = np.full((30, n_annotators), MISSING)
    matrix[np.arange(30), rng.integers(0, n_annotators, 30)] = rng.integers(0, 2, 30)
    tokens = rng.normal(size=(30, 1, 4)).astype(np.float32)
    rows = np.arange(30) < 20
    for per_item, warned in ((None, True), (2, False)):
        caplog.clear()
        config = TrainConfig.from_params({"max_epochs": 1, "hidden": 4, "soft_entries_per_item": per_item})
        train_annotator_models(tokens, matrix, rows, ~rows, np.zeros((n_annotators, n_annotators)), 2, config)
        assert ("soft_entries_per_item: 8 evaluates" in caplog.text) == warned


def test_refined_similarity_is_written_only_for_methods_with_their_own():
    from simlabel.pipelines.training.nodes import train_method

    rng = np.random.default_rng(1)
    matrix = random_matrix(7, n_items=60, n_annotators=5, n_classes=3, observed=0.5)
    table = LabelTable.from_numpy(matrix, ids("i", 60), ids("w", 5))
    split = pd.DataFrame({"item_id": ids("i", 60), "split": np.where(np.arange(60) < 40, "train", "val")})
    similarity = pd.DataFrame(np.full((5, 5), 0.5), index=table.annotator_ids, columns=table.annotator_ids)
    training = {"architectures": ["heads"], "max_epochs": 1, "hidden": 4, "device": "cpu"}
    for method, own in (({}, False), ({"crowd_baseline": "dawid_skene"}, False), ({"unlabeled_weight": 0.0}, False),
                        ({"cycling": True, "threshold": 0.0}, True), ({"similarity_estimator": "shrunk_kappa"}, True)):
        refined = train_method(rng.normal(size=(60, 4)).astype(np.float32), None, table.to_frame(), split, similarity,
                               ["a", "b", "c"], training, {"min_overlap": 2}, method, method_name="m")["refined_similarity"]
        assert (refined.shape == (5, 5) and list(refined.annotator_ids) == list(table.annotator_ids)) if own \
            else refined.empty, method
