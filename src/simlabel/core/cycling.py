"""Confidence cycling (SPEC section 4, Algorithm 1): impute confident soft labels and refresh
the similarity from observed + imputed labels.

The imputed labels live in three (N, A) arrays beside the observed label matrix; the similarity
is kept exact through ``CoLabelCounts`` increments over the items whose labels changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from simlabel.core.kappa import CoLabelCounts
from simlabel.core.labels import MISSING

IMPUTED_COLUMNS = ["item_id", "annotator_id", "label", "confidence", "epoch"]


@dataclass
class ImputedLabels:
    """Imputed labels of the training items.

    Attributes
    ----------
    label : (N, A) int64, imputed class or ``MISSING``.
    confidence : (N, A) float64, confidence of the imputation (0 where none).
    epoch : (N, A) int64, epoch of the imputation (-1 where none).
    """

    label: np.ndarray
    confidence: np.ndarray
    epoch: np.ndarray

    @classmethod
    def empty(cls, n_items: int, n_annotators: int) -> ImputedLabels:
        shape = (n_items, n_annotators)
        return cls(np.full(shape, MISSING, np.int64), np.zeros(shape), np.full(shape, -1, np.int64))

    def merged_with(self, observed: np.ndarray, items: np.ndarray | None = None) -> np.ndarray:
        """Observed labels where given, imputed ones elsewhere: (N, A) int64, or only the
        rows ``items`` (``observed`` is always the full (N, A) matrix)."""
        if items is None:
            return np.where(observed != MISSING, observed, self.label)
        return np.where(observed[items] != MISSING, observed[items], self.label[items])

    def to_frame(self, item_ids, annotator_ids) -> pd.DataFrame:
        """Long table with columns item_id, annotator_id, label, confidence, epoch."""
        rows, cols = np.nonzero(self.label != MISSING)
        return pd.DataFrame(
            {
                "item_id": np.asarray(item_ids, dtype=object)[rows],
                "annotator_id": np.asarray(annotator_ids, dtype=object)[cols],
                "label": self.label[rows, cols],
                "confidence": self.confidence[rows, cols],
                "epoch": self.epoch[rows, cols],
            },
            columns=IMPUTED_COLUMNS,
        )


def propose_imputations(
    imputed: ImputedLabels,
    observed: np.ndarray,
    items: np.ndarray,
    p_soft: np.ndarray,
    has_soft: np.ndarray,
    conf: np.ndarray,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The entries of ``items`` that this cycle imputes (SPEC section 4).

    Every soft-labelled missing entry with ``conf >= threshold`` gets ``argmax(p_soft)``, unless
    an earlier imputation of that entry was at least as confident; observed labels never change.

    Parameters
    ----------
    imputed : current imputations, (N, A) arrays.
    observed : (N, A) int observed labels, ``MISSING`` = -1.
    items : (m,) row indices the following arrays describe.
    p_soft : (m, A, C) soft labels; has_soft : (m, A) bool; conf : (m, A) float.
    threshold : T.

    Returns
    -------
    rows, cols, labels, confidences of the chosen entries (row indices into the full matrix).
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"confidence threshold must be in [0, 1], got {threshold}")
    items = np.asarray(items)
    chosen = has_soft & (observed[items] == MISSING) & (conf >= threshold) & (conf > imputed.confidence[items])
    local, cols = np.nonzero(chosen)
    return items[local], cols, p_soft.argmax(-1)[local, cols], conf[local, cols]


def apply_imputations(
    imputed: ImputedLabels,
    observed: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    labels: np.ndarray,
    confidences: np.ndarray,
    epoch: int,
    counts: CoLabelCounts | None = None,
) -> int:
    """Write chosen imputations in place; ``counts`` (co-label counts of observed + imputed
    labels) follow, so their kappa equals a recount. Returns the number of entries written."""
    if len(rows) == 0:
        return 0
    # Only entries whose label changes move the co-label counts (a more confident imputation of
    # the same label just updates confidence and epoch).
    changed = np.unique(rows[imputed.label[rows, cols] != labels])
    before = imputed.merged_with(observed, changed) if counts is not None and changed.size else None
    imputed.label[rows, cols] = labels
    imputed.confidence[rows, cols] = confidences
    imputed.epoch[rows, cols] = epoch
    if before is not None:
        after = imputed.merged_with(observed, changed)
        # Dense rows (many imputed labels per item) make pairwise increments quadratic per row:
        # past the cost of a recount, recount the whole matrix (sparse O.T @ O) instead.
        if CoLabelCounts.update_cost(before, after) > max(4 * int((observed != MISSING).sum()), 2_000_000):
            counts.reset(imputed.merged_with(observed))
        else:
            counts.update(before, after)
    return len(rows)


def impute_confident(
    imputed: ImputedLabels,
    observed: np.ndarray,
    items: np.ndarray,
    p_soft: np.ndarray,
    has_soft: np.ndarray,
    conf: np.ndarray,
    threshold: float,
    epoch: int,
    counts: CoLabelCounts | None = None,
) -> int:
    """One cycle of Algorithm 1 on some training items, in place: ``propose_imputations`` then
    ``apply_imputations``. Returns the number of entries imputed or replaced."""
    chosen = propose_imputations(imputed, observed, items, p_soft, has_soft, conf, threshold)
    return apply_imputations(imputed, observed, *chosen, epoch, counts)
