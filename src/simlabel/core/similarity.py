"""Annotator similarity estimators, and the expected kappa of annotators with known confusions.

Shapes: N items, A annotators, C classes. ``y`` is an (N, A) int64 label matrix with
``MISSING`` (-1) where an annotator did not label an item.

Every estimator in :data:`SIMILARITY_ESTIMATORS` has the signature
``estimator(y, n_classes, **options) -> PairSimilarity``: an (A, A) similarity, symmetric, in
[0, 1], zero diagonal (the diagonal is not used, as in :func:`simlabel.core.kappa.kappa_matrix`),
held as the values of the pairs with evidence and the estimator's prior for the others
(:mod:`simlabel.core.pair_similarity`: O(co-labelling pairs + A) memory, never O(A^2)).
``np.asarray`` or ``.to_dense()`` gives the matrix.

- ``kappa``: the paper's Cohen's kappa on each pair's overlap (0 without enough overlap).
- ``shrunk_kappa``: each pair's kappa shrunk towards a prior, with the overlap as evidence; pairs
  without overlap get the prior.
- ``ds_implied``: the kappa implied by Dawid-Skene per-annotator confusions and class prior;
  defined for every pair, overlap or not.

Every estimator accepts ``min_overlap`` (those that do not use it ignore it), so a caller can
pass the same options whichever estimator is selected.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable

import numpy as np
import pandas as pd

from simlabel.core.baselines import dawid_skene
from simlabel.core.kappa import complete_kappa, observed_entries
from simlabel.core.labels import LabelTable, matrix_or_table
from simlabel.core.pair_similarity import PairSimilarity, kappa_from_rates
from simlabel.core.sparse_kappa import _symmetric, colabel_pair_statistics, pairwise_kappa

SHRINK_PRIORS = ("global", "annotator", "dawid_skene")


def expected_kappa(confusions: np.ndarray, prior: np.ndarray, clip: bool = True) -> np.ndarray:
    """Population Cohen's kappa of every annotator pair from their confusions and the class prior.

    For annotators j, k whose labels are independent given the true class y:
    ``p_o = sum_y pi_y sum_z P_j[y, z] P_k[y, z]``; marginals ``q_j(z) = sum_y pi_y P_j[y, z]``;
    ``p_e = sum_z q_j(z) q_k(z)``; ``kappa = (p_o - p_e) / (1 - p_e)`` -- the limit of the sample
    kappa (``sklearn.metrics.cohen_kappa_score``) of the two on many co-labelled items.

    Parameters
    ----------
    confusions : (A, C, C), ``P[a, true, given]``, rows sum to 1.
    prior : (C,) class prior, sums to 1.
    clip : clip at 0 (and 1) like the project's kappa; False keeps negative values.

    Returns
    -------
    (A, A) float64, symmetric. Entry (j, j) is the formula for two independent labels of the
    same annotator (its test-retest agreement), not 1: callers set the diagonal they need.
    p_e = 1 gives 1 if p_o = 1 else 0, as in :mod:`simlabel.core.kappa`.
    """
    confusions, prior = (
        np.asarray(confusions, dtype=np.float64),
        np.asarray(prior, dtype=np.float64),
    )
    if confusions.ndim != 3 or confusions.shape[1:] != (prior.size, prior.size) or prior.ndim != 1:
        raise ValueError(
            f"expected confusions (A, C, C) and prior (C,), got {confusions.shape} and {prior.shape}"
        )
    p_o = np.einsum("y,jyz,kyz->jk", prior, confusions, confusions)
    marginals = np.einsum("y,ayz->az", prior, confusions)  # (A, C)
    p_e = marginals @ marginals.T
    return kappa_from_rates(p_o, p_e, clip)


def kappa(y: np.ndarray, n_classes: int, min_overlap: int = 1) -> PairSimilarity:
    """The paper's similarity: :func:`simlabel.core.kappa.kappa_matrix` (SPEC section 1).

    Parameters
    ----------
    y : (N, A) int64, ``MISSING`` = -1, or a ``LabelTable`` of the same labels.
    n_classes : C.
    min_overlap : pairs that co-labelled fewer items get 0.

    Returns
    -------
    ``PairSimilarity``: the pairs with a positive kappa, prior 0 (as (A, A): symmetric, in
    [0, 1], zero diagonal). Computed from the observed entries alone
    (``sparse_kappa.pairwise_kappa``: only pairs that co-labelled an item are touched;
    bit-identical to ``kappa_matrix``).
    """
    y = matrix_or_table(y)
    items, annotators, labels = observed_entries(y, n_classes)
    matrix = pairwise_kappa(items, annotators, labels, *y.shape, n_classes, max(min_overlap, 1)).tocsr()
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return PairSimilarity(y.shape[1], _pair_keys_of(matrix), matrix.data, annotator_ids=_ids(y))


def _pair_keys_of(matrix) -> np.ndarray:
    """The sorted pair keys ``j * A + k`` of a canonical (A, A) CSR matrix's stored entries."""
    n_annotators = matrix.shape[0]
    return np.repeat(np.arange(n_annotators, dtype=np.int64), np.diff(matrix.indptr)) * n_annotators + matrix.indices


