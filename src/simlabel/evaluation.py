"""The paper's evaluation protocol (SPEC section 7) as a library: many runs, one long table.

Every run (architecture, extra missing rate r, seed, method) contributes one row per annotator
with its number of test labels and of correct predictions, so macro / micro accuracy, per-
annotator tables, accuracy vs r and paired differences between methods are all derived from
the same table. Per seed, every method and every r share one item split; the labels removed
for r are drawn once per (seed, r) and shared by every method. Each run goes through
``experiment.run_method``, the same function the main pipeline's training node calls.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd

from simlabel.core.labels import remove_labels
from simlabel.core.metrics import mean_interval
from simlabel.core.similarity import similarity_from_params
from simlabel.experiment import Split, blend, run_method, score
from simlabel.methods import BLEND_KEY, Run
from simlabel.training.config import TrainConfig
from simlabel.training.loop import TrainingResult

logger = logging.getLogger(__name__)
RESULT_COLUMNS = ["architecture", "r", "seed", "method", "annotator", "n_test", "n_correct"]


def run_experiment(
    tokens: np.ndarray, labels: np.ndarray, item_ids, n_classes: int, runs: list[Run], training: dict,
    similarity_params: dict, split_fractions: dict, test_items=None, named: dict | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield one result table (``RESULT_COLUMNS``) per run, logging progress and ETA.
    ``test_items``: optional test panel passed to ``Split.draw`` (always test in every seed).
    A run whose overrides are ``{blend_of: [names]}`` blends its members (``experiment.blend``),
    trained in the same (seed, r) split: a member run earlier is reused, others are trained from
    ``named`` (name -> overrides of every method and crowd baseline)."""
    labels = np.asarray(labels, dtype=np.int64)
    members = {m for run in runs for m in run.overrides.get(BLEND_KEY, ())}
    started = time.perf_counter()
    current, trained = None, {}  # trained: blend members of the current (seed, r), by (architecture, name)

    def train(name: str, overrides: dict, run: Run) -> TrainingResult:
        if (run.architecture, name) not in trained:
            config = TrainConfig.from_params(
                training, {"min_overlap": similarity_params["min_overlap"]}, overrides,
                {"seed": run.seed, "architecture": run.architecture, "run_name": f"{name} seed {run.seed}"},
            )
            result = run_method(tokens, y, split, similarity, n_classes, config)
            if name not in members:
                return result
            trained[run.architecture, name] = result
        return trained[run.architecture, name]

    for k, run in enumerate(runs, start=1):
        if current != (run.seed, run.r):  # one split and one label removal per (seed, r), shared by every method
            current, trained = (run.seed, run.r), {}
            split = Split.draw(item_ids, split_fractions, run.seed, test_items=test_items)
            y = remove_labels(labels, split.train, run.r, run.seed) if run.r else labels
            similarity = similarity_from_params(split.labels_of(y, "train"), n_classes, similarity_params)
        t0 = time.perf_counter()
        if BLEND_KEY in run.overrides:
            result = blend([train(m, (named or {})[m], run) for m in run.overrides[BLEND_KEY]])
        else:
            result = train(run.method, run.overrides, run)
        n_test, n_correct = score(result, labels, split)
        macro = np.mean(n_correct[n_test > 0] / n_test[n_test > 0])
        elapsed = time.perf_counter() - started
        logger.info(
            "run %d/%d  %s r=%.2f seed %d %-28s macro acc %.3f  (%.1fs, ETA %.0fs)",
            k, len(runs), run.architecture, run.r, run.seed, run.method, macro,
            time.perf_counter() - t0, elapsed / k * (len(runs) - k),
        )
        yield pd.DataFrame(
            {"architecture": run.architecture, "r": run.r, "seed": run.seed, "method": run.method,
             "annotator": np.arange(labels.shape[1]), "n_test": n_test, "n_correct": n_correct},
            columns=RESULT_COLUMNS,
        )


# ---- summaries ------------------------------------------------------------------------------
def per_run_accuracy(results: pd.DataFrame) -> pd.DataFrame:
    """Macro (mean over annotators with test labels) and micro (label-weighted) accuracy per run."""
    scored = results[results["n_test"] > 0]
    keys = ["architecture", "r", "seed", "method"]
    grouped = scored.assign(acc=scored["n_correct"] / scored["n_test"]).groupby(keys, sort=False)
    return pd.DataFrame(
        {"macro": grouped["acc"].mean(), "micro": grouped["n_correct"].sum() / grouped["n_test"].sum()}
    ).reset_index()


def paired_differences(per_run: pd.DataFrame, reference: str, metric: str = "macro") -> pd.DataFrame:
    """Seed-by-seed difference of each method against ``reference``: mean and 95 % t-interval."""
    wide = per_run.pivot_table(index=["architecture", "r", "seed"], columns="method", values=metric)
    rows = []
    for (architecture, r), block in wide.groupby(level=["architecture", "r"]):
        if reference not in block:
            continue
        for method in block.columns:
            if method == reference or block[method].isna().all():
                continue
            diff = (block[method] - block[reference]).dropna()
            interval = mean_interval(diff)
            rows.append({"architecture": architecture, "r": r, "method": method, "vs": reference,
                         "mean_difference": interval["mean"], "ci95_low": interval["ci95_low"] if len(diff) > 1 else np.nan,
                         "ci95_high": interval["ci95_high"] if len(diff) > 1 else np.nan,
                         "wins": int((diff > 0).sum()), "seeds": len(diff)})
    return pd.DataFrame(rows)
