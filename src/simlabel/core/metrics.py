"""Per-annotator accuracy, the paper's metric (SPEC section 7)."""

from __future__ import annotations

import numpy as np

from simlabel.core.labels import MISSING


def per_annotator_accuracy(predicted: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each annotator's accuracy on the entries that annotator labelled.

    Parameters
    ----------
    predicted : (N, A) predicted class per entry.
    labels : (N, A) labels, ``MISSING`` = -1 (those entries are not scored).

    Returns
    -------
    accuracy : (A,) float, NaN for annotators without labels.
    n_labels : (A,) int, labels scored per annotator.
    """
    labels = np.asarray(labels)
    scored = labels != MISSING
    n_labels = scored.sum(0)
    correct = ((np.asarray(predicted) == labels) & scored).sum(0)
    return accuracy_from_counts(correct, n_labels), n_labels


def accuracy_from_counts(correct: np.ndarray, n_labels: np.ndarray) -> np.ndarray:
    """(A,) ``correct / n_labels``, NaN where an annotator has no label."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n_labels > 0, correct / n_labels, np.nan)


def mean_accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    """Mean over annotators with at least one label of their accuracy (NaN if none)."""
    return mean_of_annotators(*per_annotator_accuracy(predicted, labels))


def mean_of_annotators(accuracy: np.ndarray, n_labels: np.ndarray) -> float:
    """Mean of the (A,) accuracies over annotators with a label (NaN if none has one)."""
    return float(np.nanmean(accuracy)) if (n_labels > 0).any() else float("nan")


def mean_interval(values, confidence: float = 0.95) -> dict[str, float]:
    """Mean of ``values`` (NaNs dropped) with its t-interval: ``{mean, ci95_low, ci95_high, n}``.

    With fewer than two values the interval is the mean itself (no spread to estimate)."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    n = values.size
    if n == 0:
        return {"mean": float("nan"), "ci95_low": float("nan"), "ci95_high": float("nan"), "n": 0}
    mean = float(values.mean())
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * values.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
    return {"mean": mean, "ci95_low": mean - half, "ci95_high": mean + half, "n": int(n)}