def _ids(y) -> pd.Index | None:
    """The annotator ids of a ``LabelTable`` (a bare matrix has none)."""
    return y.annotator_ids if isinstance(y, LabelTable) else None


def _pair_kappas(y: np.ndarray, n_classes: int, min_overlap: int):
    """Per ordered pair with evidence (co-labelled at least ``max(min_overlap, 1)`` items), both
    orders: sorted pair keys ``j * A + k``, unclipped kappa, evidence (the overlap) and the
    per-item sampling variance ``p_o (1 - p_o) / (1 - p_e)^2`` (Cohen 1960: Var(kappa) ~ that /
    overlap). From the long table's co-labels alone (``sparse_kappa``: never N * A or A * A)."""
    y = matrix_or_table(y)
    n_items, n_annotators = y.shape
    stats = colabel_pair_statistics(*observed_entries(y, n_classes), n_items, n_annotators, n_classes, max(min_overlap, 1))
    overlap = stats.overlap.astype(np.float64)
    p_o, p_e = stats.agree / overlap, stats.expected / overlap**2
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = np.nan_to_num(p_o * (1 - p_o) / (1 - p_e) ** 2, nan=0.0, posinf=0.0)
    raw, weight, spread = _symmetric(stats.first, stats.second, n_annotators,
                                     kappa_from_rates(p_o, p_e, clip=False), overlap, spread)
    return _pair_keys_of(raw), raw.data, weight.data, spread.data


def _auto_tau(raw: np.ndarray, weight: np.ndarray, spread: np.ndarray, mu: float) -> float:
    """Empirical-Bayes prior weight ``tau = sigma^2 / V`` in items (method of moments).

    ``sigma^2``: overlap-weighted mean per-item sampling variance of the pairs' kappas;
    ``V``: variance of the true kappas around ``mu``, the observed variance of the kappas
    minus its sampling part ``sigma^2 * mean(1 / n)`` (floored at 1e-4: all noise -> large tau).
    """
    has = weight > 0
    if not has.any():
        return 0.0
    n = weight[has]
    sigma2 = float((n * spread[has]).sum() / n.sum())
    between = float(((raw[has] - mu) ** 2).mean() - sigma2 * (1.0 / n).mean())
    return sigma2 / max(between, 1e-4)


