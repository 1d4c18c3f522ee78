"""Bad input folders stop with one message naming the file, line or value and the fix; never a
silent wrong result or a raw library error. The last test runs `kedro run` on a broken folder."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from simlabel.core.labels import LabelTableError, build_label_matrix
from simlabel.errors import UserError, find_user_error, format_user_error
from simlabel.folder import (
    MAX_DROPPED_SHARE,
    FolderFormatError,
    array_item_ids,
    read_crowd_folder,
    restrict_labels_to_items,
)
from tests.conftest import copy_project, tool_env


@pytest.fixture
def folder(tmp_path):
    """A valid features folder: 4 items, classes cat / dog."""
    (tmp_path / "labels.csv").write_text("item_id,annotator_id,label\n0,x,0\n1,y,1\n2,x,1\n3,y,0\n")
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    np.save(tmp_path / "features.npy", np.ones((4, 3), np.float32))
    return tmp_path


def matrix_of(path, policy="error"):
    """Read a folder the way the pipeline does: input rows, labels restricted to them, matrix."""
    crowd = read_crowd_folder(path)
    items = array_item_ids(len(crowd.load_array(crowd.choose_input()[1])))
    labels = restrict_labels_to_items(crowd.labels, items, policy, "features.npy")
    return build_label_matrix(labels, items, classes=crowd.classes)


def message_of(call, error=UserError) -> str:
    with pytest.raises(error) as caught:
        call()
    return str(caught.value)


def test_the_valid_folder_reads(folder):
    matrix, classes = matrix_of(folder)
    assert classes == ["cat", "dog"] and matrix.shape == (4, 2)


# --- labels.csv -------------------------------------------------------------------------


def test_latin1_labels_name_the_encoding_byte_and_line(folder):
    (folder / "labels.csv").write_bytes("item_id,annotator_id,label\n0,x,0\n1,Jos\xe9,1\n".encode("latin-1"))
    message = message_of(lambda: read_crowd_folder(folder), FolderFormatError)
    assert f"{folder / 'labels.csv'}: not UTF-8 text: byte 38 (line 3) is b'\\xe9'" in message
    assert "Save the file as UTF-8" in message and "iconv" in message


def test_utf8_with_byte_order_mark_reads(folder):
    text = (folder / "labels.csv").read_text()
    (folder / "labels.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert list(read_crowd_folder(folder).labels.columns) == ["item_id", "annotator_id", "label"]


@pytest.mark.parametrize(("row", "fields"), [("4,x,1,extra", 4), ("4,x", 2)])
def test_ragged_rows_name_the_line(folder, row, fields):
    with open(folder / "labels.csv", "a") as handle:
        handle.write(f"\n{row}\n")  # after a blank line: line numbers still count it
    message = message_of(lambda: read_crowd_folder(folder), FolderFormatError)
    assert f"labels.csv: 1 rows do not have the header's 3 fields (item_id,annotator_id,label): line 7 has {fields}" in message
    assert "Quote values that contain commas" in message


def test_empty_and_header_only_labels(folder):
    (folder / "labels.csv").write_bytes(b"")
    assert "labels.csv: empty file: expected a header line item_id,annotator_id,label" in message_of(lambda: read_crowd_folder(folder))
    (folder / "labels.csv").write_text("item_id,annotator_id,label\n")
    assert "labels.csv: no labels (only a header line)" in message_of(lambda: read_crowd_folder(folder))


def test_missing_columns_name_the_file(folder):
    (folder / "labels.csv").write_text("item,annotator_id,label\n0,x,1\n")
    message = message_of(lambda: read_crowd_folder(folder), FolderFormatError)
    assert f"{folder / 'labels.csv'}: missing columns ['item_id']" in message


def test_a_column_named_twice(folder):
    (folder / "labels.csv").write_text("item_id,annotator_id,label,label\n0,x,0,1\n")
    assert "labels.csv: the header line names ['label'] more than once" in message_of(lambda: read_crowd_folder(folder))


def test_blank_item_id_is_an_error_even_with_drop(folder):
    (folder / "labels.csv").write_text("item_id,annotator_id,label\n0,x,0\n,y,1\n" + "".join(f"{k % 4},a{k},0\n" for k in range(40)))
    message = message_of(lambda: matrix_of(folder, policy="drop"), LabelTableError)
    assert "labels.csv: 1 rows have no item_id: line 3 ('')" in message


def test_blank_label_names_the_csv_line(folder):
    (folder / "labels.csv").write_text("item_id,annotator_id,label\n0,x,0\n\n1,y,\n2,x,1\n")
    message = message_of(lambda: matrix_of(folder), LabelTableError)
    assert message.startswith(f"{folder / 'labels.csv'}: 1 rows have no label: line 4 ('')")


def test_fractional_label_names_the_csv_line(folder):
    (folder / "labels.csv").write_text("item_id,annotator_id,label\n0,x,0\n1,y,1.5\n")
    message = message_of(lambda: matrix_of(folder), LabelTableError)
    assert "labels.csv: 1 labels are numbers but not 0-based integer class indices: line 3 ('1.5')" in message


def test_indices_and_names_mixed_is_an_error(folder):
    (folder / "labels.csv").write_text("item_id,annotator_id,label\n0,x,dog\n1,y,1\n")
    message = message_of(lambda: matrix_of(folder), LabelTableError)
    assert "mixes class indices (line 3 ('1')) and class names (line 2 ('dog'))" in message


def test_truth_csv_is_read_with_the_same_checks(folder):
    (folder / "truth.csv").write_text("item_id,label\n0,1\n1\n")
    message = message_of(lambda: read_crowd_folder(folder), FolderFormatError)
    assert "truth.csv: 1 rows do not have the header's 2 fields (item_id,label): line 3 has 1" in message


# --- classes.txt ------------------------------------------------------------------------


def test_blank_line_in_classes_names_the_line(folder):
    (folder / "classes.txt").write_text("cat\n\ndog\n")
    message = message_of(lambda: read_crowd_folder(folder), FolderFormatError)
    assert f"{folder / 'classes.txt'}: line 2 is blank" in message and "shift every class after it" in message
    (folder / "classes.txt").write_text("cat\ndog\n\n\n")  # blank lines at the end shift nothing
    assert read_crowd_folder(folder).classes == ["cat", "dog"]


def test_duplicate_class_names_name_the_lines(folder):
    (folder / "classes.txt").write_text("cat\ndog\ncat\n")
    message = message_of(lambda: read_crowd_folder(folder), FolderFormatError)
    assert "classes.txt: class 'cat' is named twice (lines 1 and 3)" in message


def test_latin1_classes(folder):
    (folder / "classes.txt").write_bytes("cat\nd\xe9j\xe0\n".encode("latin-1"))
    assert "classes.txt: not UTF-8 text: byte 5 (line 2)" in message_of(lambda: read_crowd_folder(folder))


# --- arrays -----------------------------------------------------------------------------


def _object_array(path):
    np.save(path, np.array([[1, "a"], [None, 2]], dtype=object), allow_pickle=True)


def _pickled(path):
    path.write_bytes(pickle.dumps(np.ones((4, 3))))


def _empty(path):
    path.write_bytes(b"")


def _truncated(path):
    np.save(path, np.ones((4, 3), np.float32))
    path.write_bytes(path.read_bytes()[:-20])


def _npz(path):
    with open(path, "wb") as handle:
        np.savez(handle, a=np.ones((4, 3)))


def _text(path):
    np.save(path, np.array([["a", "b"]] * 4))


@pytest.mark.parametrize(
    ("write", "problem"),
    [
        (_object_array, "it holds Python objects (dtype object), which are never unpickled"),
        (_pickled, "not a .npy file (no valid NumPy header; pickled or other data?)"),
        (_empty, "the file is empty (0 bytes)"),
        (_truncated, "truncated: its header says shape (4, 3) float32 (48 bytes of data) but only 28 bytes follow"),
        (_npz, "is an .npz archive, not one array"),
        (_text, "dtype <U1 is not numeric"),
    ],
)
def test_unreadable_arrays_name_the_file_and_problem(folder, write, problem):
    path = folder / "features.npy"
    write(path)
    crowd = read_crowd_folder(folder)
    message = message_of(lambda: crowd.load_array(crowd.choose_input()[1]), FolderFormatError)
    assert message.startswith(f"{path}: ") and problem in message


# --- item ids against the rows of an array ---------------------------------------------


def _labels(item_ids):
    return pd.DataFrame({"item_id": [str(i) for i in item_ids], "annotator_id": "x", "label": "0"})


@pytest.mark.parametrize("policy", ["drop", "error"])
def test_one_based_ids_are_caught_as_a_shift(policy):
    labels = _labels(range(1, 701))  # 700 items, 1-based: drop would lose only 1 label of 700
    message = message_of(lambda: restrict_labels_to_items(labels, array_item_ids(700), policy, "features.npy"))
    assert "item ids look shifted by +1 against the rows of features.npy: labels use 1..700, rows are 0..699" in message
    assert "subtract 1 from every item_id in labels.csv" in message and "labels_without_inputs: drop" not in message


def test_negative_shift():
    labels = _labels([-1, 0, 5, 97])
    message = message_of(lambda: restrict_labels_to_items(labels, array_item_ids(100), "drop", "features.npy"))
    assert "shifted by -1" in message and "add 1 to every item_id" in message


def test_dropping_more_than_a_small_share_of_unmatched_ids_stops():
    labels = _labels([*range(90), *[f"img_{k}" for k in range(10)]])  # 10 % of the ids match nothing
    message = message_of(lambda: restrict_labels_to_items(labels, array_item_ids(90), "drop", "features.npy"))
    assert "10 of 100 labels (10 items) are for items without an input in features.npy" in message
    assert f"10% of the labels would be lost (more than {MAX_DROPPED_SHARE:.0%})" in message
    assert "Fix the ids in labels.csv" in message


def test_a_small_share_or_ids_beyond_the_last_row_are_dropped():
    few = _labels([*range(99), "stray"])  # 1 %: dropped with a warning
    assert len(restrict_labels_to_items(few, array_item_ids(100), "drop", "features.npy")) == 99
    subset = _labels(range(1000))  # the array holds the first 100 items (e.g. cifar10n's images)
    assert len(restrict_labels_to_items(subset, array_item_ids(100), "drop", "images.npy")) == 100


def test_error_policy_still_suggests_drop_when_drop_is_safe():
    message = message_of(lambda: restrict_labels_to_items(_labels(range(200)), array_item_ids(100), "error", "images.npy"))
    assert "labels_without_inputs: drop" in message


# --- one message for the user -----------------------------------------------------------


def test_user_errors_are_found_through_wrapping_errors():
    from kedro.io import DatasetError

    try:
        try:
            raise FolderFormatError("labels.csv: line 3 is bad")
        except FolderFormatError as error:
            raise DatasetError("Failed while loading data from dataset X") from error
    except DatasetError as wrapped:
        assert isinstance(find_user_error(wrapped), FolderFormatError)
        assert format_user_error(wrapped) == "Error: labels.csv: line 3 is bad"
    assert find_user_error(RuntimeError("bug")) is None
    assert issubclass(LabelTableError, UserError) and issubclass(FolderFormatError, ValueError)


MINIMAL_REGISTRY = """from kedro.pipeline import Node, Pipeline


