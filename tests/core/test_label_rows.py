import itertools

import numpy as np
import pytest
import torch

from simlabel.core.label_rows import LabelRows, sample_unlabelled
from simlabel.core.labels import LabelTable


def random_labels(n_items=40, n_annotators=9, n_classes=4, missing=0.7, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, (n_items, n_annotators))
    labels[rng.random(labels.shape) < missing] = -1
    labels[3] = -1  # an item nobody labelled
    return labels


def test_batch_lists_each_items_labels_in_annotator_order():
    labels = random_labels()
    rows = np.array([5, 3, 0, 5, 17, 39])  # repeats and an unlabelled item
    index, valid, values = LabelRows.from_matrix(labels).batch(rows)
    assert index.shape[1] == max(1, max((labels[r] >= 0).sum() for r in rows))
    for b, r in enumerate(rows):
        expected = np.flatnonzero(labels[r] >= 0)
        n = len(expected)
        assert valid[b].sum() == n and valid[b, :n].all()
        np.testing.assert_array_equal(index[b, :n].numpy(), expected)
        np.testing.assert_array_equal(values[b, :n].numpy(), labels[r, expected])
        assert (index[b, n:] == labels.shape[1]).all() and (values[b, n:] == -1).all()


def test_long_table_and_matrix_give_the_same_rows():
    labels = random_labels(seed=1)
    items, annotators = np.nonzero(labels >= 0)
    shuffle = np.random.default_rng(0).permutation(len(items))
    from_long = LabelRows.from_long(items[shuffle], annotators[shuffle], labels[items, annotators][shuffle], *labels.shape)
    from_matrix = LabelRows.from_matrix(labels)
    from_table = LabelRows.from_table(LabelTable.from_numpy(labels))
    for name in ("starts", "annotators", "labels"):
        torch.testing.assert_close(getattr(from_long, name), getattr(from_matrix, name))
        torch.testing.assert_close(getattr(from_table, name), getattr(from_matrix, name))
    np.testing.assert_array_equal(from_long.to_matrix(), labels)


def test_long_table_errors():
    with pytest.raises(ValueError, match="twice"):
        LabelRows.from_long([0, 0], [1, 1], [0, 1], 2, 3)
    with pytest.raises(ValueError, match="annotator indices"):
        LabelRows.from_long([0], [3], [0], 2, 3)
    with pytest.raises(ValueError, match="same length"):
        LabelRows.from_long([0, 1], [0], [0], 2, 3)


@pytest.mark.parametrize("per_item", [1, 3, 20])
def test_draws_are_distinct_unlabelled_and_as_many_as_asked(per_item):
    labels = random_labels(n_items=60, n_annotators=12, missing=0.5, seed=2)
    labels[7] = 0  # an item every annotator labelled: nothing to draw
    index, valid, _ = LabelRows.from_matrix(labels).batch(np.arange(len(labels)))
    eligible = valid.any(1)
    items, annotators = sample_unlabelled(index, valid, labels.shape[1], per_item, eligible, torch.Generator().manual_seed(0))
    assert (labels[items.numpy(), annotators.numpy()] == -1).all()
    pairs = set(zip(items.tolist(), annotators.tolist(), strict=True))
    assert len(pairs) == len(items)
    expected = np.where(eligible.numpy(), np.minimum(per_item, (labels == -1).sum(1)), 0)
    np.testing.assert_array_equal(np.bincount(items.numpy(), minlength=len(labels)), expected)


def test_draws_are_uniform_over_subsets():
    # Annotators 1 and 4 labelled the item; of the other four, each of the 6 pairs is equally likely.
    n_draws = 12_000
    index = torch.tensor([[1, 4]]).expand(n_draws, 2)
    items, annotators = sample_unlabelled(index, torch.ones_like(index, dtype=torch.bool), 6, 2,
                                          torch.ones(n_draws, dtype=torch.bool), torch.Generator().manual_seed(0))
    chosen = annotators.view(n_draws, 2).sort(1).values
    subsets = list(itertools.combinations([0, 2, 3, 5], 2))
    counts = np.array([((chosen[:, 0] == a) & (chosen[:, 1] == b)).sum().item() for a, b in subsets])
    assert counts.sum() == n_draws
    expected = n_draws / len(subsets)
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 20.5, counts  # the 0.999 quantile of chi-square with 5 degrees of freedom


CIFAR10N_LABELS = __import__("pathlib").Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10n" / "labels.csv"


@pytest.mark.skipif(not CIFAR10N_LABELS.exists(), reason="CIFAR-10N labels not present in ../shared/data")
def test_cifar10n_long_table_gives_the_dense_matrix_and_draws_only_unlabelled_entries():
    """All 150,000 CIFAR-10N labels from the long table (shuffled) equal the dense (N, A) matrix;
    draws on real rows (3 labels among 747 annotators) never hit a labelled entry."""
    import pandas as pd

    table = pd.read_csv(CIFAR10N_LABELS).sample(frac=1.0, random_state=0)
    items, _ = pd.factorize(table["item_id"], sort=True)
    annotators, annotator_ids = pd.factorize(table["annotator_id"], sort=True)
    n_items, n_annotators = int(items.max()) + 1, annotator_ids.size
    dense = np.full((n_items, n_annotators), -1, np.int64)
    dense[items, annotators] = table["label"].to_numpy()
    rows = LabelRows.from_long(items, annotators, table["label"].to_numpy(), n_items, n_annotators)
    np.testing.assert_array_equal(rows.to_matrix(), dense)
    from_matrix = LabelRows.from_matrix(dense)
    for name in ("starts", "annotators", "labels"):
        assert torch.equal(getattr(rows, name), getattr(from_matrix, name))
    batch = torch.arange(0, n_items, 97)
    index, valid, values = rows.batch(batch)
    picked_items, picked = sample_unlabelled(index, valid, n_annotators, 8, valid.any(1), torch.Generator().manual_seed(0))
    assert (dense[batch[picked_items].numpy(), picked.numpy()] == -1).all()
    assert np.array_equal(np.bincount(picked_items.numpy(), minlength=len(batch)), np.where(valid.any(1).numpy(), 8, 0))
