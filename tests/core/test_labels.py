import numpy as np
import pandas as pd
import pytest

from simlabel.core.labels import LabelTableError, build_label_matrix, remove_labels, split_items


def table(rows):
    return pd.DataFrame(rows, columns=["item_id", "annotator_id", "label"])


def test_build_label_matrix_with_class_names_and_indices():
    labels = table([("v1", "A2", "happiness"), ("v2", "A10", 0), ("v2", "A2", 2), ("v1", "A2", "happiness")])
    matrix, classes = build_label_matrix(labels, ["v1", "v2", "v3"], classes=["worry", "happiness", "neutral"])
    assert classes == ["worry", "happiness", "neutral"]
    assert list(matrix.columns) == ["A2", "A10"]  # natural order
    assert list(matrix.index) == ["v1", "v2", "v3"]
    np.testing.assert_array_equal(matrix.to_numpy(), [[1, -1], [2, 0], [-1, -1]])


def test_integer_ids_become_strings_and_classes_are_inferred():
    labels = table([(1, 7, 0), (2, 7, 3)])
    matrix, classes = build_label_matrix(labels, ["1", "2"])
    assert classes == ["0", "1", "2", "3"]
    assert list(matrix.columns) == ["7"]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("v1", "A1", "joy")], "not among the 3 classes"),
        ([("v1", "A1", 5)], "not among the 3 classes"),
        ([("v1", "A1", 0), ("v1", "A1", 1)], "two different labels"),
        ([("v9", "A1", 0)], "items that have no input"),
    ],
)
def test_each_bad_table_gets_one_clear_error(rows, message):
    with pytest.raises(LabelTableError, match=message):
        build_label_matrix(table(rows), ["v1", "v2"], classes=["worry", "happiness", "neutral"])


def test_missing_columns():
    with pytest.raises(LabelTableError, match="missing \\['label'\\]"):
        build_label_matrix(pd.DataFrame({"item_id": [1], "annotator_id": [1]}), ["1"])


def test_split_is_seeded_and_sized():
    ids = [f"i{k}" for k in range(100)]
    a = split_items(ids, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=3)
    b = split_items(ids, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=3)
    c = split_items(ids, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not a["split"].equals(c["split"])
    assert a["split"].value_counts().to_dict() == {"train": 60, "val": 20, "test": 20}
    with pytest.raises(ValueError, match="sum to 1"):
        split_items(ids, {"train": 0.6, "val": 0.2, "test": 0.3}, seed=0)


@pytest.mark.parametrize("order", ["C", "F"])  # DataFrame.to_numpy() is often Fortran-ordered
def test_remove_labels_only_touches_training_rows(order):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, (200, 5))
    y[rng.random(y.shape) < 0.5] = -1
    y = np.asarray(y, order=order)
    train = np.arange(200) < 120
    removed = remove_labels(y, train, 0.3, seed=1)
    n_train_labels = (y[train] != -1).sum()
    assert (removed[train] != -1).sum() == n_train_labels - round(0.3 * n_train_labels)
    np.testing.assert_array_equal(removed[~train], y[~train])
    kept = removed != -1
    np.testing.assert_array_equal(removed[kept], y[kept])
