import numpy as np
import pandas as pd
import pytest

from simlabel.core.labels import LabelTableError, build_label_matrix, remove_labels, split_items


def table(rows):
    return pd.DataFrame(rows, columns=["item_id", "annotator_id", "label"])


def test_build_label_matrix_with_class_names():
    labels = table([("v1", "A2", "happiness"), ("v2", "A10", "worry"), ("v2", "A2", "neutral"), ("v1", "A2", "happiness")])
    matrix, classes = build_label_matrix(labels, ["v1", "v2", "v3"], classes=["worry", "happiness", "neutral"])
    assert classes == ["worry", "happiness", "neutral"]
    assert list(matrix.columns) == ["A2", "A10"]  # natural order
    assert list(matrix.index) == ["v1", "v2", "v3"]
    np.testing.assert_array_equal(matrix.to_numpy(), [[1, -1], [2, 0], [-1, -1]])


def test_build_label_matrix_with_class_indices():
    labels = table([("v1", "A2", 1), ("v2", "A10", "0"), ("v2", "A2", "2.0")])  # "2.0": a CSV writer's int
    matrix, _ = build_label_matrix(labels, ["v1", "v2"], classes=["worry", "happiness", "neutral"])
    np.testing.assert_array_equal(matrix.to_numpy(), [[1, -1], [2, 0]])


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


def csv_table(rows, source="data/labels.csv"):
    """A table as ``simlabel.folder`` reads one: index = 1-based CSV line, attrs source = file."""
    frame = table(rows)
    frame.index = pd.RangeIndex(2, len(rows) + 2, name="line")
    frame.attrs["source"] = source
    return frame


def test_a_label_column_is_all_indices_or_all_names():
    rows = [("v1", "A1", "happiness"), ("v2", "A1", 0), ("v2", "A2", "neutral")]
    with pytest.raises(LabelTableError) as error:
        build_label_matrix(csv_table(rows), ["v1", "v2"], classes=["worry", "happiness", "neutral"])
    message = str(error.value)
    assert message.startswith("data/labels.csv: ") and "mixes class indices (line 3 ('0'))" in message
    assert "class names (line 2 ('happiness'), line 4 ('neutral'))" in message and "use one or the other" in message
    with pytest.raises(LabelTableError, match="mixes class indices"):  # without classes.txt too
        build_label_matrix(csv_table(rows), ["v1", "v2"])


@pytest.mark.parametrize(
    ("label", "problem"),
    [("", "rows have no label"), (None, "rows have no label"), (float("nan"), "rows have no label"),
     ("NaN", "rows have no label"), ("1.5", "labels are numbers but not 0-based integer class indices")],
)
def test_blank_nan_and_fractional_labels_name_their_lines(label, problem):
    rows = [("v1", "A1", 0)] * 2 + [("v2", "A1", label)] + [(f"v{k}", "A2", 1) for k in range(3, 10)] + [("v1", "A3", label)]
    with pytest.raises(LabelTableError) as error:
        build_label_matrix(csv_table(rows), [f"v{k}" for k in range(10)])
    message = str(error.value)
    assert message.startswith(f"data/labels.csv: 2 {problem}: line 4 (") and ", line 12 (" in message
    assert "labels.csv" in message


def test_many_bad_rows_show_a_few_and_the_count():
    rows = [(f"v{k}", "A1", "2.5") for k in range(20)]
    with pytest.raises(LabelTableError, match=r"20 labels are numbers .* line 2 \('2.5'\), .*line 6 \('2.5'\) and 15 more"):
        build_label_matrix(csv_table(rows), [f"v{k}" for k in range(20)])


def test_fractional_numbers_listed_in_classes_are_names():
    matrix, classes = build_label_matrix(table([("v1", "A1", "0.5"), ("v2", "A1", "1.5")]), ["v1", "v2"], classes=["0.5", "1.5"])
    assert classes == ["0.5", "1.5"] and matrix["A1"].tolist() == [0, 1]


def test_inferred_integer_classes_are_0_to_max_not_sorted_text():
    matrix, classes = build_label_matrix(table([("v1", "A1", "10"), ("v2", "A1", "2")]), ["v1", "v2"])
    assert classes == [str(k) for k in range(11)] and matrix["A1"].tolist() == [10, 2]
    _, names = build_label_matrix(table([("v1", "A1", "dog"), ("v2", "A1", "cat")]), ["v1", "v2"])
    assert names == ["cat", "dog"]


