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

import numpy as np
import pandas as pd

from simlabel.core.kappa import CoLabelCounts
from simlabel.core.labels import (
    MISSING,
    LabelTable,
    as_label_table,
    expand_ranges,
    find_sorted,
    pair_keys,
)
from simlabel.core.soft_labels import confidence

logger = logging.getLogger(__name__)
# Co-label counts past which cycling warns: imputation fills rows in, so the counts tend to all
# (A * C)^2 class pairs, ~12 bytes each in the sparse matrix (10^8: ~1.2 GB, growing with each cycle).
COUNTS_WARNING = 10**8

IMPUTED_COLUMNS = ["item_id", "annotator_id", "label", "confidence", "epoch"]


class ImputedLabels:
    """Imputed labels of the training items, as a long table: one row per imputed entry, sorted
    by (item, annotator); a crowd's imputations cost what they hold, never N x A numbers.

    Attributes
    ----------
    shape : (N, A).
    keys : (L,) int64, item * A + annotator, ascending.
    labels : (L,) int64 imputed classes; confidences : (L,) float64; epochs : (L,) int64.

    ``label``, ``confidence`` and ``epoch`` are the (N, A) arrays (``MISSING``, 0 and -1 where
    nothing is imputed), built on demand for small data.
    """

    def __init__(self, n_items: int, n_annotators: int):
        self.shape = (int(n_items), int(n_annotators))
        self.keys, self.labels, self.epochs = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
        self.confidences = np.zeros(0)

    @classmethod
    def empty(cls, n_items: int, n_annotators: int) -> ImputedLabels:
        return cls(n_items, n_annotators)

    def __len__(self) -> int:
        return len(self.keys)

    def at(self, rows, cols) -> tuple[np.ndarray, np.ndarray]:
        """Imputed label (``MISSING`` where none) and confidence (0 where none) of entries (rows, cols)."""
        position, found = find_sorted(self.keys, pair_keys(rows, cols, self.shape[1]))
        if len(self.keys) == 0:
            return np.full(len(found), MISSING, np.int64), np.zeros(len(found))
        position = np.where(found, position, 0)
        return np.where(found, self.labels[position], MISSING), np.where(found, self.confidences[position], 0.0)

    def rows(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(m, A) imputed labels and confidences of items ``items`` (m,)."""
        items = np.asarray(items, np.int64)
        label, confidence = np.full((len(items), self.shape[1]), MISSING, np.int64), np.zeros((len(items), self.shape[1]))
        first = np.searchsorted(self.keys, items * self.shape[1])
        local, entries = expand_ranges(first, np.searchsorted(self.keys, (items + 1) * self.shape[1]) - first)
        cols = self.keys[entries] % self.shape[1]
        label[local, cols], confidence[local, cols] = self.labels[entries], self.confidences[entries]
        return label, confidence

    def write(self, rows, cols, labels, confidences, epoch) -> None:
        """Set entries (rows, cols) to ``labels`` / ``confidences`` at ``epoch`` (one for all, or
        one per entry); an entry given twice keeps its last value, as assignment into an array
        would."""
        keys = pair_keys(rows, cols, self.shape[1])
        labels, confidences = np.asarray(labels, np.int64), np.asarray(confidences, np.float64)
        epochs = np.broadcast_to(np.asarray(epoch, np.int64), keys.shape)
        if not (np.diff(keys) > 0).all():  # propose's entries come sorted: this is the rare case
            _, last = np.unique(keys[::-1], return_index=True)
            keep = len(keys) - 1 - last
            keys, labels, confidences, epochs = keys[keep], labels[keep], confidences[keep], epochs[keep]
        position, found = find_sorted(self.keys, keys)
        self.labels[position[found]] = labels[found]
        self.confidences[position[found]] = confidences[found]
        self.epochs[position[found]] = epochs[found]
        new = ~found
        if new.any():
            merged = np.concatenate([self.keys, keys[new]])
            order = np.argsort(merged, kind="stable")
            self.keys = merged[order]
            self.labels = np.concatenate([self.labels, labels[new]])[order]
            self.confidences = np.concatenate([self.confidences, confidences[new]])[order]
            self.epochs = np.concatenate([self.epochs, epochs[new]])[order]

    def entries(self) -> tuple[np.ndarray, np.ndarray]:
        """(L,) item and annotator index of each imputed entry."""
        return np.divmod(self.keys, self.shape[1])

    def merged_with(self, observed, items: np.ndarray | None = None) -> np.ndarray:
        """Observed labels where given, imputed ones elsewhere: (N, A) int64, or only the
        rows ``items``. ``observed``: the (N, A) matrix or a ``LabelTable`` of all N items."""
        if items is None:
            items = np.arange(self.shape[0])
        given = _observed_rows(observed, items)
        return np.where(given != MISSING, given, self.rows(items)[0])

    def merged_table(self, observed: LabelTable) -> LabelTable:
        """``observed`` and the imputed labels in one ``LabelTable`` (imputations only fill
        entries that have no observed label)."""
        items, annotators = self.entries()
        return LabelTable.from_entries(observed.item_ids, observed.annotator_ids,
                                       np.concatenate([observed.items, items]),
                                       np.concatenate([observed.annotators, annotators]),
                                       np.concatenate([observed.labels, self.labels]))

    def _dense(self, values: np.ndarray, fill, dtype) -> np.ndarray:
        out = np.full(self.shape, fill, dtype)
        out.reshape(-1)[self.keys] = values
        return out

    @property
    def label(self) -> np.ndarray:
        return self._dense(self.labels, MISSING, np.int64)

    @property
    def confidence(self) -> np.ndarray:
        return self._dense(self.confidences, 0.0, np.float64)

    @property
    def epoch(self) -> np.ndarray:
        return self._dense(self.epochs, -1, np.int64)

    def to_frame(self, item_ids, annotator_ids) -> pd.DataFrame:
        """Long table with columns item_id, annotator_id, label, confidence, epoch."""
        rows, cols = self.entries()
        return pd.DataFrame(
            {
                "item_id": np.asarray(item_ids, dtype=object)[rows],
                "annotator_id": np.asarray(annotator_ids, dtype=object)[cols],
                "label": self.labels,
                "confidence": self.confidences,
                "epoch": self.epochs,
            },
            columns=IMPUTED_COLUMNS,
        )


def _observed_rows(observed, items: np.ndarray) -> np.ndarray:
    """(m, A) observed label rows of ``items`` from the (N, A) matrix or a ``LabelTable``."""
    return observed.rows_dense(items) if isinstance(observed, LabelTable) else np.asarray(observed)[items]


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
    imputed : current imputations.
    observed : (N, A) int observed labels, ``MISSING`` = -1, or a ``LabelTable`` of them.
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
    chosen = has_soft & (_observed_rows(observed, items) == MISSING) & (conf >= threshold) & (conf > imputed.rows(items)[1])
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
    changed = np.unique(rows[imputed.at(rows, cols)[0] != labels])
    before = imputed.merged_with(observed, changed) if counts is not None and changed.size else None
    imputed.write(rows, cols, labels, confidences, epoch)
    if before is not None:
        # An update costs what recounting the changed rows costs (sparse products): never more
        # than twice a recount of the whole matrix, so it never falls back to one.
        counts.update(before, imputed.merged_with(observed, changed))
    return len(rows)


class ConfidenceCycler:
    """Imputed labels, co-label counts and the similarity they give, for one training run.

    Parameters
    ----------
    observed : the training labels, a ``LabelTable`` or the (N, A) int64 matrix (``MISSING`` =
        -1); never overwritten.
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
        self.observed = as_label_table(observed)
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
        self.imputed_counts = CoLabelCounts(self._imputed_table(), n_classes) if refresh == "anchored" else None

    def propose(self, items: np.ndarray, p_soft, has_soft) -> tuple:
        """Entries of ``items`` to impute: ``p_soft`` (m, A, C) and ``has_soft`` (m, A) tensors."""
        conf = confidence(p_soft, self.formula).cpu().numpy()
        return propose_imputations(
            self.imputed, self.observed, items, p_soft.cpu().numpy(), has_soft.cpu().numpy(), conf, self.threshold
        )

    def apply(self, chosen: tuple, epoch: int) -> np.ndarray | None:
        """Write ``propose``'s entries; the refreshed (A, A) similarity, or None if no label changed."""
        rows, cols, labels, confidences = chosen
        changed = np.unique(rows[self.imputed.at(rows, cols)[0] != labels])
        before = self.imputed.rows(changed)[0] if self.imputed_counts is not None else None
        apply_imputations(self.imputed, self.observed, rows, cols, labels, confidences, epoch, self.counts)
        if changed.size == 0 or self.counts is None:
            return None
        if self.imputed_counts is not None:
            self.imputed_counts.update(before, self.imputed.rows(changed)[0])
        return self.similarity()

    def similarity(self) -> np.ndarray:
        """(A, A) kappa under the refresh rule."""
        if self.imputed_counts is None:
            return self.counts.kappa(self.min_overlap)
        return self.counts.kappa_without(self.imputed_counts, self.min_overlap)

    @property
    def n_imputed(self) -> int:
        return len(self.imputed)

    def merged_table(self) -> LabelTable:
        """Observed and imputed labels as one ``LabelTable``."""
        return self.imputed.merged_table(self.observed)

    def _imputed_table(self) -> LabelTable:
        items, annotators = self.imputed.entries()
        return LabelTable(self.observed.item_ids, self.observed.annotator_ids, items, annotators, self.imputed.labels)

    def state(self) -> dict[str, np.ndarray]:
        """The imputations as a long table of plain arrays (the counts follow from them)."""
        rows, cols = self.imputed.entries()
        return {"rows": rows, "cols": cols, "label": self.imputed.labels.copy(),
                "confidence": self.imputed.confidences.copy(), "epoch": self.imputed.epochs.copy()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore ``state()``'s imputations and recount (integer counts: exactly as before)."""
        self.imputed = ImputedLabels.empty(*self.observed.shape)
        self.imputed.write(state["rows"], state["cols"], state["label"], state["confidence"], state["epoch"])
        if self.counts is not None:
            self.counts = CoLabelCounts(self.merged_table(), self.n_classes)
        if self.imputed_counts is not None:
            self.imputed_counts = CoLabelCounts(self._imputed_table(), self.n_classes)
