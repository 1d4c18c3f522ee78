"""Per-annotator and mean test accuracy of every method, for every architecture trained: the
paper's Table 2/3 shape (rows = architecture x method), with 95 % intervals over annotators."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from simlabel.core.labels import MISSING, LabelTable
from simlabel.core.metrics import mean_interval, per_annotator_accuracy
from simlabel.core.pair_similarity import PairSimilarity
from simlabel.folder import CrowdFolder
from simlabel.reports import (
    MAX_MARKDOWN_ANNOTATORS,
    heatmap_positions,
    markdown_table,
    similarity_heatmaps,
)

logger = logging.getLogger(__name__)


def combine_tables(*tables: pd.DataFrame) -> pd.DataFrame:
    """One long table from the methods' tables (each has a ``method`` column)."""
    filled = [t for t in tables if not t.empty]
    return pd.concat(filled, ignore_index=True) if filled else tables[0].iloc[:0]


def per_annotator_table(predictions: pd.DataFrame, annotators: list[str]) -> pd.DataFrame:
    """Long table: method, architecture, annotator_id, n_test, accuracy (test items they labelled)."""
    test = predictions[predictions["split"] == "test"]
    rows = []
    for (method, architecture), block in test.groupby(["method", "architecture"], sort=False):
        labels = block.pivot(index="item_id", columns="annotator_id", values="label").reindex(columns=annotators)
        predicted = block.pivot(index="item_id", columns="annotator_id", values="predicted").reindex(columns=annotators)
        accuracy, n_test = per_annotator_accuracy(predicted.fillna(MISSING).to_numpy(), labels.fillna(MISSING).to_numpy())
        rows.append(pd.DataFrame({"method": method, "architecture": architecture, "annotator_id": annotators,
                                  "n_test": n_test, "accuracy": accuracy}))
    return pd.concat(rows, ignore_index=True)


def truth_accuracy(truth_predictions: pd.DataFrame, truth: pd.DataFrame | None, classes: list) -> pd.Series:
    """Test accuracy of a ground-truth head (``madl``) against ``truth.csv``, by (method, architecture)."""
    if truth is None or truth_predictions.empty:
        return pd.Series(dtype=float)
    known = truth.assign(item_id=truth["item_id"].astype(str)).set_index("item_id")["label"]
    by_name = {name: k for k, name in enumerate(classes)}
    known = known.map(lambda v: by_name.get(str(v), int(v) if str(v).lstrip("-").isdigit() else np.nan))
    test = truth_predictions[truth_predictions["split"] == "test"]
    test = test.assign(truth=test["item_id"].map(known)).dropna(subset=["truth"])
    return test.assign(hit=test["predicted"] == test["truth"]).groupby(["method", "architecture"], sort=False)["hit"].mean()


def evaluate_methods(
    predictions: pd.DataFrame, truth_predictions: pd.DataFrame, labels: pd.DataFrame, classes: list,
    crowd_folder: CrowdFolder,
) -> dict:
    """Accuracy tables, DVC metrics, Markdown and bar chart from the long predictions table.

    Returns
    -------
    accuracy_table : one row per (architecture, method): mean accuracy over annotators with
        test labels, its 95 % t-interval, n annotators (and ``truth_accuracy`` of a ground-truth head).
    per_annotator : method, architecture, annotator_id, n_test, accuracy.
    metrics : ``{method: {mean_accuracy, ci95_low, ci95_high, n_annotators}}`` for the first
        architecture (``method@architecture`` for the others): small and flat for DVC.
    accuracy_markdown, accuracy_plot.
    """
    annotators = list(LabelTable.from_frame(labels).annotator_ids)  # every annotator, with test labels or not
    per_annotator = per_annotator_table(predictions, annotators)
    truth = truth_accuracy(truth_predictions, crowd_folder.truth, classes)
    rows = []
    for (method, architecture), block in per_annotator.groupby(["method", "architecture"], sort=False):
        interval = mean_interval(block["accuracy"])  # a t-interval, clipped to the range of an accuracy
        rows.append({"architecture": architecture, "method": method, "mean_accuracy": interval["mean"],
                     "ci95_low": max(0.0, interval["ci95_low"]), "ci95_high": min(1.0, interval["ci95_high"]),
                     "n_annotators": interval["n"],
                     "n_untested": int((block["n_test"] == 0).sum()), "truth_accuracy": truth.get((method, architecture), np.nan)})
    table = pd.DataFrame(rows)
    if table["truth_accuracy"].isna().all():
        table = table.drop(columns="truth_accuracy")
    first = table["architecture"].iloc[0]
    metrics = {
        (row.method if row.architecture == first else f"{row.method}@{row.architecture}"): {
            "mean_accuracy": round(row.mean_accuracy, 6), "ci95_low": round(row.ci95_low, 6),
            "ci95_high": round(row.ci95_high, 6), "n_annotators": int(row.n_annotators),
        }
        for row in table.itertuples()
    }
    markdown = accuracy_markdown(table, per_annotator, annotators)
    logger.info("test accuracy (mean over annotators, 95 %% interval):\n%s", markdown)
    return {"accuracy_table": table, "per_annotator": per_annotator, "metrics": metrics,
            "accuracy_markdown": markdown, "accuracy_plot": accuracy_bar_chart(table, per_annotator)}


