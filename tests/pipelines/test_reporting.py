from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from simlabel.core.labels import LabelTable
from simlabel.core.pair_similarity import PairSimilarity
from simlabel.folder import CrowdFolder, FolderFormatError, read_crowd_folder
from simlabel.pipelines.reporting.nodes import attention_heatmap, combine_tables, evaluate_methods
from simlabel.pipelines.training.nodes import TRUTH_COLUMNS

LABEL_MATRIX = pd.DataFrame({"A1": [0, 1, 1, -1], "A2": [1, -1, 0, 0], "A3": [-1, -1, 2, -1]},
                            index=pd.Index(["i0", "i1", "i2", "i3"], name="item_id"))


def predictions(method, architecture, rows):
    """rows: (item, annotator, split, label, predicted)."""
    frame = pd.DataFrame(rows, columns=["item_id", "annotator_id", "split", "label", "predicted"])
    return frame.assign(method=method, architecture=architecture, probability=0.9)


def method_table(method, correct_a2: bool):
    rows = [
        ("i0", "A1", "test", 0, 0), ("i1", "A1", "test", 1, 0), ("i2", "A1", "train", 1, 1),
        ("i0", "A2", "test", 1, 1 if correct_a2 else 0), ("i3", "A2", "test", 0, 0), ("i2", "A2", "val", 0, 1),
        ("i2", "A3", "train", 2, 2),  # A3 has no test label
    ]
    return pd.concat([predictions(method, "heads", rows), predictions(method, "madl", [(*r[:4], r[3]) for r in rows])])


def test_accuracy_table_and_metrics_hand_computed():
    madl_truth = pd.DataFrame(
        {"method": "simlabel", "architecture": "madl", "item_id": ["i0", "i1", "i2", "i3"],
         "split": ["test", "test", "train", "test"], "predicted": [0, 1, 1, 2], "probability": 0.5}
    )
    truth = pd.DataFrame({"item_id": ["i0", "i1", "i3"], "label": ["0", "1", "0"]})
    folder = CrowdFolder(Path("set"), pd.DataFrame(), None, truth)
    combined = combine_tables(method_table("skip", False), method_table("simlabel", True), method_table("new", True))
    truth_predictions = combine_tables(pd.DataFrame(columns=TRUTH_COLUMNS), madl_truth)
    out = evaluate_methods(combined, truth_predictions, LabelTable.from_matrix(LABEL_MATRIX).to_frame(), ["c0", "c1", "c2"], folder)
    table = out["accuracy_table"].set_index(["architecture", "method"])
    # A1: i0 right, i1 wrong -> 0.5; A2 on test: i0, i3 -> skip 1/2, simlabel 2/2; A3 untested.
    assert table.loc[("heads", "skip"), "mean_accuracy"] == 0.5
    assert table.loc[("heads", "simlabel"), "mean_accuracy"] == 0.75
    assert table.loc[("heads", "simlabel"), "n_annotators"] == 2 and table.loc[("heads", "simlabel"), "n_untested"] == 1
    half = stats.t.ppf(0.975, 1) * np.std([0.5, 1.0], ddof=1) / np.sqrt(2)
    assert table.loc[("heads", "simlabel"), "ci95_low"] == pytest.approx(max(0.0, 0.75 - half))  # clipped
    assert table.loc[("heads", "simlabel"), "ci95_high"] == 1.0
    # Small and flat: {method: {mean, interval, n}}, other architectures as method@architecture.
    assert set(out["metrics"]) == {"skip", "simlabel", "new", "skip@madl", "simlabel@madl", "new@madl"}
    assert out["metrics"]["skip"] == {"mean_accuracy": 0.5, "ci95_low": 0.5, "ci95_high": 0.5, "n_annotators": 2}
    assert out["metrics"]["skip@madl"]["mean_accuracy"] == 1.0
    per_annotator = out["per_annotator"].set_index(["method", "architecture", "annotator_id"])
    assert per_annotator.loc[("simlabel", "heads", "A2"), "accuracy"] == 1.0
    assert per_annotator.loc[("simlabel", "heads", "A3"), "n_test"] == 0
    # madl truth head: test items i0 (0 vs 0), i1 (1 vs 1), i3 (2 vs 0) -> 2/3.
    assert table.loc[("madl", "simlabel"), "truth_accuracy"] == pytest.approx(2 / 3)
    assert np.isnan(table.loc[("madl", "skip"), "truth_accuracy"])
    assert "1 annotators have none" in out["accuracy_markdown"] and "n test labels" in out["accuracy_markdown"]


