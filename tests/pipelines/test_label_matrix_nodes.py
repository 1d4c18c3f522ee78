from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simlabel.core.labels import LabelTable, LabelTableError
from simlabel.folder import CrowdFolder, FolderFormatError
from simlabel.pipelines.label_matrix.nodes import (
    apply_extra_missing,
    make_item_split,
    make_labels,
)

ITEMS = pd.DataFrame({"item_id": ["c0", "c1", "c2", "c3"], "source": ["c0.avi", "c1.avi", "c2.avi", "c3.avi"]})
NO_BAD = pd.DataFrame(columns=["item_id", "source", "error"])
LABELS = pd.DataFrame(
    {"item_id": ["c0", "c0", "c1", "c3", "c9"], "annotator_id": ["A1", "A2", "A1", "A2", "A1"], "label": ["0", "2", "1", "1", "0"]}
)


FOLDER = CrowdFolder(Path("demo"), LABELS, ["worry", "happiness", "neutral"], None)


def test_labels_of_skipped_clips_are_dropped_other_unknown_items_are_errors():
    with pytest.raises(FolderFormatError, match="without an input"):
        make_labels(FOLDER, ITEMS, NO_BAD, {"labels_without_inputs": "error"})
    bad = pd.DataFrame({"item_id": ["c9"], "source": ["c9.avi"], "error": ["unreadable"]})
    labels, classes = make_labels(FOLDER, ITEMS, bad, {"labels_without_inputs": "error"})
    assert classes == ["worry", "happiness", "neutral"]
    # one row per label given; the item without labels (c2) is kept among the categories
    assert labels.astype(str).values.tolist() == [["c0", "A1", "0"], ["c0", "A2", "2"], ["c1", "A1", "1"], ["c3", "A2", "1"]]
    assert list(labels["item_id"].cat.categories) == ["c0", "c1", "c2", "c3"]
    np.testing.assert_array_equal(LabelTable.from_frame(labels).to_numpy(), [[0, 2], [1, -1], [-1, -1], [-1, 1]])


def test_extra_missing_removes_only_training_labels():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 3, (50, 6))
    values[rng.random(values.shape) < 0.5] = -1
    matrix = pd.DataFrame(values, index=pd.Index([f"i{k}" for k in range(50)], name="item_id"), columns=[f"A{a}" for a in range(6)])
    labels = LabelTable.from_matrix(matrix).to_frame()
    params = {"split_fractions": {"train": 0.6, "val": 0.2, "test": 0.2}, "seed": 0, "extra_missing": 0.4}
    split = make_item_split(labels, CrowdFolder(None, pd.DataFrame(), None, None), params)
    assert split["item_id"].tolist() == matrix.index.tolist()
    reduced = LabelTable.from_frame(apply_extra_missing(labels, split, params)).to_numpy()
    train = split["split"].eq("train").to_numpy()
    assert (reduced[~train] == values[~train]).all()
    n_train = (values[train] != -1).sum()
    assert (reduced[train] != -1).sum() == n_train - round(0.4 * n_train)
    assert ((reduced == values) | (reduced == -1)).all()
    assert apply_extra_missing(labels, split, {**params, "extra_missing": 0.0}) is labels
    one = LabelTable.from_numpy(np.array([[1]]), ["i0"], ["A0"]).to_frame()
    with pytest.raises(LabelTableError, match="removes all 1 labels"):
        apply_extra_missing(one, pd.DataFrame({"item_id": ["i0"], "split": ["train"]}), {**params, "extra_missing": 0.6})


def test_one_class_is_an_error_and_one_annotator_a_warning(caplog):
    import numpy as np
    import pandas as pd
    import pytest

    from simlabel.core.labels import LabelTableError
    from simlabel.pipelines.label_matrix.nodes import check_learnable

    def table(columns):
        return LabelTable.from_matrix(pd.DataFrame(columns))

    with pytest.raises(LabelTableError, match="every label is class \\['cat'\\]"):
        check_learnable(table({"a": [0, 0, -1], "b": [-1, 0, 0]}), ["cat", "dog"], "set")
    check_learnable(table({"a": [0, 1, -1]}), ["cat", "dog"], "set")
    assert "only one annotator (a)" in caplog.text
    check_learnable(table({"a": np.array([0, 1]), "b": np.array([1, -1])}), ["cat", "dog"], "set")


def test_the_folders_test_panel_is_always_test():
    values = np.zeros((30, 2), dtype=np.int64)
    matrix = pd.DataFrame(values, index=pd.Index([f"i{k}" for k in range(30)], name="item_id"), columns=["A", "B"])
    params = {"split_fractions": {"train": 0.6, "val": 0.2, "test": 0.2}, "seed": 3}
    panel = ["i1", "i7", "i20"]
    split = make_item_split(LabelTable.from_matrix(matrix).to_frame(), CrowdFolder(None, pd.DataFrame(), None, None, test_items=panel),
                            params)
    names = split.set_index("item_id")["split"]
    assert set(names[names == "test"].index) == set(panel)
    assert set(names[~names.index.isin(panel)]) == {"train", "val"}
