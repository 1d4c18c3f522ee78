"""Per-annotator and mean test accuracy of Skip, SimLabel and SimLabel + confidence, for every
architecture trained: the paper's Table 2/3 shape (rows = architecture x method)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from simlabel.core.labels import MISSING
from simlabel.core.metrics import per_annotator_accuracy
from simlabel.folder import CrowdFolder

logger = logging.getLogger(__name__)
METHOD_LABELS = {"skip": "Skip", "simlabel": "SimLabel", "simlabel_confidence": "SimLabel + confidence"}
MAX_MARKDOWN_ANNOTATORS = 20


def test_accuracy(predictions: pd.DataFrame, annotators: list[str]) -> tuple[pd.Series, pd.Series]:
    """Each annotator's accuracy on the test items they labelled, and their number of test labels."""
    test = predictions[predictions["split"] == "test"]
    labels = test.pivot(index="item_id", columns="annotator_id", values="label").reindex(columns=annotators)
    predicted = test.pivot(index="item_id", columns="annotator_id", values="predicted").reindex(columns=annotators)
    accuracy, n_labels = per_annotator_accuracy(predicted.fillna(MISSING).to_numpy(), labels.fillna(MISSING).to_numpy())
    return pd.Series(accuracy, index=annotators), pd.Series(n_labels, index=annotators)


def truth_accuracy(truth_predictions: pd.DataFrame, truth: pd.DataFrame | None, classes: list) -> dict[str, float]:
    """Test accuracy of a ground-truth head (``madl``) against ``truth.csv``, by architecture."""
    if truth is None or truth_predictions.empty:
        return {}
    known = truth.assign(item_id=truth["item_id"].astype(str)).set_index("item_id")["label"]
    by_name = {name: k for k, name in enumerate(classes)}
    known = known.map(lambda v: by_name.get(str(v), int(v) if str(v).lstrip("-").isdigit() else np.nan))
    test = truth_predictions[truth_predictions["split"] == "test"]
    test = test.assign(truth=test["item_id"].map(known)).dropna(subset=["truth"])
    return {a: float((g["predicted"] == g["truth"]).mean()) for a, g in test.groupby("architecture", sort=False)}


def evaluate_methods(
    label_matrix: pd.DataFrame,
    classes: list,
    crowd_folder: CrowdFolder,
    skip: pd.DataFrame,
    simlabel: pd.DataFrame,
    simlabel_confidence: pd.DataFrame,
    skip_truth: pd.DataFrame,
    simlabel_truth: pd.DataFrame,
    simlabel_confidence_truth: pd.DataFrame,
) -> tuple[pd.DataFrame, dict, str, Figure]:
    """Accuracy table (CSV), DVC metrics, Markdown table and bar chart.

    Returns
    -------
    table : one row per (architecture, method): each annotator's test accuracy, ``mean`` (over
        annotators with test labels), ``truth_accuracy`` where a ground-truth head and truth exist.
    metrics : ``{method: {mean_accuracy, per_annotator}}`` for the first architecture, plus
        ``by_architecture`` and ``n_test_labels``.
    """
    truth = crowd_folder.truth
    branches = {"skip": skip, "simlabel": simlabel, "simlabel_confidence": simlabel_confidence}
    truths = {"skip": skip_truth, "simlabel": simlabel_truth, "simlabel_confidence": simlabel_confidence_truth}
    annotators = list(label_matrix.columns)
    architectures = list(dict.fromkeys(skip["architecture"]))
    rows, by_architecture, n_test = [], {}, None
    for architecture in architectures:
        by_architecture[architecture] = {}
        for method, predictions in branches.items():
            accuracy, n_test = test_accuracy(predictions[predictions["architecture"] == architecture], annotators)
            truth_acc = truth_accuracy(truths[method], truth, classes).get(architecture, np.nan)
            rows.append({"architecture": architecture, "method": method, **accuracy, "mean": np.nanmean(accuracy), "truth_accuracy": truth_acc})
            by_architecture[architecture][method] = {
                "mean_accuracy": float(np.nanmean(accuracy)),
                "per_annotator": {a: float(v) for a, v in accuracy.dropna().items()},
                **({"truth_accuracy": truth_acc} if not np.isnan(truth_acc) else {}),
            }
    table = pd.DataFrame(rows)
    if table["truth_accuracy"].isna().all():
        table = table.drop(columns="truth_accuracy")
    metrics = {**by_architecture[architectures[0]], "by_architecture": by_architecture,
               "n_test_labels": {a: int(n) for a, n in n_test.items()}}

    markdown = accuracy_markdown(table, annotators, n_test)
    logger.info("test accuracy per annotator (mean = mean over annotators):\n%s", markdown)
    return table, metrics, markdown, accuracy_bar_chart(table, annotators)


def accuracy_markdown(table: pd.DataFrame, annotators: list[str], n_test: pd.Series) -> str:
    shown = table.assign(method=table["method"].map(METHOD_LABELS))
    if len(annotators) > MAX_MARKDOWN_ANNOTATORS:  # too wide: the CSV has every annotator
        shown = shown.drop(columns=annotators)
    numbers = shown.columns.drop(["architecture", "method"])
    shown[numbers] = shown[numbers].apply(lambda column: column.map(lambda v: "" if pd.isna(v) else f"{v:.3f}"))
    counts = {a: str(int(n_test[a])) for a in annotators if a in shown.columns}
    footer = pd.DataFrame([{"architecture": "", "method": "n test labels", **counts}])
    return pd.concat([shown, footer], ignore_index=True).fillna("").to_markdown(index=False, disable_numparse=True) + "\n"


def accuracy_bar_chart(table: pd.DataFrame, annotators: list[str]) -> Figure:
    """Per-annotator (first architecture) and mean test accuracy of each method."""
    first = table[table["architecture"] == table["architecture"].iloc[0]].set_index("method")
    columns = (annotators if len(annotators) <= 40 else []) + ["mean"]
    figure = Figure(figsize=(max(6.0, 0.55 * len(columns) + 2), 4.0), layout="constrained")
    axes = figure.subplots()
    x = np.arange(len(columns))
    width = 0.8 / len(first)
    for k, (method, row) in enumerate(first.iterrows()):
        axes.bar(x + (k - (len(first) - 1) / 2) * width, row[columns].astype(float), width, label=METHOD_LABELS[method])
    axes.set_xticks(x, columns, rotation=45 if len(columns) > 12 else 0)
    axes.set_ylim(0, 1)
    axes.set_ylabel("test accuracy")
    axes.set_title(f"Per-annotator test accuracy ({table['architecture'].iloc[0]})")
    axes.legend(loc="lower right")
    return figure


def attention_heatmap(frame_attention: pd.DataFrame) -> Figure:
    """Which frames each annotator's query attends to (``qumatl``), mean over test items."""
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.subplots()
    if frame_attention.empty:
        axes.text(0.5, 0.5, "no cross-attention: train 'qumatl' to see it", ha="center", va="center")
        axes.set_axis_off()
        return figure
    first = frame_attention[frame_attention["architecture"] == frame_attention["architecture"].iloc[0]]
    grid = first.pivot(index="annotator_id", columns="token", values="weight").reindex(first["annotator_id"].unique())
    image = axes.imshow(grid.to_numpy(), aspect="auto", cmap="magma")
    axes.set_yticks(range(len(grid)), grid.index)
    axes.set_xlabel("frame (token) index")
    axes.set_title("Cross-attention of each annotator's query (SimLabel branch)")
    figure.colorbar(image, ax=axes, label="mean attention")
    return figure