def accuracy_markdown(table: pd.DataFrame, per_annotator: pd.DataFrame, annotators: list[str]) -> str:
    """The mean table, then (for up to ``MAX_MARKDOWN_ANNOTATORS``) each annotator's accuracy."""
    n_test = per_annotator.drop_duplicates("annotator_id").set_index("annotator_id")["n_test"]
    untested = int((n_test == 0).sum())
    lines = [
        "Mean test accuracy over annotators (each annotator scored on the test items they labelled) "
        "with its 95 % t-interval over annotators.",
        markdown_table(table),
        f"Test labels per annotator: min {n_test.min()}, median {n_test.median():g}, max {n_test.max()}"
        + (f"; {untested} annotators have none and are left out of the means." if untested else "."),
    ]
    if len(annotators) <= MAX_MARKDOWN_ANNOTATORS:
        wide = per_annotator.pivot_table(index=["architecture", "method"], columns="annotator_id", values="accuracy",
                                         sort=False, dropna=False).reindex(columns=annotators).reset_index()
        counts = pd.DataFrame([{"architecture": "", "method": "n test labels", **{a: float(n_test[a]) for a in annotators}}])
        lines += ["Per annotator:", markdown_table(pd.concat([wide, counts], ignore_index=True))]
    return "\n\n".join(lines) + "\n"


