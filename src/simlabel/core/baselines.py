"""Reference baselines: majority vote and Dawid-Skene EM, plus DS-based annotator predictions.

Shapes: N items, A annotators, C classes, E observed labels. ``y`` is an (N, A) int64 label
matrix with ``MISSING`` (-1) where an annotator did not label an item. Everything works on
the observed (item, annotator, label) triples, so the cost grows with E, not with N * A.

crowd-kit's ``DawidSkene`` is not used: crowd-kit 1.4.2 pulls transformers, huggingface_hub
and nltk into the environment.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import logsumexp

from simlabel.core.labels import MISSING

DS_INITS = ("majority",)


def _check_labels(y: np.ndarray, n_classes: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 2:
        raise ValueError(f"label matrix must be 2-D (items, annotators), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"label matrix must hold integers, got dtype {y.dtype}")
    if int(n_classes) != n_classes or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer, got {n_classes}")
    bad = (y != MISSING) & ((y < 0) | (y >= n_classes))
    if bad.any():
        i, a = np.argwhere(bad)[0]
        raise ValueError(
            f"labels must be in [0, {n_classes - 1}] or {MISSING} (missing); "
            f"got {y[i, a]} for item {i}, annotator {a}"
        )
    return y.astype(np.int64, copy=False)


def _observed(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    if init not in DS_INITS:
        raise ValueError(f"init must be one of {DS_INITS}, got {init!r}")
    if n_iter < 1:
        raise ValueError(f"n_iter must be >= 1, got {n_iter}")
    if not smoothing > 0:
        raise ValueError(f"smoothing must be > 0, got {smoothing}")
    if diagonal_prior < 0:
        raise ValueError(f"diagonal_prior must be >= 0, got {diagonal_prior}")
    n_items, n_annotators = y.shape
    c = n_classes
    items, annotators, labels = _observed(y)
    classes = np.arange(c)
    labelled = np.bincount(items, minlength=n_items) > 0

    # Flat indices for the two scatter-adds, one column per true class y:
    # confusion cell (a, y, z) and posterior cell (i, y).
    conf_index = ((annotators[:, None] * c + classes[None, :]) * c + labels[:, None]).ravel()
    post_index = (items[:, None] * c + classes[None, :]).ravel()

    counts = label_counts(y, c).astype(np.float64)
    posteriors = np.full((n_items, c), 1.0 / c)
    posteriors[labelled] = counts[labelled] / counts[labelled].sum(axis=1, keepdims=True)

    prev_ll = -np.inf
    n_obs = max(len(items), 1)
    for _ in range(n_iter):
        # M-step: expected confusion counts and class frequencies from the labelled items.
        soft_counts = np.bincount(
            conf_index, weights=posteriors[items].ravel(), minlength=n_annotators * c * c
        )
        soft_counts = soft_counts.reshape(n_annotators, c, c) + smoothing + diagonal_prior * np.eye(c)
        confusions = soft_counts / soft_counts.sum(axis=2, keepdims=True)
        prior = posteriors[labelled].sum(axis=0) + smoothing
        prior /= prior.sum()

        # E-step: log p(y) + sum over the item's labels of log pi[a, y, z], normalised.
        log_pi = np.log(confusions)
        log_joint = np.bincount(
            post_index, weights=log_pi[annotators, :, labels].ravel(), minlength=n_items * c
        ).reshape(n_items, c) + np.log(prior)
        log_norm = logsumexp(log_joint, axis=1, keepdims=True)
        posteriors = np.exp(log_joint - log_norm)

        ll = float(log_norm[labelled].sum()) / n_obs
        if ll - prev_ll < tol:
            break
        prev_ll = ll
    return posteriors, confusions, prior


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
    if isinstance(p_truth, torch.Tensor):
        confusions = torch.as_tensor(confusions, dtype=p_truth.dtype, device=p_truth.device)
        return torch.einsum("my,ayz->maz", p_truth, confusions)
    return np.einsum("my,ayz->maz", np.asarray(p_truth), np.asarray(confusions))