def test_blank_ids_name_their_lines():
    with pytest.raises(LabelTableError, match=r"data/labels.csv: 1 rows have no annotator_id: line 3 \(''\)"):
        build_label_matrix(csv_table([("v1", "A1", 0), ("v2", " ", 1)]), ["v1", "v2"])


def test_duplicate_class_names():
    with pytest.raises(LabelTableError, match="'cat' is class 0 and class 2 \\(classes.txt lines 1 and 3\\)"):
        build_label_matrix(table([("v1", "A1", 0)]), ["v1"], classes=["cat", "dog", "cat"])


def test_numeric_class_names_other_than_their_index_are_ambiguous():
    with pytest.raises(LabelTableError, match="line 1 is '1'.*ambiguous"):
        build_label_matrix(table([("v1", "A1", 1)]), ["v1"], classes=["1", "2", "3"])
    matrix, _ = build_label_matrix(table([("v1", "A1", 2)]), ["v1"], classes=["0", "1", "2"])
    assert matrix["A1"].tolist() == [2]


def test_unknown_values_name_their_lines():
    with pytest.raises(LabelTableError, match=r"not among the 3 classes .*unknown values \[7\] at line 3 \('7'\)"):
        build_label_matrix(csv_table([("v1", "A1", 0), ("v2", "A1", 7)]), ["v1", "v2"], classes=["a", "b", "c"])


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


def test_split_without_panel_is_the_documented_permutation_split():
    """Reference: the first round(0.6 N) items of default_rng(seed).permutation(N) train, the next val, the rest test."""
    ids = [f"i{k}" for k in range(37)]
    fractions = {"train": 0.6, "val": 0.2, "test": 0.2}
    order = np.random.default_rng(5).permutation(37)
    expected = np.empty(37, dtype=object)
    expected[order[:22]], expected[order[22:30]], expected[order[30:]] = "train", "val", "test"
    assert split_items(ids, fractions, seed=5)["split"].tolist() == expected.tolist()
    pd.testing.assert_frame_equal(split_items(ids, fractions, 5, test_items=None), split_items(ids, fractions, 5))


def test_split_with_a_test_panel():
    ids = [f"i{k}" for k in range(100)]
    panel = [f"i{k}" for k in range(0, 100, 5)]  # 20 items
    fractions = {"train": 0.6, "val": 0.2, "test": 0.2}
    a = split_items(ids, fractions, seed=3, test_items=panel)
    assert a["item_id"].tolist() == ids
    in_panel = a["item_id"].isin(panel)
    assert (a.loc[in_panel, "split"] == "test").all()
    # The other 80 items fill train and val only, with train / (train + val) = 0.75.
    assert a.loc[~in_panel, "split"].value_counts().to_dict() == {"train": 60, "val": 20}
    pd.testing.assert_frame_equal(a, split_items(ids, fractions, seed=3, test_items=list(reversed(panel))))
    b = split_items(ids, fractions, seed=4, test_items=panel)
    assert not a["split"].equals(b["split"]) and (b.loc[in_panel, "split"] == "test").all()
    # Reference: the non-panel items in their order, split by default_rng(seed).permutation.
    rest = [i for i in ids if i not in set(panel)]
    order = np.random.default_rng(3).permutation(len(rest))
    expected = np.where(np.isin(np.arange(len(rest)), order[:60]), "train", "val")
    assert a.set_index("item_id").loc[rest, "split"].tolist() == expected.tolist()
    # The test fraction does not matter with a panel; integer ids are compared as text.
    c = split_items(ids, {"train": 0.75, "val": 0.25, "test": 0.0}, seed=3, test_items=panel)
    pd.testing.assert_frame_equal(a, c)
    d = split_items(range(10), fractions, seed=0, test_items=[3, "7"])
    assert d.set_index("item_id").loc[["3", "7"], "split"].tolist() == ["test", "test"]
    assert (d["split"] == "test").sum() == 2


@pytest.mark.parametrize(
    "panel, fractions, message",
    [
        (["i1", "x9"], None, r"1 test panel items are not among the 10 items, e.g. \['x9'\]"),
        ([], None, "test_items is empty"),
        ([f"i{k}" for k in range(10)], None, "holds all 10 items"),
        (["i1"], {"train": 0.0, "val": 0.0, "test": 1.0}, "train \\+ val fractions must be > 0"),
    ],
)
def test_split_panel_errors(panel, fractions, message):
    ids = [f"i{k}" for k in range(10)]
    with pytest.raises(ValueError, match=message):
        split_items(ids, fractions or {"train": 0.6, "val": 0.2, "test": 0.2}, seed=0, test_items=panel)


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
