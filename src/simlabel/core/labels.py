"""Labels: validation of a folder's label table, ``LabelTable``, item splits, random removal.

Conventions used across the package:

- ``LabelTable``: the L labels given, (item, annotator, class) index triples over a fixed order
  of N items and A annotators; what the stages hand each other and what training reads.
- ``Y``: (N, A) int64 label matrix, ``Y[i, a]`` = class index, ``MISSING`` (-1) when
  annotator ``a`` did not label item ``i``: ``LabelTable.to_numpy``, for small data and the
  functions that take either.
- Item and annotator ids are strings (ids in user files may be integers or strings).
- A label table read from a file (``simlabel.folder``) has its 1-based line numbers as index
  (named ``line``) and the file in ``attrs["source"]``, so errors name both; other tables are
  named by their index (``row``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from simlabel.errors import UserError

MISSING = -1
SPLITS = ("train", "val", "test")
INTEGER_LABEL = r"[+-]?\d+(?:\.0*)?"  # "3" and "3.0" (CSV writers turn int columns with gaps into floats)
MISSING_TEXT = {"", "nan", "na", "n/a", "null", "<na>"}
N_EXAMPLES = 5


class LabelTableError(UserError):
    """A label table that cannot be turned into a label matrix."""


def _as_str_ids(values: pd.Series) -> pd.Series:
    # Integer-like floats ("3.0") come from CSV readers; ids are compared as text.
    if pd.api.types.is_float_dtype(values):
        if (values.dropna() % 1 == 0).all():
            values = values.astype("Int64")
    return values.astype(str).str.strip()


def _text(values: pd.Series) -> pd.Series:
    """Stripped text of each value; missing values (None, NaN, pd.NA) become ""."""
    return _as_str_ids(values).where(values.notna(), "")


def _where(rows: pd.Series) -> str:
    """``line 3 ('1.5'), line 9 ('x') and 4 more``: the first few entries of
    ``rows`` (a boolean-filtered Series of offending values) by line (or row) and value."""
    word = "line" if rows.index.name == "line" else "row"
    shown = ", ".join(f"{word} {i} ({v!r})" for i, v in zip(rows.index[:N_EXAMPLES], rows[:N_EXAMPLES], strict=True))
    more = f" and {len(rows) - N_EXAMPLES} more" if len(rows) > N_EXAMPLES else ""
    return f"{shown}{more}"


def _prefix(values: pd.Series | pd.DataFrame) -> str:
    source = values.attrs.get("source")
    return f"{source}: " if source else ""


def _check_filled(raw: pd.Series, column: str, known: pd.Series | None = None) -> None:
    """Blank or NaN-like entries (``""``, ``nan``, ``NA``, ``null``) of ``column`` are an error,
    unless ``known`` marks them as real class names."""
    blank = raw.str.lower().isin(MISSING_TEXT)
    if known is not None:
        blank &= ~known
    if blank.any():
        raise LabelTableError(
            f"{_prefix(raw)}{int(blank.sum())} rows have no {column}: {_where(raw[blank])}. "
            f"Every row needs an item_id, annotator_id and label; remove the rows of labels not given."
        )


def _check_class_names(classes: Sequence[str]) -> list[str]:
    classes = [str(c).strip() for c in classes]
    seen: dict[str, int] = {}
    for k, name in enumerate(classes):
        if name in seen:
            raise LabelTableError(
                f"class names must be unique: {name!r} is class {seen[name]} and class {k} "
                f"(classes.txt lines {seen[name] + 1} and {k + 1}); remove or rename one"
            )
        seen[name] = k
    return classes


def _check_numeric_names(classes: list[str]) -> None:
    """Integer labels index classes.txt; integer class names other than their own index
    (``1, 2, 3`` for star ratings) would make label ``1`` mean class ``'2'``: an error."""
    clash = [(k, n) for k, n in enumerate(classes) if re.fullmatch(INTEGER_LABEL, n) and n != str(k)]
    if clash:
        examples = ", ".join(f"line {k + 1} is {n!r}" for k, n in clash[:N_EXAMPLES])
        raise LabelTableError(
            f"integer labels are 0-based indices into classes.txt, but classes.txt names classes with other "
            f"numbers ({examples}), so a label is ambiguous (index or name?). Give the classes names that "
            f"are not numbers (e.g. 'stars_1') and use those names or 0-based indices in labels.csv"
        )


def _fail_mixed_or_unknown(raw: pd.Series, is_int: pd.Series, is_name: pd.Series, classes) -> None:
    """Raise for a label column that mixes indices and names, or holds unknown names."""
    if is_int.any() and (is_name & ~is_int).any():
        raise LabelTableError(
            f"{_prefix(raw)}the label column mixes class indices ({_where(raw[is_int].head(3))}) and class "
            f"names ({_where(raw[is_name & ~is_int].head(3))}); use one or the other for every row"
        )
    if classes is None:  # some integers, the rest names
        raise LabelTableError(
            f"{_prefix(raw)}the label column mixes class indices ({_where(raw[is_int].head(3))}) and class "
            f"names ({_where(raw[~is_int].head(3))}); use one or the other for every row"
        )
    unknown = raw[~is_name & ~is_int]
    raise LabelTableError(
        f"{_prefix(raw)}{len(unknown)} labels are not among the {len(classes)} classes {classes}: unknown "
        f"values {sorted(unknown.unique())[:10]} at {_where(unknown)}. Add them to classes.txt or correct them"
    )


def resolve_classes(labels: pd.Series, classes: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Map raw label values to class indices.

    A label column holds either class indices (0-based integers, ``3`` or ``3.0``) for every
    row, or class names for every row; never a mix.

    Parameters
    ----------
    labels : Series (L,) of raw labels: class indices or class names.
    classes : class names in index order (``classes.txt``); inferred from ``labels`` when None:
        ``0..max`` for indices, sorted names for names.

    Returns
    -------
    classes : list of class names
    codes : (L,) int64 class indices

    Raises
    ------
    LabelTableError
        Blank / NaN labels, non-integer numbers (``1.5``) that are no class name, a mix of
        indices and names, unknown names, indices outside the classes, duplicate class names,
        or numeric class names that clash with integer labels. The message names the rows.
    """
    raw = _text(labels)
    classes = None if classes is None else _check_class_names(classes)
    is_name = raw.isin(classes) if classes is not None else pd.Series(False, index=raw.index)
    _check_filled(raw, "label", is_name)
    is_int = raw.str.fullmatch(INTEGER_LABEL)
    fraction = pd.to_numeric(raw, errors="coerce").notna() & ~is_int & ~is_name
    if fraction.any():
        raise LabelTableError(
            f"{_prefix(raw)}{int(fraction.sum())} labels are numbers but not 0-based integer class indices: "
            f"{_where(raw[fraction])}. Use class indices or class names (to use such numbers as names, "
            "list them in classes.txt)"
        )
    if len(raw) and is_int.all():
        return _index_codes(raw, classes)
    if classes is None and not is_int.any():
        classes = sorted(raw.unique())
        is_name = pd.Series(True, index=raw.index)
    if classes is None or not is_name.all():
        _fail_mixed_or_unknown(raw, is_int, is_name, classes)
    return classes, raw.map({name: k for k, name in enumerate(classes)}).to_numpy(dtype=np.int64)


