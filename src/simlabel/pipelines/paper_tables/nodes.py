"""The paper's tables for one data folder: Skip / SimLabel / SimLabel + confidence against
crowd baselines, over architectures, extra missing rates r and seeds (SPEC section 7)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from simlabel.core.labels import LabelTable
from simlabel.evaluation import paired_differences, per_run_accuracy, run_experiment
from simlabel.folder import CrowdFolder
from simlabel.methods import blend_members, plan_runs
from simlabel.reports import MAX_MARKDOWN_ANNOTATORS

logger = logging.getLogger(__name__)


def run_paper_experiments(
    embeddings: np.ndarray, labels_full: pd.DataFrame, classes: list, crowd_folder: CrowdFolder, params: dict,
    training: dict, similarity: dict, methods: dict, crowd_baselines: dict,
) -> pd.DataFrame:
    """Every run of the experiment; one row per (architecture, r, seed, method, annotator).

    ``methods`` is the main pipeline's list (parameters_methods.yml); ``crowd_baselines`` are
    added once per (r, seed). A blend (``blend_of``) reuses its members' runs of the same split.
    ``labels_full``: the long label table (``LabelTable.to_frame``); the runs read its matrix."""
    blend_members(methods, crowd_baselines)  # a malformed blend fails before hours of runs
    # Many short runs: no per-epoch state files, one architecture per run.
    training = {k: v for k, v in training.items() if k not in ("architectures", "state_dir")} | params.get("training", {})
    seeds = list(range(params["seeds"]))
    ablation = params.get("ablation") or None
    runs = plan_runs(params["architectures"], params["extra_missing"], seeds, methods, crowd_baselines, ablation)
    table = LabelTable.from_frame(labels_full)
    logger.info("paper tables: %d runs on %d items x %d annotators", len(runs), *table.shape)
    tokens = np.asarray(embeddings, dtype=np.float32)
    tokens = tokens[:, None, :] if tokens.ndim == 2 else tokens
    results = pd.concat(
        run_experiment(
            tokens, table.to_numpy(), table.item_ids, len(classes), runs, training,
            similarity, params["split_fractions"], test_items=crowd_folder.test_panel(table.item_ids),
            named={**crowd_baselines, **methods},
        ),
        ignore_index=True,
    )
    results["annotator_id"] = table.annotator_ids.to_numpy()[results["annotator"]]
    return results.drop(columns="annotator")


def summarise_paper_tables(results: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, dict, str, Figure]:
    """Table 2/3 (per annotator, r = 0), Table 4 (accuracy vs r), Table 5 (ablation), paired
    differences, the DVC metrics dict, all of it as Markdown, and the accuracy-vs-r plot."""
    main = results[~results["method"].str.startswith("ablation:")]
    per_run = per_run_accuracy(main)
    methods = list(dict.fromkeys(main["method"]))

    # Table 2/3: each annotator's accuracy pooled over seeds at r = 0, macro / micro per seed.
    at_zero = main[main["r"] == main["r"].min()]
    pooled = at_zero.groupby(["architecture", "method", "annotator_id"], sort=False)[["n_correct", "n_test"]].sum()
    table2 = (pooled["n_correct"] / pooled["n_test"].replace(0, np.nan)).unstack("annotator_id")
    annotators = list(dict.fromkeys(at_zero["annotator_id"]))
    table2 = table2[annotators]
    zero_runs = per_run[per_run["r"] == per_run["r"].min()].groupby(["architecture", "method"], sort=False)
    table2["macro"] = zero_runs["macro"].mean()
    table2["macro_std"] = zero_runs["macro"].std(ddof=1)
    table2["micro"] = zero_runs["micro"].mean()
    table2 = table2.reindex(pd.MultiIndex.from_tuples([(a, m) for a in dict.fromkeys(main["architecture"]) for m in methods if (a, m) in table2.index])).rename_axis(["architecture", "method"]).reset_index()
    n_test = at_zero[at_zero["seed"] == at_zero["seed"].min()].drop_duplicates("annotator_id").set_index("annotator_id")["n_test"]

    # Table 4: macro accuracy vs r, mean ± std over seeds.
    by_r = per_run.groupby(["architecture", "method", "r"], sort=False)["macro"]
    table4 = by_r.agg(["mean", "std", "count"]).reset_index()

    # Table 5: confidence threshold and formula (ablation runs).
    ablation = results[results["method"].str.startswith("ablation:")]
    table5 = pd.DataFrame(columns=["threshold", "formula", "mean", "std", "count"])
    if not ablation.empty:
        runs5 = per_run_accuracy(ablation)
        parts = runs5["method"].str.split(":", expand=True)
        runs5 = runs5.assign(threshold=parts[1].str.removeprefix("T=").astype(float), formula=parts[2])
        table5 = runs5.groupby(["threshold", "formula"])["macro"].agg(["mean", "std", "count"]).reset_index()

    # Against no soft labels, the paper's method and the two crowd baselines.
    references = [ref for ref in ("skip", "simlabel", "dawid_skene", "consensus") if ref in methods]
    paired = pd.concat([paired_differences(per_run, ref) for ref in references], ignore_index=True) if references else pd.DataFrame()

    metrics = {
        architecture: {
            f"r={r:g}": {m: block[block["method"] == m].sort_values("seed")["macro"].round(6).tolist() for m in methods if m in set(block["method"])}
            for r, block in arch_runs.groupby("r")
        }
        for architecture, arch_runs in per_run.groupby("architecture", sort=False)
    }
    markdown = _markdown(table2, table4, table5, paired, n_test, annotators)
    logger.info("paper tables:\n%s", markdown)
    return table2, table4, table5, paired, metrics, markdown, accuracy_vs_r_plot(table4)


def _markdown(table2, table4, table5, paired, n_test, annotators) -> str:
    shown2 = table2.drop(columns=annotators) if len(annotators) > MAX_MARKDOWN_ANNOTATORS else table2
    sections = [
        "## Per-annotator test accuracy at r = 0 (Table 2/3 shape; pooled over seeds; macro = mean over annotators, mean and std over seeds; micro = label-weighted)",
        shown2.to_markdown(index=False, floatfmt=".3f"),
        f"Test labels per annotator (first seed): min {n_test.min()}, median {n_test.median():g}, max {n_test.max()}"
        + (f"; {int((n_test == 0).sum())} of {n_test.size} annotators have none and are left out of the macro means."
           if (n_test == 0).any() else "."),
        "## Macro accuracy vs extra missing rate r (Table 4 shape; mean ± std over seeds)",
        table4.assign(cell=[_cell(m, s) for m, s in zip(table4["mean"], table4["std"], strict=True)])
        .pivot_table(index=["architecture", "method"], columns="r", values="cell", aggfunc="first", sort=False)
        .rename(columns=lambda r: f"r={r:g}").reset_index().to_markdown(index=False),
        "## Paired differences, seed by seed (mean and 95 % t-interval of the macro accuracy difference)",
        paired.to_markdown(index=False, floatfmt=".3f") if not paired.empty else "(no pairs)",
    ]
    if not table5.empty:
        sections += ["## Confidence threshold and formula (Table 5 shape; r = 0)", table5.to_markdown(index=False, floatfmt=".3f")]
    return "\n\n".join(sections) + "\n"


def _cell(mean: float, std: float) -> str:
    return f"{mean:.3f}" if np.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def accuracy_vs_r_plot(table4: pd.DataFrame) -> Figure:
    """Macro accuracy against the extra missing rate, one line per (architecture, method)."""
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axes = figure.subplots()
    for (architecture, method), block in table4.groupby(["architecture", "method"], sort=False):
        axes.errorbar(block["r"] * 100, block["mean"], yerr=block["std"].fillna(0), marker="o", capsize=3,
                      label=f"{architecture} - {method}" if table4["architecture"].nunique() > 1 else method)
    axes.set_xlabel("extra missing labels r (% of the observed training labels)")
    axes.set_ylabel("macro per-annotator test accuracy")
    axes.set_title("Accuracy vs extra missing labels (mean ± std over seeds)")
    axes.legend(fontsize=8)
    return figure


def paired_differences_plot(paired: pd.DataFrame) -> Figure:
    """Forest plot of the paired differences at the lowest r, first architecture: one panel per
    reference (skip, simlabel, dawid_skene, consensus), each method's mean difference with its 95 % interval;
    an interval clear of the zero line is a difference the seeds agree on."""
    references = list(dict.fromkeys(paired["vs"])) if not paired.empty else []
    n_rows = len(set(paired["method"]) | set(references))
    figure = Figure(figsize=(4.2 * max(len(references), 1), 0.45 * n_rows + 1.6), layout="constrained")
    if not references:
        figure.text(0.5, 0.5, "no paired differences (one seed?)", ha="center")
        return figure
    shown = paired[(paired["architecture"] == paired["architecture"].iloc[0]) & (paired["r"] == paired["r"].min())]
    # One row per method in every panel (shared axis); a method has no point against itself.
    methods = list(dict.fromkeys([*shown["method"], *references]))[::-1]
    row = {method: k for k, method in enumerate(methods)}
    panels = np.atleast_1d(figure.subplots(1, len(references), sharey=True))
    for axes, reference in zip(panels, references, strict=True):
        block = shown[shown["vs"] == reference]
        rows = block["method"].map(row).to_numpy()
        clear = (block["ci95_low"] > 0) | (block["ci95_high"] < 0)
        axes.errorbar(block["mean_difference"], rows, capsize=3, fmt="none", ecolor="0.4",
                      xerr=[block["mean_difference"] - block["ci95_low"], block["ci95_high"] - block["mean_difference"]])
        axes.scatter(block["mean_difference"], rows, c=np.where(clear, "C0", "0.6"), zorder=3)
        axes.axvline(0.0, color="k", linewidth=0.8)
        axes.set_title(f"minus {reference}", fontsize=10)
        axes.set_xlabel("macro accuracy difference")
    panels[0].set_yticks(np.arange(len(methods)), methods)
    figure.suptitle(f"Paired over {int(shown['seeds'].max())} seeds: mean and 95 % interval (blue: clear of 0)", fontsize=10)
    return figure

