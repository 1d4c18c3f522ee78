"""The input-folder format: the shared real sets are accepted, malformed folders get one clear error."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from simlabel.core.labels import LabelTableError, build_label_matrix
from simlabel.folder import (
    FolderFormatError,
    array_item_ids,
    read_crowd_folder,
    restrict_labels_to_items,
)
from tests.conftest import PROJECT_ROOT

SHARED = PROJECT_ROOT.parent / "shared" / "data"
pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not beside the project")


@pytest.mark.parametrize(
    ("name", "kind", "policy", "n_annotators", "n_classes"),
    [("music_genre", "features", "error", 44, 10), ("labelme", "features", "error", 59, 8), ("cifar10n", "images", "drop", None, 10)],
)
def test_shared_sets_are_accepted(name, kind, policy, n_annotators, n_classes):
    folder = read_crowd_folder(SHARED / name)
    chosen, path = folder.choose_input()
    assert chosen == kind
    items = array_item_ids(len(folder.load_array(path)))
    labels = restrict_labels_to_items(folder.labels, items, policy, name)
    matrix, classes = build_label_matrix(labels, items, classes=folder.classes)
    assert len(classes) == n_classes == len(folder.classes)
    assert n_annotators is None or matrix.shape[1] == n_annotators
    assert (matrix.to_numpy() != -1).sum() == len(labels)
    assert folder.truth is not None


def test_shifted_ids_of_a_real_set_are_caught_even_with_drop():
    folder = read_crowd_folder(SHARED / "music_genre")
    labels = folder.labels.assign(item_id=(folder.labels["item_id"].astype(int) + 1).astype(str))  # 1-based ids
    items = array_item_ids(len(folder.load_array(folder.choose_input()[1])))
    for policy in ("drop", "error"):
        with pytest.raises(FolderFormatError) as error:
            restrict_labels_to_items(labels, items, policy, "features.npy")
        assert "item ids look shifted by +1 against the rows of features.npy: labels use 1..700, rows are 0..699" in str(error.value)
        assert "labels_without_inputs: drop" not in str(error.value)


def test_cifar10n_images_cover_a_subset_and_that_is_an_error_by_default():
    folder = read_crowd_folder(SHARED / "cifar10n")
    _, path = folder.choose_input()
    with pytest.raises(FolderFormatError, match="labels_without_inputs: drop"):
        restrict_labels_to_items(folder.labels, array_item_ids(len(folder.load_array(path))), "error", "cifar10n")


@pytest.fixture
def folder(tmp_path):
    """A small valid features folder."""
    pd.DataFrame({"item_id": [0, 1, 2], "annotator_id": ["x", "y", "x"], "label": [0, 1, 1]}).to_csv(tmp_path / "labels.csv", index=False)
    np.save(tmp_path / "features.npy", np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32))
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    return tmp_path


def test_valid_small_folder(folder):
    crowd = read_crowd_folder(folder)
    assert crowd.choose_input() == ("features", folder / "features.npy")
    assert crowd.classes == ["cat", "dog"] and crowd.truth is None


def test_no_labels_file(folder):
    (folder / "labels.csv").unlink()
    with pytest.raises(FolderFormatError, match="no labels.csv"):
        read_crowd_folder(folder)


def test_missing_folder_points_at_the_demo_pipeline(tmp_path):
    with pytest.raises(FolderFormatError, match="pipelines=demo_data"):
        read_crowd_folder(tmp_path / "nope")


def test_two_input_kinds(folder):
    (folder / "videos").mkdir()
    shutil.copy(folder / "classes.txt", folder / "videos" / "0.mp4")
    with pytest.raises(FolderFormatError, match="two input kinds"):
        read_crowd_folder(folder).choose_input()
    assert read_crowd_folder(folder).choose_input("features")[0] == "features"


def test_two_files_of_one_kind(folder):
    np.save(folder / "features_pca.npy", np.zeros((3, 2), np.float32))
    with pytest.raises(FolderFormatError, match="two features files") as error:
        read_crowd_folder(folder).choose_input()
    assert "input_file" not in str(error.value)  # no such parameter
    assert "rename them so that they do not start with 'features'" in str(error.value)
    assert "test_features_pca.npy" in str(error.value)
    (folder / "features_pca.npy").rename(folder / "test_features_pca.npy")  # the suggested fix works
    assert read_crowd_folder(folder).choose_input() == ("features", folder / "features.npy")


def test_no_input_and_held_out_files_are_ignored(folder):
    (folder / "features.npy").rename(folder / "test_features.npy")
    with pytest.raises(FolderFormatError, match="no input found"):
        read_crowd_folder(folder).choose_input()


def test_feature_rows_not_matching_the_items(folder):
    np.save(folder / "features.npy", np.zeros((2, 4), np.float32))  # 2 rows, labels for items 0..2
    crowd = read_crowd_folder(folder)
    items = array_item_ids(len(crowd.load_array(crowd.choose_input()[1])))
    with pytest.raises(FolderFormatError, match="1 of 3 labels \\(1 items\\) are for items without an input"):
        restrict_labels_to_items(crowd.labels, items, "error", "features.npy")
    assert len(restrict_labels_to_items(crowd.labels, items, "drop", "features.npy")) == 2


def test_labels_outside_classes_txt(folder):
    (folder / "classes.txt").write_text("cat\n")
    crowd = read_crowd_folder(folder)
    with pytest.raises(LabelTableError, match="not among the 1 classes"):
        build_label_matrix(crowd.labels, ["0", "1", "2"], classes=crowd.classes)


def test_labels_file_without_its_columns(folder):
    (folder / "labels.csv").write_text("item,who,label\n0,x,1\n")
    with pytest.raises(FolderFormatError, match="missing columns \\['item_id', 'annotator_id'\\]"):
        read_crowd_folder(folder)


# ---- test_items.txt: a test panel ------------------------------------------------------------
def test_test_items_are_read_in_file_order(folder):
    assert read_crowd_folder(folder).test_items is None  # no file: no panel
    (folder / "test_items.txt").write_text("2\n\n 0 \n")  # blank lines skipped, ids stripped
    assert read_crowd_folder(folder).test_items == ["2", "0"]
    (folder / "test_items.txt").write_text("item_id\n1\n")  # a header line
    assert read_crowd_folder(folder).test_items == ["1"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("0\n7\n1\nx\n", r"test_items.txt: 2 test items have no labels in labels.csv: line 2 \('7'\), line 4 \('x'\)"),
        ("1\n0\n1\n", r"test_items.txt: item '1' is listed more than once \(lines \[1, 3\]\)"),
        ("\n \n", r"test_items.txt: no item ids"),
        ("0\n1\n2\n", r"test_items.txt: lists all 3 labelled items, so none is left for training"),
        (b"0\n\xe91\n", r"test_items.txt: not UTF-8 text: byte 2 \(line 2\)"),
    ],
)
def test_bad_test_items_name_the_file_and_line(folder, text, message):
    path = folder / "test_items.txt"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(FolderFormatError, match=message):
        read_crowd_folder(folder)


def test_test_items_are_not_read_without_labels(folder):
    (folder / "labels.csv").unlink()
    (folder / "test_items.txt").write_text("5\n")
    assert read_crowd_folder(folder, require_labels=False).test_items is None