def shrunk_kappa(
    y: np.ndarray,
    n_classes: int,
    tau: float | str = "auto",
    min_overlap: int = 1,
    prior: str = "annotator",
) -> np.ndarray:
    """Each pair's kappa shrunk towards a prior, with the pair's overlap as evidence.

    ``S_jk = (n_jk * kappa_jk + tau * m_jk) / (n_jk + tau)``, then clipped to [0, 1]: ``n_jk``
    items co-labelled (0 when fewer than ``min_overlap``), ``kappa_jk`` their kappa before the
    clip at 0 (clipping first would bias the noisy small-overlap values, and the prior, upwards),
    ``tau`` the prior's weight in items. Pairs without evidence get the prior ``m_jk``; as
    ``tau -> 0`` pairs with evidence get :func:`kappa`.

    ``tau="auto"`` (default) estimates it from the data (empirical Bayes, method of moments):
    ``tau = sigma^2 / V`` with ``sigma^2`` the pooled per-item sampling variance of kappa
    (``p_o (1 - p_o) / (1 - p_e)^2``, Cohen 1960) and ``V`` the spread of the true kappas (the
    observed spread minus its sampling part). Overlap sizes and the spread of kappa differ by
    orders of magnitude between data sets, so no fixed number of items fits all of them.
    Measured on the demo (10 seeds, mean |S - S_true| off the diagonal, training split):
    kappa 0.222, tau=10 0.182, tau="auto" 0.176.

    Priors (``prior``):

    - ``"global"``: ``mu``, the overlap-weighted mean kappa of all pairs with evidence.
    - ``"annotator"`` (default): ``m_jk = (m_j + m_k) / 2``, where ``m_j`` is j's own
      overlap-weighted mean kappa with everyone, itself shrunk to ``mu`` with weight ``tau``.
      Why the default: in real crowds most of the variation in kappa is annotator quality (a
      careless annotator agrees with nobody, an expert with most), and ``m_j`` pools all of
      j's co-labelled items (sum over k of n_jk), far more evidence than any single pair, so a
      pair with no overlap still gets a value specific to the two annotators; an annotator
      with little evidence falls back to ``mu``. (The demo's annotators are equally careful
      within a group, so there the two priors measure the same.)

    Parameters
    ----------
    y : (N, A) int64, ``MISSING`` = -1, or a ``LabelTable`` of the same labels.
    n_classes : C.
    tau : prior weight in co-labelled items (>= 0), or ``"auto"``.
    min_overlap : pairs that co-labelled fewer items count as no evidence.
    prior : ``"annotator"`` or ``"global"``.

    Returns
    -------
    ``PairSimilarity``: the shrunk values of the pairs with evidence, the prior for the others
    (as (A, A): symmetric, in [0, 1], zero diagonal).
    """
    if not (isinstance(tau, str) and tau == "auto") and not (
        isinstance(tau, numbers.Real) and not isinstance(tau, bool) and tau >= 0
    ):
        raise ValueError(f"tau must be a number >= 0 or 'auto', got {tau!r}")
    if prior not in SHRINK_PRIORS:
        raise ValueError(f"prior must be one of {SHRINK_PRIORS}, got {prior!r}")
    y = matrix_or_table(y)
    n_annotators = y.shape[1]
    keys, raw, weight, spread = _pair_kappas(y, n_classes, min_overlap)
    mu, tau = _prior_weight(raw, weight, spread, tau)
    first, second = np.divmod(keys, n_annotators)
    if prior == "global":
        target, prior_rule = np.full(keys.size, mu), PairSimilarity.constant(n_annotators, float(np.clip(mu, 0.0, 1.0)))
    elif prior == "dawid_skene":
        prior_rule = ds_implied(y, n_classes)
        target = prior_rule.at(first, second)
    else:
        evidence = np.bincount(first, weights=weight, minlength=n_annotators) + tau
        per_annotator = (np.bincount(first, weights=weight * raw, minlength=n_annotators) + tau * mu) / np.maximum(evidence, 1e-300)
        per_annotator = np.where(evidence > 0, per_annotator, mu)
        target = (per_annotator[first] + per_annotator[second]) / 2
        prior_rule = PairSimilarity(n_annotators, np.zeros(0, np.int64), np.zeros(0), "mean", {"per_annotator": per_annotator})
    return PairSimilarity(n_annotators, keys, _shrink(raw, weight, tau, target), prior_rule.prior_kind,
                          prior_rule.prior, _ids(y))


def _prior_weight(raw: np.ndarray, weight: np.ndarray, spread: np.ndarray, tau: float | str) -> tuple[float, float]:
    """``mu``, the overlap-weighted mean kappa, and the prior's weight ``tau`` (``"auto"``: estimated)."""
    total = weight.sum()
    mu = (weight * raw).sum() / total if total > 0 else 0.0
    return mu, (_auto_tau(raw, weight, spread, mu) if isinstance(tau, str) else tau)


def _shrink(raw: np.ndarray, weight: np.ndarray, tau: float, target: np.ndarray) -> np.ndarray:
    """``(n * kappa + tau * target) / (n + tau)`` per pair (n > 0), clipped to [0, 1]."""
    return np.clip((weight * raw + tau * target) / (weight + tau), 0.0, 1.0)


def ds_implied(
    y: np.ndarray,
    n_classes: int,
    diagonal_prior: float = 0.0,
    min_overlap: int | None = None,
    **ds_options,
) -> np.ndarray:
    """Kappa implied by Dawid-Skene: :func:`expected_kappa` of the fitted confusions and class prior.

    Dawid-Skene (:func:`simlabel.core.baselines.dawid_skene`) estimates each annotator's
    confusion matrix from all of that annotator's labels against the latent true class, so
    the agreement of two annotators follows even when they never co-labelled an item.
    Assumes labels are independent given the true class (the model's own assumption).

    Parameters
    ----------
    y : (N, A) int64, ``MISSING`` = -1, or a ``LabelTable`` of the same labels.
    n_classes : C.
    diagonal_prior : Dawid-Skene pseudo-count on each confusion diagonal. Default 0, not the
        DS baseline's 1.0: a prior that every annotator is mostly right pulls every pair's
        implied agreement up and erases the differences a similarity is for (demo, 10 seeds,
        mean |S - S_true| over all labels: 0.12 with 0, 0.15 with 0.3, 0.25 with 1.0).
    min_overlap : ignored (every pair is defined); accepted for the common signature.
    **ds_options : passed to ``dawid_skene`` (``n_iter``, ``tol``, ``smoothing``).

    Returns
    -------
    ``PairSimilarity`` without pairs: every pair's value is the prior rule (``implied_kappa_rule``).
    """
    y = matrix_or_table(y)
    _, confusions, class_prior = dawid_skene(
        y, n_classes, diagonal_prior=diagonal_prior, **ds_options
    )
    return implied_kappa_rule(confusions, class_prior, _ids(y))