def accuracy_bar_chart(table: pd.DataFrame, per_annotator: pd.DataFrame) -> Figure:
    """Mean accuracy with its 95 % interval per method, and per-annotator accuracy (first architecture)."""
    first = table["architecture"].iloc[0]
    means = table[table["architecture"] == first]
    detail = per_annotator[per_annotator["architecture"] == first]
    annotators = list(dict.fromkeys(detail["annotator_id"]))
    show_annotators = len(annotators) <= 40
    figure = Figure(figsize=(max(7.0, 0.45 * len(annotators) + 4) if show_annotators else 6.0, 4.2), layout="constrained")
    axes = figure.subplots(1, 2, width_ratios=[1, 3]) if show_annotators else [figure.subplots()]
    x = np.arange(len(means))
    errors = np.vstack([means["mean_accuracy"] - means["ci95_low"], means["ci95_high"] - means["mean_accuracy"]])
    axes[0].bar(x, means["mean_accuracy"], yerr=errors, capsize=4, color=[f"C{k}" for k in x])
    axes[0].set_xticks(x, means["method"], rotation=30, ha="right")
    axes[0].set_ylim(0, 1)
    axes[0].set_ylabel("test accuracy (fraction correct)")
    axes[0].set_title("Mean over annotators ± 95 % CI", fontsize=9)
    if show_annotators:
        positions = np.arange(len(annotators))
        width = 0.8 / len(means)
        for k, (method, block) in enumerate(detail.groupby("method", sort=False)):
            values = block.set_index("annotator_id")["accuracy"].reindex(annotators)
            axes[1].bar(positions + (k - (len(means) - 1) / 2) * width, values, width, label=method, color=f"C{k}")
        axes[1].set_xticks(positions, annotators, rotation=45 if len(annotators) > 12 else 0)
        axes[1].set_ylim(0, 1)
        axes[1].set_title(f"Per annotator ({first})", fontsize=9)
        axes[1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    figure.suptitle("Per-annotator test accuracy by method")
    return figure


def attention_heatmap(frame_attention: pd.DataFrame) -> Figure:
    """Which frames each annotator's query attends to (``qumatl``), mean over test items."""
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.subplots()
    if frame_attention.empty:
        axes.text(0.5, 0.5, "no cross-attention: train 'qumatl' on a video folder to see it", ha="center", va="center")
        axes.set_axis_off()
        return figure
    first = frame_attention[(frame_attention["architecture"] == frame_attention["architecture"].iloc[0])
                            & (frame_attention["method"] == frame_attention["method"].iloc[0])]
    grid = first.pivot(index="annotator_id", columns="token", values="weight").reindex(first["annotator_id"].unique())
    image = axes.imshow(grid.to_numpy(), aspect="auto", cmap="magma")
    axes.set_yticks(range(len(grid)), grid.index)
    axes.set_xlabel("frame (token) index")
    axes.set_title(f"Cross-attention of each annotator's query ({first['method'].iloc[0]})")
    figure.colorbar(image, ax=axes, label="mean attention")
    return figure


def similarity_error(similarity: PairSimilarity, truth: pd.DataFrame) -> float:
    """Mean |S - S_true| over the off-diagonal pairs (``truth`` in the similarity's annotator order)."""
    off = ~np.eye(len(truth), dtype=bool)
    return float(np.nanmean(np.abs(similarity.to_dense() - truth.to_numpy(float))[off]))


def compare_similarities(
    crowd_folder: CrowdFolder, methods_params: dict, similarity: PairSimilarity, *final: PairSimilarity,
    methods: list[str],
) -> tuple[Figure, dict[str, float]]:
    """The initial similarity beside each method's final one (refined by confidence cycling, or
    estimated otherwise: ``similarity_estimator``), and beside the truth where the folder has
    ``true_similarity.csv``: one panel per distinct matrix. With a truth, also the errors (mean
    |S - S_true| over off-diagonal pairs) keyed ``initial``, ``refined`` (the first method with
    ``cycling``; ``refined@<method>`` for the others) and ``<method>``; {} without one. Apart
    from the accuracies, so that it runs beside ``evaluate_methods``."""
    truth = crowd_folder.true_similarity
    if truth is not None:
        truth = truth.reindex(index=similarity.annotator_ids, columns=similarity.annotator_ids)
    shown = heatmap_positions(similarity.n_annotators)  # panels are told apart on what they show
    initial = "initial (training labels)"
    matrices, errors, n_refined = {initial: similarity}, {}, 0
    for method, matrix in zip(methods, final, strict=True):
        if matrix.empty:  # the method trained with the initial similarity as it is
            continue
        same = next((t for t, m in matrices.items() if np.allclose(matrix.to_dense(shown), m.to_dense(shown))), None)
        if same == initial:
            continue
        cycling = bool((methods_params.get(method) or {}).get("cycling"))
        if same is None:
            matrices[f"{'after cycling' if cycling else 'estimated'}: {method}"] = matrix
        else:  # one panel per distinct matrix (e.g. two methods with the same estimator)
            matrices[f"{same}, {method}"] = matrices.pop(same)
        if truth is not None:
            key = ("refined" if n_refined == 0 else f"refined@{method}") if cycling else method
            errors[key] = round(similarity_error(matrix, truth), 6)
        n_refined += cycling
    if truth is not None:
        matrices["truth (true_similarity.csv)"] = truth
        errors = {"initial": round(similarity_error(similarity, truth), 6), **errors}
        logger.info("similarity error (mean |S - S_true| over pairs): %s", errors)
    return similarity_heatmaps(matrices), errors


def with_similarity_errors(metrics: dict, similarity_errors: dict[str, float]) -> dict:
    """``metrics`` with ``similarity_error`` (``compare_similarities``' errors) where there are any."""
    return {**metrics, "similarity_error": similarity_errors} if similarity_errors else metrics


def training_curves(training_history: pd.DataFrame) -> Figure:
    """Per method (first architecture): training loss and validation accuracy per epoch, and the
    imputations of each confidence-cycling epoch."""
    first = training_history[training_history["architecture"] == training_history["architecture"].iloc[0]]
    figure = Figure(figsize=(13, 3.8), layout="constrained")
    loss_axes, val_axes, imputed_axes = figure.subplots(1, 3)
    for k, (method, block) in enumerate(first.groupby("method", sort=False)):
        loss_axes.plot(block["epoch"], block["loss"], color=f"C{k}", label=method)
        val_axes.plot(block["epoch"], block["val_mean_accuracy"], color=f"C{k}", label=method)
        if block["imputed_total"].max() > 0:
            imputed_axes.plot(block["epoch"], block["imputed_this_cycle"], color=f"C{k}", label=f"{method}: this cycle")
            imputed_axes.plot(block["epoch"], block["imputed_total"], color=f"C{k}", linestyle="--", label=f"{method}: total")
    loss_axes.set(title="Training loss (CE + lambda KL)", xlabel="epoch", ylabel="loss per step (nats)")
    val_axes.set(title="Validation accuracy (mean over annotators)", xlabel="epoch", ylabel="accuracy (fraction)")
    imputed_axes.set(title="Confidence cycling: imputed labels", xlabel="epoch", ylabel="entries (count)")
    if not imputed_axes.lines:
        imputed_axes.text(0.5, 0.5, "no method with cycling", ha="center", va="center", transform=imputed_axes.transAxes)
    for axes in (loss_axes, val_axes, imputed_axes):
        if axes.lines:
            axes.legend(fontsize=7)
    figure.suptitle(f"Training curves ({first['architecture'].iloc[0]})")
    return figure