def _index_codes(raw: pd.Series, classes: list[str] | None) -> tuple[list[str], np.ndarray]:
    """Integer labels -> (classes, (L,) codes); classes ``0..max`` when None."""
    codes = raw.str.replace(r"\.0*$", "", regex=True).astype(np.int64)
    if classes is None:
        classes = [str(c) for c in range(max(int(codes.max()) + 1, 0))]
    else:
        _check_numeric_names(classes)
    bad = (codes < 0) | (codes >= len(classes))
    if bad.any():
        raise LabelTableError(
            f"{_prefix(raw)}{int(bad.sum())} labels are not among the {len(classes)} classes {classes[:20]}: "
            f"unknown values {sorted(codes[bad].unique().tolist())[:10]} at {_where(raw[bad])}. Labels are 0-based "
            "indices into classes.txt: add the missing classes there or correct the labels"
        )
    return classes, codes.to_numpy(dtype=np.int64)


def build_label_matrix(
    labels: pd.DataFrame,
    item_ids: Sequence[str],
    classes: Sequence[str] | None = None,
    annotator_ids: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """``build_label_table`` as an (N, A) DataFrame (index ``item_id``, one column per annotator
    id, class index or ``MISSING``): for small data."""
    table, classes = build_label_table(labels, item_ids, classes, annotator_ids)
    return table.to_matrix(), classes


def build_label_table(
    labels: pd.DataFrame,
    item_ids: Sequence[str],
    classes: Sequence[str] | None = None,
    annotator_ids: Sequence[str] | None = None,
) -> tuple[LabelTable, list[str]]:
    """Validate a label table read from a folder and index it by items and annotators.

    Parameters
    ----------
    labels : DataFrame (L, >=3) with columns ``item_id``, ``annotator_id``, ``label``, one row
        per label given.
    item_ids : the N items that have inputs (rows of the matrix, in this order).
    classes : class names in index order, or None to infer them from the labels.
    annotator_ids : column order; default: sorted annotator ids found in ``labels``.

    Returns
    -------
    labels : ``LabelTable`` over the N items and the A annotators (no (N, A) array is made).
    classes : list of class names.

    Raises
    ------
    LabelTableError
        Missing columns, blank ids or labels, labels for items without inputs, one (item,
        annotator) with two different labels, or bad labels (``resolve_classes``). Identical
        duplicate rows are dropped.
    """
    required = {"item_id", "annotator_id", "label"}
    missing_cols = required - set(labels.columns)
    if missing_cols:
        raise LabelTableError(
            f"{_prefix(labels)}label table needs columns {sorted(required)}; missing {sorted(missing_cols)} "
            f"(found {list(labels.columns)})"
        )
    ids = {column: _text(labels[column]) for column in ("item_id", "annotator_id")}
    for column, values in ids.items():
        _check_filled(values, column)
    classes, codes = resolve_classes(labels["label"], classes)
    table = pd.DataFrame({**ids, "label": codes}, index=labels.index).drop_duplicates()
    _check_conflicts(table, _prefix(labels))

    item_index = pd.Index([str(i) for i in item_ids], name="item_id")
    if item_index.has_duplicates:
        raise LabelTableError("item ids of the inputs are not unique")
    unknown_items = ~table["item_id"].isin(item_index)
    if unknown_items.any():
        examples = sorted(table.loc[unknown_items, "item_id"].unique())[:5]
        raise LabelTableError(
            f"{_prefix(labels)}{int(unknown_items.sum())} labels are for "
            f"{table.loc[unknown_items, 'item_id'].nunique()} items that have no input, e.g. {examples}"
        )

    if annotator_ids is None:
        annotator_ids = sorted(table["annotator_id"].unique(), key=_natural_key)
    annotators = pd.Index([str(a) for a in annotator_ids], name="annotator_id")
    rows = item_index.get_indexer(table["item_id"])
    cols = annotators.get_indexer(table["annotator_id"])
    if (cols < 0).any():
        raise LabelTableError("labels reference annotators outside annotator_ids")
    return LabelTable.from_entries(item_index, annotators, rows, cols, table["label"].to_numpy()), classes


def _check_conflicts(table: pd.DataFrame, prefix: str) -> None:
    """One (item, annotator) with two different labels is an error listing a few of them."""
    conflicts = table.duplicated(["item_id", "annotator_id"], keep=False)
    if conflicts.any():
        example = table[conflicts].sort_values(["item_id", "annotator_id"]).head(4)
        raise LabelTableError(
            f"{prefix}{int(conflicts.sum())} rows give one (item, annotator) two different labels "
            f"(keep one label per item and annotator), e.g.\n{example.to_string()}"
        )


def _natural_key(text: str):
    # "A2" sorts before "A10"; pure integers sort numerically.
    head, digits, tail = re.match(r"^(\D*)(\d*)(.*)$", text, flags=re.S).groups()
    return (head, int(digits) if digits else -1, tail)


def split_items(
    item_ids: Sequence[str], fractions: dict[str, float], seed: int, test_items: Sequence[str] | None = None
) -> pd.DataFrame:
    """Seeded random split of items into train / val / test.

    Parameters
    ----------
    item_ids : N item ids.
    fractions : ``{"train": f, "val": f, "test": f}``, non-negative, summing to 1.
    seed : random seed; the same seed gives the same split.
    test_items : optional test panel (P ids, each one of ``item_ids``): these items are always
        ``test``; the other N - P items are split into train / val only, with the fractions
        ``train / (train + val)`` and ``val / (train + val)`` (``fractions["test"]`` is then
        unused: the panel is the test set). None: a random three-way split (the panel-free
        split, unchanged).

    Returns
    -------
    DataFrame (N, 2) with columns ``item_id``, ``split`` in the order of ``item_ids``.

    Raises
    ------
    ValueError
        Bad fractions; a panel id that is not an item, an empty panel, a panel of every item, or
        a panel with ``train + val == 0``.
    """
    if set(fractions) != set(SPLITS):
        raise ValueError(f"fractions needs exactly the keys {SPLITS}, got {sorted(fractions)}")
    f = np.array([fractions[s] for s in SPLITS], dtype=float)
    if (f < 0).any() or not np.isclose(f.sum(), 1.0):
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    ids = [str(i) for i in item_ids]
    if test_items is None:
        return pd.DataFrame({"item_id": ids, "split": _random_split(len(ids), f, seed)})
    in_panel = _panel_mask(ids, test_items)
    if f[:2].sum() <= 0:
        raise ValueError(f"with a test panel, train + val fractions must be > 0, got {fractions}")
    split = np.full(len(ids), "test", dtype=object)
    split[~in_panel] = _random_split(int((~in_panel).sum()), np.append(f[:2] / f[:2].sum(), 0.0), seed)
    return pd.DataFrame({"item_id": ids, "split": split})


def _random_split(n: int, f: np.ndarray, seed: int) -> np.ndarray:
    """(n,) object array of split names: ``round(cumsum(f) * n)`` bounds over a seeded permutation."""
    bounds = np.round(np.cumsum(f) * n).astype(int)
    order = np.random.default_rng(seed).permutation(n)
    split = np.empty(n, dtype=object)
    split[order] = np.repeat(np.array(SPLITS, dtype=object), np.diff(np.concatenate([[0], bounds])))
    return split


def _panel_mask(ids: list[str], test_items: Sequence[str]) -> np.ndarray:
    """(N,) bool: which of ``ids`` are in the test panel; unknown panel ids are an error."""
    panel = pd.Index([str(i).strip() for i in test_items])
    if panel.empty:
        raise ValueError("test_items is empty: pass None for a random test split, or list the test panel's items")
    unknown = panel.difference(pd.Index(ids))
    if len(unknown):
        raise ValueError(
            f"{len(unknown)} test panel items are not among the {len(ids)} items, e.g. {sorted(unknown)[:N_EXAMPLES]}"
        )
    in_panel = pd.Index(ids).isin(panel)
    if in_panel.all():
        raise ValueError(f"the test panel holds all {len(ids)} items: none is left for training")
    return in_panel


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
    return remove_table_labels(LabelTable.from_numpy(y), rows, fraction, seed).to_numpy()


def check_label_values(labels: np.ndarray, n_classes: int) -> None:
    """Raise ``ValueError`` unless every observed label (of the given values, ``MISSING`` removed
    by the caller or not) is a class index in ``[0, n_classes)``; names the first offender."""
    labels = np.asarray(labels)
    observed = labels[labels != MISSING]
    if observed.size and (observed.min() < 0 or observed.max() >= n_classes):
        bad = observed[(observed < 0) | (observed >= n_classes)][0]
        raise ValueError(f"labels must be in [0, {n_classes}) or {MISSING} for missing; got {bad}")


def rows_only(labels: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(N, A) labels of the items where ``rows`` (N,) bool is set, ``MISSING`` elsewhere."""
    return np.where(np.asarray(rows, bool)[:, None], labels, MISSING)


@dataclass
class Split:
    """(N,) bool masks of the training, validation and test items."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @classmethod
    def from_names(cls, names) -> Split:
        """From one split name (``train`` / ``val`` / ``test``) per item."""
        names = pd.Series(names).to_numpy()
        return cls(names == "train", names == "val", names == "test")

    @classmethod
    def draw(cls, item_ids, fractions: dict, seed: int, test_items=None) -> Split:
        """A seeded random split (``split_items``), as the label_matrix stage draws it;
        ``test_items``: optional test panel (ids always in test, the rest train / val only)."""
        return cls.from_names(split_items(item_ids, fractions, seed, test_items=test_items)["split"])

    def labels_of(self, labels: np.ndarray, part: str) -> np.ndarray:
        """(N, A) labels of one part's items, ``MISSING`` elsewhere."""
        return rows_only(labels, getattr(self, part))


@dataclass(frozen=True, eq=False)
class LabelTable:
    """The labels given, as a long table over a fixed order of N items and A annotators.

    An (N, A) label matrix holds N * A numbers whatever the crowd labelled (CIFAR-10N's 50,000 x
    747: 300 MB for 150,000 labels; 10^6 items x 10^4 annotators: 80 GB); a ``LabelTable`` holds
    the L labels given. Entries are sorted by (item, annotator) index, the row-major order of
    the matrix, so ``to_numpy()`` and the table list the same labels in the same order.

    Attributes
    ----------
    item_ids : Index (N,) of item ids (strings), the matrix's rows.
    annotator_ids : Index (A,) of annotator ids (strings), its columns.
    items, annotators, labels : (L,) int64 row, column and class index of each label.
    """

    item_ids: pd.Index
    annotator_ids: pd.Index
    items: np.ndarray
    annotators: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        n_items, n_annotators = self.shape
        if not len(self.items) == len(self.annotators) == len(self.labels):
            raise ValueError("items, annotators and labels must have the same length")
        if len(self.items) and (self.items.min() < 0 or self.items.max() >= n_items or self.annotators.min() < 0
                                or self.annotators.max() >= n_annotators or self.labels.min() < 0):
            raise ValueError(f"item indices must lie in [0, {n_items}), annotator indices in [0, {n_annotators}), "
                             "labels >= 0")
        steps = np.diff(pair_keys(self.items, self.annotators, n_annotators))
        if (steps == 0).any():
            raise ValueError("an (item, annotator) pair appears twice")
        if (steps < 0).any():
            raise ValueError("entries must be sorted by (item, annotator) (use from_entries)")

    @property
    def shape(self) -> tuple[int, int]:
        """(N, A)."""
        return len(self.item_ids), len(self.annotator_ids)

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def from_entries(cls, item_ids, annotator_ids, items, annotators, labels) -> LabelTable:
        """From (L,) row, column and class indices in any order; one label per (item, annotator)."""
        items, annotators, labels = (np.asarray(a, dtype=np.int64).ravel() for a in (items, annotators, labels))
        order = np.argsort(pair_keys(items, annotators, len(annotator_ids)), kind="stable")  # linear when sorted
        return cls(pd.Index(item_ids, name="item_id"), pd.Index(annotator_ids, name="annotator_id"),
                   items[order], annotators[order], labels[order])

    @classmethod
    def from_numpy(cls, matrix: np.ndarray, item_ids=None, annotator_ids=None) -> LabelTable:
        """From an (N, A) int matrix, ``MISSING`` where there is no label (ids default to 0..N-1, 0..A-1)."""
        matrix = np.asarray(matrix)
        if matrix.ndim != 2:
            raise ValueError(f"a label matrix must be 2-D (N, A), got shape {matrix.shape}")
        items, annotators = np.nonzero(matrix != MISSING)  # row-major: already sorted
        return cls(pd.Index(range(matrix.shape[0]) if item_ids is None else item_ids, name="item_id"),
                   pd.Index(range(matrix.shape[1]) if annotator_ids is None else annotator_ids, name="annotator_id"),
                   items.astype(np.int64), annotators.astype(np.int64), matrix[items, annotators].astype(np.int64))

    @classmethod
    def from_matrix(cls, matrix: pd.DataFrame) -> LabelTable:
        """From an (N, A) label-matrix DataFrame (index item ids, columns annotator ids)."""
        return cls.from_numpy(matrix.to_numpy(), matrix.index, matrix.columns)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> LabelTable:
        """From ``to_frame``'s long table: categorical ``item_id`` and ``annotator_id`` (their
        categories are all N items and A annotators, in order) and an int ``label``."""
        missing = {"item_id", "annotator_id", "label"} - set(frame.columns)
        if missing:
            raise ValueError(f"a label table needs the columns item_id, annotator_id, label; missing {sorted(missing)}")
        for column in ("item_id", "annotator_id"):
            if not isinstance(frame[column].dtype, pd.CategoricalDtype):
                raise ValueError(
                    f"the label table's {column} column must be categorical (its categories name every "
                    f"{column.split('_')[0]} in order), got {frame[column].dtype}: build it with LabelTable.to_frame"
                )
        item_codes, annotator_codes = frame["item_id"].cat.codes.to_numpy(), frame["annotator_id"].cat.codes.to_numpy()
        if (item_codes < 0).any() or (annotator_codes < 0).any() or frame["label"].isna().any():
            raise ValueError("the label table has rows without an item, an annotator or a label")
        return cls.from_entries(frame["item_id"].cat.categories, frame["annotator_id"].cat.categories,
                                item_codes, annotator_codes, frame["label"].to_numpy())

    def to_frame(self) -> pd.DataFrame:
        """Long table (L, 3): categorical ``item_id`` and ``annotator_id`` (categories: every item and
        annotator in order, so a Parquet file of it keeps the items and annotators without labels),
        int64 ``label``."""
        return pd.DataFrame({
            "item_id": pd.Categorical.from_codes(self.items, categories=self.item_ids.astype(str)),
            "annotator_id": pd.Categorical.from_codes(self.annotators, categories=self.annotator_ids.astype(str)),
            "label": self.labels,
        })

    def to_numpy(self) -> np.ndarray:
        """The (N, A) int64 label matrix, ``MISSING`` where there is no label (for small data)."""
        matrix = np.full(self.shape, MISSING, dtype=np.int64)
        matrix[self.items, self.annotators] = self.labels
        return matrix

    def to_matrix(self) -> pd.DataFrame:
        """``to_numpy`` as a DataFrame: index ``item_id``, one column per annotator id."""
        return pd.DataFrame(self.to_numpy(), index=self.item_ids.copy(), columns=self.annotator_ids.copy())

    def starts(self) -> np.ndarray:
        """(N + 1,) int64: item i's labels are entries ``starts[i]:starts[i + 1]``."""
        return self._starts

    @functools.cached_property
    def _starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(np.bincount(self.items, minlength=self.shape[0]))])

    def entries_of(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The entries of items ``rows`` (m,): (E,) their positions in ``rows`` and in the table."""
        rows = np.asarray(rows, dtype=np.int64)
        return expand_ranges(self._starts[rows], np.diff(self._starts)[rows])

    def rows_dense(self, rows: np.ndarray) -> np.ndarray:
        """(m, A) int64 matrix rows of items ``rows``, ``MISSING`` where there is no label:
        O(m x A + their labels), never O(N x A)."""
        local, entries = self.entries_of(rows)
        out = np.full((len(rows), self.shape[1]), MISSING, dtype=np.int64)
        out[local, self.annotators[entries]] = self.labels[entries]
        return out

    def select(self, keep: np.ndarray) -> LabelTable:
        """The entries where ``keep`` (L,) bool is set (same items and annotators)."""
        keep = np.asarray(keep, dtype=bool)
        return LabelTable(self.item_ids, self.annotator_ids, self.items[keep], self.annotators[keep], self.labels[keep])

    def of_items(self, rows: np.ndarray) -> LabelTable:
        """The labels of the items where ``rows`` (N,) bool is set (``rows_only`` of the matrix)."""
        return self.select(np.asarray(rows, dtype=bool)[self.items])


def pair_keys(items, annotators, n_annotators: int) -> np.ndarray:
    """(L,) int64 ``item * A + annotator``: ascending in the matrix's row-major order."""
    return np.asarray(items, dtype=np.int64) * np.int64(max(n_annotators, 1)) + np.asarray(annotators, dtype=np.int64)


def find_sorted(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``keys`` sits in the ascending ``sorted_keys`` and whether it is there:
    (positions, found), positions meaningful where found."""
    position = np.searchsorted(sorted_keys, keys)
    found = position < len(sorted_keys)
    found[found] = sorted_keys[position[found]] == keys[found]
    return position, found


def expand_ranges(first: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranges ``first[r] : first[r] + counts[r]`` laid end to end: (E,) each position's range
    ``r`` and the position itself, without a loop over the ranges."""
    local = np.repeat(np.arange(len(counts)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return local, np.repeat(first, counts) + offsets


def remove_table_labels(table: LabelTable, rows: np.ndarray, fraction: float, seed: int) -> LabelTable:
    """``remove_labels`` on a ``LabelTable``: the same labels are removed for the same seed (the
    candidates are listed in the matrix's row-major order either way)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction of labels to remove must be in [0, 1), got {fraction}")
    candidates = np.flatnonzero(np.asarray(rows, dtype=bool)[table.items])
    n_remove = int(round(fraction * candidates.size))
    keep = np.ones(len(table), dtype=bool)
    keep[np.random.default_rng(seed).choice(candidates, size=n_remove, replace=False)] = False
    return table.select(keep)


def as_label_table(labels) -> LabelTable:
    """``labels`` as a ``LabelTable``: a table as it is, an (N, A) matrix (``MISSING`` = -1) converted."""
    return labels if isinstance(labels, LabelTable) else LabelTable.from_numpy(np.asarray(labels, dtype=np.int64))


def matrix_or_table(labels):
    """``labels`` as it is if a ``LabelTable``, else as an array (an (N, A) matrix): for the
    functions that read the observed entries either way (``kappa.observed_entries``)."""
    return labels if isinstance(labels, LabelTable) else np.asarray(labels)