def test_attention_heatmap_handles_both_cases():
    assert attention_heatmap(pd.DataFrame(columns=["method", "architecture", "annotator_id", "token", "weight"])).axes
    attention = pd.DataFrame({"method": "simlabel", "architecture": "qumatl", "annotator_id": ["A1", "A1", "A2", "A2"],
                              "token": [0, 1, 0, 1], "weight": [0.2, 0.8, 0.5, 0.5]})
    figure = attention_heatmap(attention)
    np.testing.assert_allclose(figure.axes[0].images[0].get_array(), [[0.2, 0.8], [0.5, 0.5]])


def test_similarity_error_against_a_known_truth(tmp_path):
    from simlabel.pipelines.reporting.nodes import compare_similarities, with_similarity_errors

    names = ["A1", "A2", "A3"]
    truth = pd.DataFrame([[1.0, 0.8, 0.1], [0.8, 1.0, 0.2], [0.1, 0.2, 1.0]], index=names, columns=names)
    truth.to_csv(tmp_path / "true_similarity.csv")
    pd.DataFrame({"item_id": [0, 1], "annotator_id": ["A1", "A2"], "label": [0, 1]}).to_csv(tmp_path / "labels.csv", index=False)
    initial = pd.DataFrame([[0, 0.6, 0.1], [0.6, 0, 0.0], [0.1, 0.0, 0]], index=names, columns=names, dtype=float)
    refined = pd.DataFrame([[0, 0.9, 0.9], [0.9, 0, 0.9], [0.9, 0.9, 0]], index=names, columns=names, dtype=float)
    folder = read_crowd_folder(tmp_path)  # reads true_similarity.csv beside labels.csv
    pd.testing.assert_frame_equal(folder.true_similarity, truth)
    shrunk = initial + 0.05
    methods = {"simlabel": {}, "simlabel_confidence": {"cycling": True}, "shrunk": {"similarity_estimator": "shrunk_kappa"},
               "shrunk2": {"similarity_estimator": "shrunk_kappa", "soft_label_source": "mixed"},
               "blend": {"blend_of": ["shrunk", "simlabel"]}}
    # methods training with the initial similarity as it is (and blends) write an empty table
    finals = (PairSimilarity.constant(0), *map(PairSimilarity.from_dense, (refined, shrunk, shrunk)),
              PairSimilarity.constant(0))
    figure, errors = compare_similarities(folder, methods, PairSimilarity.from_dense(initial), *finals,
                                          methods=list(methods))
    metrics = with_similarity_errors({"simlabel": {}}, errors)
    assert metrics["simlabel"] == {}
    # Off-diagonal |S - S_true|: initial (0.2, 0, 0.2) twice -> 0.4 / 3; refined (0.1, 0.8, 0.7) -> 1.6 / 3.
    assert metrics["similarity_error"]["initial"] == pytest.approx(0.4 / 3, abs=1e-6)
    assert metrics["similarity_error"]["refined"] == pytest.approx(1.6 / 3, abs=1e-6)
    assert metrics["similarity_error"]["shrunk"] == pytest.approx(np.mean([0.15, 0.05, 0.15]), abs=1e-6)
    assert metrics["similarity_error"]["shrunk2"] == metrics["similarity_error"]["shrunk"]
    assert "blend" not in metrics["similarity_error"] and "simlabel" not in metrics["similarity_error"]
    assert [ax.get_title() for ax in figure.axes if ax.images] == [  # one panel per distinct matrix
        "initial (training labels)", "after cycling: simlabel_confidence", "estimated: shrunk, shrunk2",
        "truth (true_similarity.csv)"]
    _, no_errors = compare_similarities(CrowdFolder(tmp_path / "none", pd.DataFrame(), None, None), {},
                                        *map(PairSimilarity.from_dense, (initial, refined)), methods=["m"])
    assert no_errors == {} and with_similarity_errors({"a": 1}, no_errors) == {"a": 1}



