"""Long label tables <-> (N, A) label matrices, validation, item splits, random removal.

Conventions used across the package:

- ``Y``: (N, A) int64 label matrix, ``Y[i, a]`` = class index, ``MISSING`` (-1) when
  annotator ``a`` did not label item ``i``.
- Item and annotator ids are strings (ids in user files may be integers or strings).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

MISSING = -1
SPLITS = ("train", "val", "test")


class LabelTableError(ValueError):
    """A label table that cannot be turned into a label matrix."""


def _as_str_ids(values: pd.Series) -> pd.Series:
    # Integer-like floats ("3.0") come from CSV readers; ids are compared as text.
    if pd.api.types.is_float_dtype(values):
        if (values.dropna() % 1 == 0).all():
            values = values.astype("Int64")
    return values.astype(str).str.strip()


def resolve_classes(labels: pd.Series, classes: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Map raw label values to class indices.

    Parameters
    ----------
    labels : Series of raw labels: class indices (0-based integers) or class names.
    classes : class names in index order (``classes.txt``); inferred from ``labels`` when None
        (sorted integers, or sorted names).

    Returns
    -------
    classes : list of class names
    codes : (len(labels),) int64 class indices

    Raises
    ------
    LabelTableError
        If a label is neither a valid index nor a known class name.
    """
    raw = _as_str_ids(labels)
    is_int = raw.str.fullmatch(r"-?\d+")
    if classes is None:
        if is_int.all():
            n_classes = int(raw.astype(np.int64).max()) + 1 if len(raw) else 0
            classes = [str(c) for c in range(n_classes)]
        else:
            classes = sorted(raw.unique())
    classes = [str(c).strip() for c in classes]
    if len(set(classes)) != len(classes):
        raise LabelTableError(f"class names must be unique, got {classes}")
    by_name = {name: k for k, name in enumerate(classes)}
    codes = raw.map(by_name)
    # Integer labels index classes.txt unless the integer is itself a class name.
    use_index = codes.isna() & is_int
    codes[use_index] = raw[use_index].astype(np.int64)
    bad = codes.isna() | (codes.fillna(0) < 0) | (codes.fillna(0) >= len(classes))
    if bad.any():
        unknown = sorted(raw[bad].unique())[:10]
        raise LabelTableError(
            f"{int(bad.sum())} labels are not among the {len(classes)} classes "
            f"{classes}: unknown values {unknown}"
        )
    return classes, codes.to_numpy(dtype=np.int64)


