"""Reference baselines: majority vote and Dawid-Skene EM, plus DS-based annotator predictions.

Shapes: N items, A annotators, C classes, E observed labels. ``y`` is an (N, A) int64 label
matrix with ``MISSING`` (-1) where an annotator did not label an item, or a ``LabelTable`` (the
same labels as a long table: no (N, A) array at all). Everything works on the observed (item,
annotator, label) triples, so the cost grows with E, not with N * A.

crowd-kit's ``DawidSkene`` is not used: crowd-kit 1.4.2 pulls transformers, huggingface_hub
and nltk into the environment.
"""

from __future__ import annotations

import sys

import numpy as np
from scipy.special import logsumexp

from simlabel.core.labels import MISSING, LabelTable, check_label_values

DS_INITS = ("majority",)


def _check_labels(y: np.ndarray | LabelTable, n_classes: int) -> np.ndarray | LabelTable:
    if int(n_classes) != n_classes or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer, got {n_classes}")
    if isinstance(y, LabelTable):
        check_label_values(y.labels, n_classes)
        return y
    y = np.asarray(y)
    if y.ndim != 2:
        raise ValueError(f"label matrix must be 2-D (items, annotators), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"label matrix must hold integers, got dtype {y.dtype}")
    check_label_values(y, n_classes)
    return y.astype(np.int64, copy=False)


def _observed(y: np.ndarray | LabelTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if isinstance(y, LabelTable):
        return y.items, y.annotators, y.labels
    items, annotators = np.nonzero(y != MISSING)
    return items, annotators, y[items, annotators]


def label_counts(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Votes per item and class.

    Parameters
    ----------
    y : (N, A) int label matrix, -1 = missing.
    n_classes : C.

    Returns
    -------
    counts : (N, C) int64, ``counts[i, c]`` = number of annotators who gave item i class c.
    """
    y = _check_labels(y, n_classes)
    items, _, labels = _observed(y)
    n = y.shape[0]
    return np.bincount(items * n_classes + labels, minlength=n * n_classes).reshape(n, n_classes)


def majority_vote(
    y: np.ndarray, n_classes: int, rng: np.random.Generator | int | None = None
) -> np.ndarray:
    """Most frequent observed label per item.

    Ties are broken uniformly at random among the tied classes, using ``rng`` (a Generator, or
    a seed for ``np.random.default_rng``; None means seed 0, so results are reproducible).

    Parameters
    ----------
    y : (N, A) int label matrix, -1 = missing.
    n_classes : C.
    rng : Generator, int seed or None.

    Returns
    -------
    (N,) int64 class per item, -1 for items nobody labelled.
    """
    counts = label_counts(y, n_classes)
    rng = (
        rng
        if isinstance(rng, np.random.Generator)
        else np.random.default_rng(0 if rng is None else rng)
    )
    tied = counts == counts.max(axis=1, keepdims=True)
    # A random key per (item, class); the largest key among the tied classes wins.
    keys = np.where(tied, rng.random(counts.shape), -1.0)
    votes = keys.argmax(axis=1).astype(np.int64)
    votes[counts.sum(axis=1) == 0] = MISSING
    return votes


def dawid_skene(
    y: np.ndarray,
    n_classes: int,
    n_iter: int = 100,
    tol: float = 1e-6,
    smoothing: float = 0.01,
    init: str = "majority",
    diagonal_prior: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dawid-Skene EM: latent true class per item, one confusion matrix per annotator.

    Computed in log space on the observed triples (no loop over items or annotators). The
    M-step adds ``smoothing`` pseudo-counts to every confusion cell and class-prior entry
    (a symmetric Dirichlet MAP), so annotators with few labels get well-defined rows. EM
    starts from the soft majority vote and stops when the mean log-likelihood per observed
    label improves by less than ``tol`` or after ``n_iter`` iterations. Items nobody labelled
    get the class prior as posterior (and do not enter the M-step).

    Parameters
    ----------
    y : (N, A) int label matrix, -1 = missing.
    n_classes : C.
    n_iter : maximum number of EM iterations (>= 1).
    tol : stopping tolerance on the mean log-likelihood per observed label.
    smoothing : Dirichlet pseudo-count (> 0) added to every confusion and prior cell.
    init : "majority" (soft majority vote: each item's vote fractions).
    diagonal_prior : extra pseudo-count on each confusion diagonal (>= 0): a Dirichlet prior
        that annotators are mostly right, so that the rows of true classes an annotator has
        (almost) never seen stay close to "correct" instead of uniform.

    Returns
    -------
    posteriors : (N, C) float64, p(true class | labels), rows sum to 1.
    confusions : (A, C, C) float64, ``pi[a, true, given]``, rows sum to 1.
    class_prior : (C,) float64.

    Raises
    ------
    ValueError
        On a non 2-D or non-integer label matrix, labels outside [0, C) other than -1, or bad
        parameters.
    """
    y = _check_labels(y, n_classes)
    _check_ds_options(init, n_iter, smoothing, diagonal_prior)
    observed = _DSObservations(y, n_classes)
    counts = label_counts(y, n_classes).astype(np.float64)
    posteriors = np.full((y.shape[0], n_classes), 1.0 / n_classes)
    posteriors[observed.labelled] = counts[observed.labelled] / counts[observed.labelled].sum(axis=1, keepdims=True)
    prev_ll = -np.inf
    for _ in range(n_iter):
        confusions, prior = _ds_m_step(observed, posteriors, smoothing, diagonal_prior)
        posteriors, ll = _ds_e_step(observed, confusions, prior)
        if ll - prev_ll < tol:
            break
        prev_ll = ll
    return posteriors, confusions, prior


def _check_ds_options(init: str, n_iter: int, smoothing: float, diagonal_prior: float) -> None:
    if init not in DS_INITS:
        raise ValueError(f"init must be one of {DS_INITS}, got {init!r}")
    if n_iter < 1:
        raise ValueError(f"n_iter must be >= 1, got {n_iter}")
    if not smoothing > 0:
        raise ValueError(f"smoothing must be > 0, got {smoothing}")
    if diagonal_prior < 0:
        raise ValueError(f"diagonal_prior must be >= 0, got {diagonal_prior}")


class _DSObservations:
    """The observed (item, annotator, label) triples of a label matrix and the flat indices of
    the two scatter-adds, one column per true class y: confusion cell (a, y, z), posterior (i, y)."""

    def __init__(self, y: np.ndarray, n_classes: int):
        self.n_items, self.n_annotators = y.shape
        self.n_classes = c = n_classes
        self.items, self.annotators, self.labels = _observed(y)
        self.labelled = np.bincount(self.items, minlength=self.n_items) > 0
        classes = np.arange(c)
        self.conf_index = ((self.annotators[:, None] * c + classes[None, :]) * c + self.labels[:, None]).ravel()
        self.post_index = (self.items[:, None] * c + classes[None, :]).ravel()


def _ds_m_step(obs: _DSObservations, posteriors, smoothing: float, diagonal_prior: float):
    """Expected confusion counts and class frequencies from the labelled items (MAP)."""
    c = obs.n_classes
    soft_counts = np.bincount(obs.conf_index, weights=posteriors[obs.items].ravel(), minlength=obs.n_annotators * c * c)
    soft_counts = soft_counts.reshape(obs.n_annotators, c, c) + smoothing + diagonal_prior * np.eye(c)
    prior = posteriors[obs.labelled].sum(axis=0) + smoothing
    return soft_counts / soft_counts.sum(axis=2, keepdims=True), prior / prior.sum()


def _ds_e_step(obs: _DSObservations, confusions, prior):
    """Posteriors log p(y) + sum over the item's labels of log pi[a, y, z], normalised, and the
    mean log-likelihood per observed label."""
    log_pi = np.log(confusions)
    log_joint = np.bincount(
        obs.post_index, weights=log_pi[obs.annotators, :, obs.labels].ravel(), minlength=obs.n_items * obs.n_classes
    ).reshape(obs.n_items, obs.n_classes) + np.log(prior)
    log_norm = logsumexp(log_joint, axis=1, keepdims=True)
    return np.exp(log_joint - log_norm), float(log_norm[obs.labelled].sum()) / max(len(obs.items), 1)


def annotator_predictions_from_truth(p_truth, confusions):
    """Each annotator's predicted label distribution from a true-class distribution.

    ``p(annotator a says z | x) = sum_y p(y | x) * pi[a, y, z]``: the Dawid-Skene baseline's
    per-annotator prediction, with ``p(y | x)`` from a classifier trained on DS posteriors.

    Parameters
    ----------
    p_truth : (M, C) numpy array or torch tensor, rows sum to 1.
    confusions : (A, C, C) of the same kind, ``pi[a, true, given]``, rows sum to 1.

    Returns
    -------
    (M, A, C), the same kind as the inputs (torch when ``p_truth`` is a tensor).
    """
    if p_truth.ndim != 2 or confusions.ndim != 3 or confusions.shape[1:] != (p_truth.shape[1],) * 2:
        raise ValueError(
            f"expected p_truth (M, C) and confusions (A, C, C), got {tuple(p_truth.shape)} "
            f"and {tuple(confusions.shape)}"
        )
    torch = sys.modules.get("torch")  # a tensor implies torch is loaded; numpy callers never load it
    if torch is not None and isinstance(p_truth, torch.Tensor):
        confusions = torch.as_tensor(confusions, dtype=p_truth.dtype, device=p_truth.device)
        return torch.einsum("my,ayz->maz", p_truth, confusions)
    return np.einsum("my,ayz->maz", np.asarray(p_truth), np.asarray(confusions))
