"""The paper's evaluation protocol (SPEC section 7) as a library: many runs, one long table.

Every run (architecture, extra missing rate r, seed, method) contributes one row per annotator
with its number of test labels and of correct predictions, so macro / micro accuracy, per-
annotator tables, accuracy vs r and paired differences between methods are all derived from
the same table. Per seed, every method and every r share one item split; the labels removed
for r are drawn once per (seed, r) and shared by every method.

Methods:
- ``skip`` / ``simlabel`` / ``simlabel_confidence``: the training loop with lambda = 0 / 1 / 1
  and confidence cycling;
- ``consensus``: one classifier trained on the training items' majority-vote labels predicts
  that class for every annotator;
- ``dawid_skene``: Dawid-Skene EM on the training labels gives class posteriors and
  per-annotator confusions; a classifier trained on the posteriors gives p(y|x), and annotator
  a's prediction is argmax_z sum_y p(y|x) pi_a[y, z];
- any extra variants (``variants``: name -> training overrides, e.g. another soft-label
  source), and the threshold / confidence-formula ablation (``ablation``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from simlabel.core.baselines import annotator_predictions_from_truth, dawid_skene, majority_vote
from simlabel.core.kappa import kappa_matrix
from simlabel.core.labels import MISSING, remove_labels, split_items
from simlabel.training.loop import TrainConfig, predict_labels, train_annotator_models

logger = logging.getLogger(__name__)
RESULT_COLUMNS = ["architecture", "r", "seed", "method", "annotator", "n_test", "n_correct"]
BASELINES = ("consensus", "dawid_skene")


@dataclass
class Run:
    architecture: str
    r: float
    seed: int
    method: str
    overrides: dict


def plan_runs(architectures, rates, seeds, variants: dict, ablation: dict | None) -> list[Run]:
    """Every run of an experiment; baselines once per (r, seed), under the first architecture."""
    runs = []
    for seed in seeds:
        for r in rates:
            runs += [Run(architectures[0], r, seed, name, {}) for name in BASELINES]
            for architecture in architectures:
                runs += [Run(architecture, r, seed, name, overrides) for name, overrides in variants.items()]
    if ablation:
        for seed in seeds[: ablation["seeds"]]:
            for threshold in ablation["thresholds"]:
                for formula in ablation["formulas"]:
                    if threshold != ablation["default_threshold"] and formula != ablation["default_formula"]:
                        continue  # one factor at a time, as the paper's Table 5
                    overrides = {"cycling": True, "threshold": threshold, "confidence_formula": formula}
                    runs.append(Run(architectures[0], 0.0, seed, f"ablation:T={threshold}:{formula}", overrides))
    return runs


def _split(item_ids, fractions, seed):
    split = split_items(item_ids, fractions, seed)["split"].to_numpy()
    return split == "train", split == "val", split == "test"


def _score(predicted: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scored = labels != MISSING
    return scored.sum(0), ((predicted == labels) & scored).sum(0)


def _train_classifier(tokens, targets_hard, soft, train, val, n_classes, config) -> torch.nn.Module:
    """A one-'annotator' model: trained on hard labels (consensus) or soft targets (DS)."""
    labels = targets_hard[:, None]
    soft_targets = None if soft is None else np.where(train[:, None], soft, 0.0)[:, None, :]
    train_labels = labels if soft is None else np.where(val[:, None], labels, MISSING)
    result = train_annotator_models(
        tokens, train_labels, train, val, np.zeros((1, 1)), n_classes,
        TrainConfig.from_params(config, {"unlabeled_weight": 1.0 if soft is not None else 0.0, "cycling": False}),
        soft_targets=soft_targets,
    )
    return result.model


def baseline_predictions(
    method, tokens, y_train, y_val, train, val, test, n_classes, config, seed, ds_diagonal_prior=1.0
) -> np.ndarray:
    """(n_test, A) predictions of a crowd baseline for every annotator."""
    rows = np.flatnonzero(test)
    x_test = torch.from_numpy(np.ascontiguousarray(tokens[rows]))
    votes_val = majority_vote(y_val, n_classes, rng=seed)
    if method == "consensus":
        votes = np.where(train, majority_vote(y_train, n_classes, rng=seed), np.where(val, votes_val, MISSING))
        model = _train_classifier(tokens, votes, None, train, val, n_classes, config)
        predicted = predict_labels(model, x_test, np.arange(len(rows)))[:, 0]
        return np.repeat(predicted[:, None], y_train.shape[1], axis=1)
    posteriors, confusions, _ = dawid_skene(
        np.where(train[:, None], y_train, MISSING), n_classes, diagonal_prior=ds_diagonal_prior
    )
    model = _train_classifier(tokens, np.where(val, votes_val, MISSING), posteriors, train, val, n_classes, config)
    with torch.no_grad():
        p_truth = model.eval()(x_test)[:, 0].exp().numpy().astype(np.float64)
    return annotator_predictions_from_truth(p_truth, confusions).argmax(-1)


def run_experiment(
    tokens: np.ndarray,
    labels: np.ndarray,
    item_ids,
    n_classes: int,
    runs: list[Run],
    training: dict,
    min_overlap: int,
    split_fractions: dict,
    ds_diagonal_prior: float = 1.0,
) -> Iterator[pd.DataFrame]:
    """Yield one result table (``RESULT_COLUMNS``) per run, logging progress and ETA."""
    labels = np.asarray(labels, dtype=np.int64)
    n_annotators = labels.shape[1]
    started = time.perf_counter()
    cache: dict = {}
    for k, run in enumerate(runs, start=1):
        key = (run.seed, run.r)
        if key not in cache:  # one split and one label removal per (seed, r), shared by every method
            train, val, test = _split(item_ids, split_fractions, run.seed)
            y = remove_labels(labels, train, run.r, run.seed) if run.r else labels
            y_train = np.where(train[:, None], y, MISSING)
            cache = {key: (train, val, test, y, kappa_matrix(y_train, n_classes, min_overlap))}
        train, val, test, y, similarity = cache[key]
        config = {**training, "seed": run.seed, "architecture": run.architecture, "min_overlap": min_overlap}
        t0 = time.perf_counter()
        if run.method in BASELINES:
            predicted = baseline_predictions(
                run.method, tokens, np.where(train[:, None], y, MISSING), np.where(val[:, None], y, MISSING),
                train, val, test, n_classes, config, run.seed, ds_diagonal_prior,
            )
        else:
            result = train_annotator_models(
                tokens, y, train, val, similarity, n_classes, TrainConfig.from_params(config, run.overrides)
            )
            predicted = predict_labels(result.model, result.inputs, np.flatnonzero(test))
        n_test, n_correct = _score(predicted, labels[test])
        macro = np.mean(n_correct[n_test > 0] / n_test[n_test > 0])
        elapsed = time.perf_counter() - started
        logger.info(
            "run %d/%d  %s r=%.2f seed %d %-28s macro acc %.3f  (%.1fs, ETA %.0fs)",
            k, len(runs), run.architecture, run.r, run.seed, run.method, macro,
            time.perf_counter() - t0, elapsed / k * (len(runs) - k),
        )
        yield pd.DataFrame(
            {"architecture": run.architecture, "r": run.r, "seed": run.seed, "method": run.method,
             "annotator": np.arange(n_annotators), "n_test": n_test, "n_correct": n_correct},
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
    from scipy import stats

    wide = per_run.pivot_table(index=["architecture", "r", "seed"], columns="method", values=metric)
    rows = []
    for (architecture, r), block in wide.groupby(level=["architecture", "r"]):
        for method in block.columns:
            if method == reference or block[method].isna().all() or reference not in block:
                continue
            diff = (block[method] - block[reference]).dropna()
            n = len(diff)
            half = stats.t.ppf(0.975, n - 1) * diff.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
            rows.append({"architecture": architecture, "r": r, "method": method, "vs": reference,
                         "mean_difference": diff.mean(), "ci95_low": diff.mean() - half, "ci95_high": diff.mean() + half,
                         "wins": int((diff > 0).sum()), "seeds": n})
    return pd.DataFrame(rows)