def build_label_matrix(
    labels: pd.DataFrame,
    item_ids: Sequence[str],
    classes: Sequence[str] | None = None,
    annotator_ids: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Turn a long label table into an (N, A) label matrix.

    Parameters
    ----------
    labels : DataFrame with columns ``item_id``, ``annotator_id``, ``label``, one row per label given.
    item_ids : the N items that have inputs (rows of the matrix, in this order).
    classes : class names in index order, or None to infer them from the labels.
    annotator_ids : column order; default: sorted annotator ids found in ``labels``.

    Returns
    -------
    label_matrix : DataFrame (N, A), index ``item_id``, one column per annotator id,
        class index or ``MISSING`` (-1).
    classes : list of class names.

    Raises
    ------
    LabelTableError
        Missing columns, labels for items without inputs, one (item, annotator) with two
        different labels, or labels outside the classes. Identical duplicate rows are dropped.
    """
    required = {"item_id", "annotator_id", "label"}
    missing_cols = required - set(labels.columns)
    if missing_cols:
        raise LabelTableError(
            f"label table needs columns {sorted(required)}; missing {sorted(missing_cols)} "
            f"(found {list(labels.columns)})"
        )
    table = labels.loc[:, ["item_id", "annotator_id", "label"]].dropna()
    table = table.assign(item_id=_as_str_ids(table["item_id"]), annotator_id=_as_str_ids(table["annotator_id"]))
    classes, codes = resolve_classes(table["label"], classes)
    table = table.assign(label=codes).drop_duplicates()

    conflicts = table.duplicated(["item_id", "annotator_id"], keep=False)
    if conflicts.any():
        example = table[conflicts].sort_values(["item_id", "annotator_id"]).head(4)
        raise LabelTableError(
            f"{int(conflicts.sum())} rows give one (item, annotator) two different labels, e.g.\n"
            f"{example.to_string(index=False)}"
        )

    item_index = pd.Index([str(i) for i in item_ids], name="item_id")
    if item_index.has_duplicates:
        raise LabelTableError("item ids of the inputs are not unique")
    unknown_items = ~table["item_id"].isin(item_index)
    if unknown_items.any():
        examples = sorted(table.loc[unknown_items, "item_id"].unique())[:5]
        raise LabelTableError(
            f"{int(unknown_items.sum())} labels are for {table.loc[unknown_items, 'item_id'].nunique()} "
            f"items that have no input, e.g. {examples}"
        )

    if annotator_ids is None:
        annotator_ids = sorted(table["annotator_id"].unique(), key=_natural_key)
    annotators = pd.Index([str(a) for a in annotator_ids], name="annotator_id")
    rows = item_index.get_indexer(table["item_id"])
    cols = annotators.get_indexer(table["annotator_id"])
    if (cols < 0).any():
        raise LabelTableError("labels reference annotators outside annotator_ids")
    matrix = np.full((len(item_index), len(annotators)), MISSING, dtype=np.int64)
    matrix[rows, cols] = table["label"].to_numpy()
    return pd.DataFrame(matrix, index=item_index, columns=annotators), classes


def _natural_key(text: str):
    # "A2" sorts before "A10"; pure integers sort numerically.
    head, digits, tail = re.match(r"^(\D*)(\d*)(.*)$", text, flags=re.S).groups()
    return (head, int(digits) if digits else -1, tail)


def label_matrix_to_long(label_matrix: pd.DataFrame) -> pd.DataFrame:
    """(N, A) label matrix -> long table (item_id, annotator_id, label) of observed entries."""
    values = label_matrix.to_numpy()
    rows, cols = np.nonzero(values != MISSING)
    return pd.DataFrame(
        {
            "item_id": label_matrix.index.to_numpy()[rows],
            "annotator_id": label_matrix.columns.to_numpy()[cols],
            "label": values[rows, cols],
        }
    )


def split_items(item_ids: Sequence[str], fractions: dict[str, float], seed: int) -> pd.DataFrame:
    """Seeded random split of items into train / val / test.

    Parameters
    ----------
    item_ids : N item ids.
    fractions : ``{"train": f, "val": f, "test": f}``, non-negative, summing to 1.
    seed : random seed; the same seed gives the same split.

    Returns
    -------
    DataFrame with columns ``item_id``, ``split`` in the order of ``item_ids``.
    """
    if set(fractions) != set(SPLITS):
        raise ValueError(f"fractions needs exactly the keys {SPLITS}, got {sorted(fractions)}")
    f = np.array([fractions[s] for s in SPLITS], dtype=float)
    if (f < 0).any() or not np.isclose(f.sum(), 1.0):
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    n = len(item_ids)
    bounds = np.round(np.cumsum(f) * n).astype(int)
    order = np.random.default_rng(seed).permutation(n)
    split = np.empty(n, dtype=object)
    split[order] = np.repeat(np.array(SPLITS, dtype=object), np.diff(np.concatenate([[0], bounds])))
    return pd.DataFrame({"item_id": [str(i) for i in item_ids], "split": split})


def remove_labels(y: np.ndarray, rows: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Remove ``fraction`` of the observed labels in ``rows`` at random (SPEC section 7).

    Parameters
    ----------
    y : (N, A) int label matrix, ``MISSING`` = -1.
    rows : (N,) bool, the items whose labels may be removed (the training items).
    fraction : in [0, 1); ``round(fraction * n_observed)`` labels become ``MISSING``.
    seed : random seed.

    Returns
    -------
    A copy of ``y`` with the chosen labels set to ``MISSING``.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction of labels to remove must be in [0, 1), got {fraction}")
    y = np.array(y, dtype=np.int64, copy=True, order="C")  # ravel() below must be a view
    candidates = np.flatnonzero(((y != MISSING) & np.asarray(rows, dtype=bool)[:, None]).ravel())
    n_remove = int(round(fraction * candidates.size))
    drop = np.random.default_rng(seed).choice(candidates, size=n_remove, replace=False)
    y.ravel()[drop] = MISSING
    return y
