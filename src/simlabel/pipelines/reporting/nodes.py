"""Per-annotator and mean test accuracy of Skip, SimLabel and SimLabel + confidence."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from simlabel.core.labels import MISSING
from simlabel.core.metrics import per_annotator_accuracy

logger = logging.getLogger(__name__)
METHOD_LABELS = {"skip": "Skip", "simlabel": "SimLabel", "simlabel_confidence": "SimLabel + confidence"}


def test_accuracy(predictions: pd.DataFrame, annotators: list[str]) -> tuple[pd.Series, pd.Series]:
    """Each annotator's accuracy on the test items they labelled, and their number of test labels."""
    test = predictions[predictions["split"] == "test"]
    labels = test.pivot(index="item_id", columns="annotator_id", values="label").reindex(columns=annotators)
    predicted = test.pivot(index="item_id", columns="annotator_id", values="predicted").reindex(columns=annotators)
    accuracy, n_labels = per_annotator_accuracy(predicted.fillna(MISSING).to_numpy(), labels.fillna(MISSING).to_numpy())
    return pd.Series(accuracy, index=annotators), pd.Series(n_labels, index=annotators)


def evaluate_methods(
    label_matrix: pd.DataFrame, skip: pd.DataFrame, simlabel: pd.DataFrame, simlabel_confidence: pd.DataFrame
) -> tuple[pd.DataFrame, dict, str, Figure]:
    """Test accuracy table (CSV), DVC metrics dict, Markdown table and bar chart."""
    branches = {"skip": skip, "simlabel": simlabel, "simlabel_confidence": simlabel_confidence}
    annotators = list(label_matrix.columns)
    columns, metrics = {}, {}
    n_test = None
    for method, predictions in branches.items():
        accuracy, n_test = test_accuracy(predictions, annotators)
        columns[method] = accuracy
        metrics[method] = {
            "mean_accuracy": float(np.nanmean(accuracy)),
            "per_annotator": {a: float(v) for a, v in accuracy.dropna().items()},
        }
    table = pd.DataFrame(columns)
    table.loc["mean"] = table.mean()
    table["n_test_labels"] = pd.concat([n_test, pd.Series({"mean": n_test.mean()})])
    table.index.name = "annotator_id"

    shown = table.rename(columns=METHOD_LABELS)
    markdown = shown.to_markdown(floatfmt=[""] + [".3f"] * len(branches) + [".1f"]) + "\n"
    logger.info("test accuracy per annotator (mean = mean over annotators):\n%s", markdown)
    return table.reset_index(), metrics, markdown, accuracy_bar_chart(table)


def accuracy_bar_chart(table: pd.DataFrame) -> Figure:
    """Grouped bars: per-annotator and mean test accuracy of each method."""
    methods = [m for m in METHOD_LABELS if m in table.columns]
    figure = Figure(figsize=(max(6.0, 0.7 * len(table)), 4.0), layout="constrained")
    axes = figure.subplots()
    x = np.arange(len(table))
    width = 0.8 / len(methods)
    for k, method in enumerate(methods):
        axes.bar(x + (k - (len(methods) - 1) / 2) * width, table[method], width, label=METHOD_LABELS[method])
    axes.set_xticks(x, table.index, rotation=45 if len(table) > 12 else 0)
    axes.set_ylim(0, 1)
    axes.set_ylabel("test accuracy")
    axes.set_title("Per-annotator test accuracy")
    axes.legend(loc="lower right")
    return figure