def test_a_true_similarity_that_is_not_square_is_an_error(tmp_path):
    pd.DataFrame({"item_id": [0], "annotator_id": ["A1"], "label": [0]}).to_csv(tmp_path / "labels.csv", index=False)
    pd.DataFrame([[1.0, 0.5]], index=["A1"], columns=["A1", "A2"]).to_csv(tmp_path / "true_similarity.csv")
    with pytest.raises(FolderFormatError, match="true_similarity.csv: rows and columns must name the same annotators"):
        read_crowd_folder(tmp_path)


def test_similarity_heatmaps_wrap_into_rows_of_three():
    from simlabel.reports import similarity_heatmaps

    names = [f"w{k}" for k in range(30)]
    matrix = pd.DataFrame(np.eye(30), index=names, columns=names)
    figure = similarity_heatmaps({f"m{k}": matrix for k in range(5)})
    panels = [ax for ax in figure.axes if ax.images]
    assert [ax.get_title() for ax in panels] == ["m0", "m1", "m2", "m3", "m4"]
    rows = sorted({round(ax.get_position().y0, 3) for ax in panels})
    assert len(rows) == 2 and sum(round(ax.get_position().y0, 3) == rows[1] for ax in panels) == 3
    # Same annotators in every panel: named once per row (first column) and per column (bottom panel).
    named_x = [k for k, ax in enumerate(panels) if [t.get_text() for t in ax.get_xticklabels()] == names]
    named_y = [k for k, ax in enumerate(panels) if [t.get_text() for t in ax.get_yticklabels()] == names]
    assert named_x == [2, 3, 4] and named_y == [0, 3]
    assert not panels[0].get_xticklabels() and not panels[1].get_xticklabels() and not panels[4].get_yticklabels()
    reordered = {"m0": matrix, "m1": matrix.iloc[::-1, ::-1]}  # different orders: every panel named
    panels = [ax for ax in similarity_heatmaps(reordered).axes if ax.images]
    assert [t.get_text() for t in panels[1].get_yticklabels()] == names[::-1]
    assert [t.get_text() for t in panels[1].get_xticklabels()] == names[::-1]


def test_similarity_heatmaps_of_many_annotators_show_an_even_sample_of_them():
    from simlabel.reports import similarity_heatmaps

    names = [f"w{k}" for k in range(700)]
    values = np.random.default_rng(0).random((700, 700))
    matrix = pd.DataFrame(values, index=names, columns=names)
    figure = similarity_heatmaps({"a": matrix, "b": matrix.iloc[::-1, ::-1]})
    panels = [ax for ax in figure.axes if ax.images]
    # a sparse similarity first: its sampled annotators, found by name in the others
    sparse_first = similarity_heatmaps({"a": PairSimilarity.from_dense(matrix), "b": matrix.iloc[::-1, ::-1]})
    panels += [ax for ax in sparse_first.axes if ax.images]
    kept = np.arange(0, 700, 3)  # one in ceil(700 / 300) = 3, in the first matrix's order
    assert len(panels) == 4
    for panel in panels:  # the same annotators in both panels, however the second was ordered
        shown = np.asarray(panel.images[0].get_array())
        assert shown.shape == (234, 234)
        np.testing.assert_allclose(np.where(np.eye(234, dtype=bool), 0, shown), np.where(np.eye(234, dtype=bool), 0,
                                   values[np.ix_(kept, kept)]))
    assert figure.get_suptitle() == "234 of 700 annotators (one in 3, in order)"
    small = similarity_heatmaps({"a": matrix.iloc[:40, :40]})
    assert small.get_suptitle() == "" and np.asarray(small.axes[0].images[0].get_array()).shape == (40, 40)