def implied_kappa_rule(confusions: np.ndarray, prior: np.ndarray, annotator_ids: pd.Index | None = None) -> PairSimilarity:
    """:func:`expected_kappa` as a ``PairSimilarity`` without pairs, its ``kappa`` prior rule holding
    per annotator ``u_j = sqrt(prior_y) P_j[y, z]`` (C * C) and ``q_j = sum_y prior_y P_j[y, :]``
    (C): ``p_o = u_j . u_k``, ``p_e = q_j . q_k``. O(A C^2) memory for every pair."""
    confusions, prior = np.asarray(confusions, np.float64), np.asarray(prior, np.float64)
    agreement = (np.sqrt(prior)[None, :, None] * confusions).reshape(len(confusions), -1)
    marginals = np.einsum("y,ayz->az", prior, confusions)
    return PairSimilarity(len(confusions), np.zeros(0, np.int64), np.zeros(0), "kappa",
                          {"agreement": agreement, "marginals": marginals}, annotator_ids)


SIMILARITY_ESTIMATORS: dict[str, Callable[..., PairSimilarity]] = {
    "kappa": kappa,
    "shrunk_kappa": shrunk_kappa,
    "ds_implied": ds_implied,
    "shrunk_ds_kappa": functools.partial(shrunk_kappa, prior="dawid_skene"),
}


def estimate_similarity(
    y: np.ndarray, n_classes: int, estimator: str = "kappa", **options
) -> PairSimilarity:
    """(A, A) similarity by the estimator named ``estimator`` (a key of :data:`SIMILARITY_ESTIMATORS`)."""
    if estimator not in SIMILARITY_ESTIMATORS:
        raise ValueError(
            f"similarity estimator must be one of {sorted(SIMILARITY_ESTIMATORS)}, got {estimator!r}"
        )
    return SIMILARITY_ESTIMATORS[estimator](y, n_classes, **options)


def similarity_from_params(train_labels: np.ndarray | LabelTable, n_classes: int, params: dict) -> PairSimilarity:
    """(A, A) annotator similarity from the training labels as ``parameters_similarity.yml`` asks:
    ``params["estimator"]`` (default ``kappa``, SPEC section 1) with ``min_overlap``.

    ``train_labels``: the (N, A) matrix or a ``LabelTable`` (every estimator reads its observed
    entries alone: no (N, A) array is made from a table)."""
    return estimate_similarity(train_labels, n_classes, params.get("estimator", "kappa"), min_overlap=params["min_overlap"])


def model_informed_kappa(
    y: np.ndarray, predicted: np.ndarray, n_classes: int, min_overlap: int = 1, tau: float | str = "auto"
) -> np.ndarray:
    """Each pair's observed kappa shrunk towards the kappa of the two annotators' trained models.

    ``S_jk = (n_jk * kappa_jk + tau * kappa_model_jk) / (n_jk + tau)``, clipped to [0, 1]:
    ``kappa_jk`` the pair's kappa on the items both labelled (unclipped; ``n_jk`` items, 0 below
    ``min_overlap``), ``kappa_model_jk`` the kappa of their models' predicted labels on every item
    of ``predicted`` (an informed value for every pair, overlap or not), ``tau`` as in
    :func:`shrunk_kappa`. The observed labels stay the evidence; imputed labels never enter.

    Parameters
    ----------
    y : (N, A) int64 observed labels, ``MISSING`` = -1.
    predicted : (M, A) int64 every annotator model's predicted label on M items (no missing).

    Returns (A, A) float64, symmetric, in [0, 1], zero diagonal (every pair has a model value,
    so nothing is sparse here).
    """
    keys, raw, weight, spread = _pair_kappas(y, n_classes, min_overlap)
    _, tau = _prior_weight(raw, weight, spread, tau)
    similarity = complete_kappa(predicted, n_classes)  # every pair: dense by nature
    similarity.flat[keys] = _shrink(raw, weight, tau, similarity.flat[keys])
    return similarity
