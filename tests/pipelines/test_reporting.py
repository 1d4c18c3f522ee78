from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simlabel.folder import CrowdFolder
from simlabel.pipelines.reporting.nodes import attention_heatmap, evaluate_methods
from simlabel.pipelines.training.nodes import TRUTH_COLUMNS

LABEL_MATRIX = pd.DataFrame({"A1": [0, 1, 1, -1], "A2": [1, -1, 0, 0]}, index=pd.Index(["i0", "i1", "i2", "i3"], name="item_id"))


def predictions(architecture, rows):
    """rows: (item, annotator, split, label, predicted)."""
    frame = pd.DataFrame(rows, columns=["item_id", "annotator_id", "split", "label", "predicted"])
    return frame.assign(architecture=architecture, probability=0.9)


def branch(correct_a2: bool):
    rows = [
        ("i0", "A1", "test", 0, 0), ("i1", "A1", "test", 1, 0), ("i2", "A1", "train", 1, 1),
        ("i0", "A2", "test", 1, 1 if correct_a2 else 0), ("i3", "A2", "test", 0, 0), ("i2", "A2", "val", 0, 1),
    ]
    return pd.concat([predictions("heads", rows), predictions("madl", [(*r[:4], r[3]) for r in rows])])


def test_accuracy_table_and_metrics_hand_computed():
    no_truth = pd.DataFrame(columns=TRUTH_COLUMNS)
    madl_truth = pd.DataFrame(
        {"architecture": "madl", "item_id": ["i0", "i1", "i2", "i3"], "split": ["test", "test", "train", "test"],
         "predicted": [0, 1, 1, 2], "probability": 0.5}
    )
    truth = pd.DataFrame({"item_id": ["i0", "i1", "i3"], "label": ["0", "1", "0"]})
    folder = CrowdFolder(Path("set"), pd.DataFrame(), None, truth)
    table, metrics, markdown, _ = evaluate_methods(
        LABEL_MATRIX, ["c0", "c1", "c2"], folder, branch(False), branch(True), branch(True), no_truth, madl_truth, madl_truth
    )
    heads = table[table["architecture"] == "heads"].set_index("method")
    # A1: i0 right, i1 wrong -> 0.5; A2 on test: i0, i3 -> skip 1/2, simlabel 2/2.
    assert heads.loc["skip", "A1"] == 0.5 and heads.loc["skip", "A2"] == 0.5
    assert heads.loc["simlabel", "A2"] == 1.0 and heads.loc["simlabel", "mean"] == 0.75
    assert metrics["skip"] == {"mean_accuracy": 0.5, "per_annotator": {"A1": 0.5, "A2": 0.5}}
    assert metrics["by_architecture"]["madl"]["skip"]["mean_accuracy"] == 1.0
    assert metrics["n_test_labels"] == {"A1": 2, "A2": 2}
    # madl truth head: test items i0 (0 vs 0), i1 (1 vs 1), i3 (2 vs 0) -> 2/3.
    madl = table[table["architecture"] == "madl"].set_index("method")
    assert madl.loc["simlabel", "truth_accuracy"] == pytest.approx(2 / 3)
    assert np.isnan(madl.loc["skip", "truth_accuracy"]) and np.isnan(heads.loc["skip", "truth_accuracy"])
    assert "SimLabel + confidence" in markdown and "n test labels" in markdown


def test_attention_heatmap_handles_both_cases():
    assert attention_heatmap(pd.DataFrame(columns=["architecture", "annotator_id", "token", "weight"])).axes
    attention = pd.DataFrame({"architecture": "qumatl", "annotator_id": ["A1", "A1", "A2", "A2"], "token": [0, 1, 0, 1], "weight": [0.2, 0.8, 0.5, 0.5]})
    figure = attention_heatmap(attention)
    np.testing.assert_allclose(figure.axes[0].images[0].get_array(), [[0.2, 0.8], [0.5, 0.5]])
