from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simlabel.folder import CrowdFolder, FolderFormatError
from simlabel.pipelines.label_matrix.nodes import (
    apply_extra_missing,
    make_item_split,
    make_label_matrix,
)

ITEMS = pd.DataFrame({"item_id": ["c0", "c1", "c2", "c3"], "source": ["c0.avi", "c1.avi", "c2.avi", "c3.avi"]})
NO_BAD = pd.DataFrame(columns=["item_id", "source", "error"])
LABELS = pd.DataFrame(
    {"item_id": ["c0", "c0", "c1", "c3", "c9"], "annotator_id": ["A1", "A2", "A1", "A2", "A1"], "label": ["0", "2", "1", "1", "0"]}
)


FOLDER = CrowdFolder(Path("demo"), LABELS, ["worry", "happiness", "neutral"], None)


def test_labels_of_skipped_clips_are_dropped_other_unknown_items_are_errors():
    with pytest.raises(FolderFormatError, match="without an input"):
        make_label_matrix(FOLDER, ITEMS, NO_BAD, {"labels_without_inputs": "error"})
    bad = pd.DataFrame({"item_id": ["c9"], "source": ["c9.avi"], "error": ["unreadable"]})
    matrix, classes = make_label_matrix(FOLDER, ITEMS, bad, {"labels_without_inputs": "error"})
    assert classes == ["worry", "happiness", "neutral"]
    np.testing.assert_array_equal(matrix.to_numpy(), [[0, 2], [1, -1], [-1, -1], [-1, 1]])


def test_extra_missing_removes_only_training_labels():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 3, (50, 6))
    values[rng.random(values.shape) < 0.5] = -1
    matrix = pd.DataFrame(values, index=pd.Index([f"i{k}" for k in range(50)], name="item_id"), columns=[f"A{a}" for a in range(6)])
    params = {"split_fractions": {"train": 0.6, "val": 0.2, "test": 0.2}, "seed": 0, "extra_missing": 0.4}
    split = make_item_split(matrix, CrowdFolder(None, pd.DataFrame(), None, None), params)
    reduced = apply_extra_missing(matrix, split, params)
    train = split["split"].eq("train").to_numpy()
    assert (reduced.to_numpy()[~train] == values[~train]).all()
    n_train = (values[train] != -1).sum()
    assert (reduced.to_numpy()[train] != -1).sum() == n_train - round(0.4 * n_train)
    assert apply_extra_missing(matrix, split, {**params, "extra_missing": 0.0}) is matrix


def test_one_class_is_an_error_and_one_annotator_a_warning(caplog):
    import numpy as np
    import pandas as pd
    import pytest

    from simlabel.core.labels import LabelTableError
    from simlabel.pipelines.label_matrix.nodes import check_learnable

    one_class = pd.DataFrame({"a": [0, 0, -1], "b": [-1, 0, 0]})
    with pytest.raises(LabelTableError, match="every label is class \\['cat'\\]"):
        check_learnable(one_class, ["cat", "dog"], "set")
    check_learnable(pd.DataFrame({"a": [0, 1, -1]}), ["cat", "dog"], "set")
    assert "only one annotator (a)" in caplog.text
    check_learnable(pd.DataFrame({"a": np.array([0, 1]), "b": np.array([1, -1])}), ["cat", "dog"], "set")


def test_the_folders_test_panel_is_always_test():
    values = np.zeros((30, 2), dtype=np.int64)
    matrix = pd.DataFrame(values, index=pd.Index([f"i{k}" for k in range(30)], name="item_id"), columns=["A", "B"])
    params = {"split_fractions": {"train": 0.6, "val": 0.2, "test": 0.2}, "seed": 3}
    panel = ["i1", "i7", "i20"]
    split = make_item_split(matrix, CrowdFolder(None, pd.DataFrame(), None, None, test_items=panel), params)
    names = split.set_index("item_id")["split"]
    assert set(names[names == "test"].index) == set(panel)
    assert set(names[~names.index.isin(panel)]) == {"train", "val"}