def check(crowd_folder):
    return None


def register_pipelines():
    pipeline = Pipeline([Node(check, inputs="crowd_folder", outputs=None, name="check")])
    return {"check": pipeline, "__default__": pipeline}
"""
MINIMAL_CATALOG = """crowd_folder:
  type: simlabel.datasets.CrowdFolderDataset
  path: ${runtime_params:dataset_dir}
"""


def minimal_project(destination, settings_extra: str = ""):
    """A copy of this project (its package, ``cli.py``, settings, logging) whose only pipeline
    reads the folder ``--params=dataset_dir=<folder>``: independent of the other stages."""
    project = copy_project(destination)
    (project / "src" / "simlabel" / "pipeline_registry.py").write_text(MINIMAL_REGISTRY)
    shutil.rmtree(project / "conf" / "base")
    (project / "conf" / "base").mkdir()
    (project / "conf" / "base" / "catalog.yml").write_text(MINIMAL_CATALOG)
    settings = project / "src" / "simlabel" / "settings.py"
    settings.write_text(settings.read_text() + settings_extra)
    return project


def kedro_run(project, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**tool_env(), "PYTHONPATH": str(project / "src"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "kedro", "run", *args]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=timeout)


def test_kedro_run_prints_one_line_for_a_user_error_and_a_traceback_for_a_bug(tmp_path, folder):
    project = minimal_project(tmp_path / "project")
    assert kedro_run(project, f"--params=dataset_dir={folder}").returncode == 0

    (folder / "labels.csv").write_text("item_id,annotator_id,label\n0,x,0\n1,y,0,7\n")
    result = kedro_run(project, f"--params=dataset_dir={folder}")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, output
    assert errors[0].startswith(f"Error: {folder / 'labels.csv'}: 1 rows do not have the header's 3 fields"), output
    assert "Traceback" not in output

    datasets = project / "src" / "simlabel" / "datasets.py"  # a bug, not a user error
    datasets.write_text(datasets.read_text().replace("return read_crowd_folder(", "raise RuntimeError('a bug'); read_crowd_folder("))
    result = kedro_run(project, f"--params=dataset_dir={folder}")
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" in output and "RuntimeError: a bug" in output
