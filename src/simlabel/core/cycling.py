"""Confidence cycling (SPEC section 4, Algorithm 1): impute confident soft labels and refresh
the similarity from observed + imputed labels.

``ConfidenceCycler`` owns the imputed labels, the co-label counts and ``min_overlap``:
``propose`` picks this cycle's confident entries, ``apply`` writes them and returns the refreshed
similarity. The similarity is kept exact through ``CoLabelCounts`` increments over the items
whose labels changed.

Refresh rules (``refresh``):
- ``paper``: kappa of observed + imputed labels, read literally. Imputations are argmaxes of
  pooled soft labels (a consensus), so imputed-vs-imputed agreement dominates once imputations
  outnumber observed labels and every pair drifts towards 1.
- ``anchored``: the same counts minus the imputed-vs-imputed co-labels: every co-label that
  enters kappa has at least one observed label, so an imputation can only be compared with what
  a person actually said.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from simlabel.core.kappa import CoLabelCounts
from simlabel.core.labels import MISSING
from simlabel.core.soft_labels import confidence

logger = logging.getLogger(__name__)
# Co-label counts past which cycling warns: imputation fills rows in, so the counts tend to all
# (A * C)^2 class pairs, ~12 bytes each in the sparse matrix (10^8: ~1.2 GB, growing with each cycle).
COUNTS_WARNING = 10**8

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
        # An update costs what recounting the changed rows costs (sparse products): never more
        # than twice a recount of the whole matrix, so it never falls back to one.
        counts.update(before, imputed.merged_with(observed, changed))
    return len(rows)


class ConfidenceCycler:
    """Imputed labels, co-label counts and the similarity they give, for one training run.

    Parameters
    ----------
    observed : (N, A) int64 training labels, ``MISSING`` = -1 (never overwritten).
    n_classes : C.
    min_overlap : pairs that co-labelled fewer items get kappa 0.
    threshold, formula : impute soft labels whose confidence (``formula``) is >= threshold.
    refresh : ``paper`` | ``anchored`` (module docstring) | ``models`` (the caller refreshes
        the similarity from its models: ``apply`` returns None).
    track_counts : keep the co-label counts of observed + imputed labels (``counts``), which the
        ``paper`` and ``anchored`` similarity and the label transport read. Without them
        (``refresh: models`` and no transport) nothing reads them, and updating them cost
        ~0.25 s an epoch on CIFAR-10N.
    """

    def __init__(self, observed, n_classes, min_overlap=2, threshold=0.6, formula="product", refresh="paper",
                 track_counts=True):
        self.observed = np.asarray(observed, dtype=np.int64)
        self.n_classes, self.min_overlap = n_classes, min_overlap
        self.threshold, self.formula, self.refresh = threshold, formula, refresh
        self.imputed = ImputedLabels.empty(*self.observed.shape)
        pairs = (self.observed.shape[1] * n_classes) ** 2
        if track_counts and pairs > COUNTS_WARNING:
            logger.warning(
                "confidence cycling with %d annotators x %d classes: its co-label counts can grow to %.1e class "
                "pairs (~%.0f GB) as imputations fill rows in; with many annotators prefer a method without cycling "
                "or refresh: models (README, 'Scale, several GPUs, and crashes')", self.observed.shape[1], n_classes, pairs, pairs * 12 / 1e9)
        self.counts = CoLabelCounts(self.observed, n_classes) if track_counts else None
        # Co-labels between two imputed labels, subtracted by the anchored refresh.
        self.imputed_counts = CoLabelCounts(self.imputed.label, n_classes) if refresh == "anchored" else None

    def propose(self, items: np.ndarray, p_soft, has_soft) -> tuple:
        """Entries of ``items`` to impute: ``p_soft`` (m, A, C) and ``has_soft`` (m, A) tensors."""
        conf = confidence(p_soft, self.formula).cpu().numpy()
        return propose_imputations(
            self.imputed, self.observed, items, p_soft.cpu().numpy(), has_soft.cpu().numpy(), conf, self.threshold
        )

    def apply(self, chosen: tuple, epoch: int) -> np.ndarray | None:
        """Write ``propose``'s entries; the refreshed (A, A) similarity, or None if no label changed."""
        rows, cols, labels, confidences = chosen
        changed = np.unique(rows[self.imputed.label[rows, cols] != labels])
        before = self.imputed.label[changed].copy()
        apply_imputations(self.imputed, self.observed, rows, cols, labels, confidences, epoch, self.counts)
        if changed.size == 0 or self.counts is None:
            return None
        if self.imputed_counts is not None:
            self.imputed_counts.update(before, self.imputed.label[changed])
        return self.similarity()

    def similarity(self) -> np.ndarray:
        """(A, A) kappa under the refresh rule."""
        if self.imputed_counts is None:
            return self.counts.kappa(self.min_overlap)
        return self.counts.kappa_without(self.imputed_counts, self.min_overlap)

    @property
    def n_imputed(self) -> int:
        return int((self.imputed.label != MISSING).sum())

    def state(self) -> dict[str, np.ndarray]:
        """The imputations as a long table of plain arrays (the counts follow from them)."""
        rows, cols = np.nonzero(self.imputed.label != MISSING)
        return {"rows": rows, "cols": cols, "label": self.imputed.label[rows, cols],
                "confidence": self.imputed.confidence[rows, cols], "epoch": self.imputed.epoch[rows, cols]}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore ``state()``'s imputations and recount (integer counts: exactly as before)."""
        rows, cols = np.asarray(state["rows"]), np.asarray(state["cols"])
        self.imputed = ImputedLabels.empty(*self.observed.shape)
        self.imputed.label[rows, cols] = state["label"]
        self.imputed.confidence[rows, cols] = state["confidence"]
        self.imputed.epoch[rows, cols] = state["epoch"]
        if self.counts is not None:
            self.counts = CoLabelCounts(self.imputed.merged_with(self.observed), self.n_classes)
        if self.imputed_counts is not None:
            self.imputed_counts = CoLabelCounts(self.imputed.label, self.n_classes)
