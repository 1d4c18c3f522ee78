"""The input-folder format: any folder holding one crowd-labelled data set.

```
my_data/
  labels.csv     item_id,annotator_id,label   one row per label given (ids may be strings;
                                              labels are class indices or class names)
  classes.txt    optional: line k names class k
  truth.csv      optional: item_id,label      expert labels, used only for reporting
  test_items.txt optional: one item_id a line  a test panel: items always in the test split
                                              (the other items are split into train / val)
  and ONE input kind:
  features.npy   (N, D) float   row i is item i (item_id = row index)
  images.npy     (N, H, W, 3) uint8  row i is item i; resized to 224 x 224 for the backbone
  videos/        one clip per item, named <item_id>.<ext> (avi, mp4, mov, mkv, webm)
```
``features*.npy`` / ``images*.npy`` (e.g. ``images64.npy``) count as features / images; files
starting with ``test_`` or ``valid_`` are ignored (held-out items without crowd labels). A
folder with features beside images uses the features (they are usually computed from those
images); ``input_kind`` picks another. Two files of one kind, or videos beside an array, are
ambiguous and an error.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from simlabel.errors import UserError

logger = logging.getLogger(__name__)

INPUT_KINDS = ("features", "images", "videos")
VIDEO_SUFFIXES = {".avi", ".mp4", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
LABEL_COLUMNS = ["item_id", "annotator_id", "label"]
# labels_without_inputs: drop stops instead when it would drop more than this share of the
# labels, unless the dropped ids are simply beyond the last row of an array (inputs of a subset).
MAX_DROPPED_SHARE = 0.05
ID_SHIFTS = (1, -1, 2, -2)  # item ids "+k" against the rows of an array: 1-based ids are +1
NUMERIC_KINDS = "biuf"  # bool, signed / unsigned int, float


class FolderFormatError(UserError):
    """A data folder that does not follow the input-folder format."""


@dataclass
class CrowdFolder:
    """A data folder, read lazily: tables now, arrays and clips when asked.

    ``labels`` (L, 3): item_id, annotator_id, label as text, indexed by 1-based line number of
    ``labels.csv`` (index name ``line``, ``attrs["source"]`` the file), so errors name lines.
    ``test_items``: the P item ids of ``test_items.txt`` (a test panel, in file order), each an
    item with labels; None when the folder has no such file.
    ``true_similarity``: ``true_similarity.csv`` (A x A known similarity, annotator ids as index and
    columns, e.g. the demo's expected kappa), or None.
    """

    path: Path
    labels: pd.DataFrame
    classes: list[str] | None
    truth: pd.DataFrame | None
    inputs: dict[str, list[Path]] = field(default_factory=dict)
    test_items: list[str] | None = None
    true_similarity: pd.DataFrame | None = None

    def test_panel(self, item_ids) -> list[str] | None:
        """The panel items among ``item_ids`` (ids dropped or skipped on the way are left out)."""
        known = set(item_ids)
        panel = [item for item in (self.test_items or []) if item in known]
        return panel or None

    def choose_input(self, input_kind: str = "auto") -> tuple[str, Path]:
        """The input kind and file (or folder) to use.

        Raises
        ------
        FolderFormatError
            No input, an ambiguous folder, or ``input_kind`` not present.
        """
        if input_kind not in ("auto", *INPUT_KINDS):
            raise FolderFormatError(
                f"dataset.input_kind must be auto or one of {INPUT_KINDS}, got {input_kind!r}"
            )
        present = {kind: paths for kind, paths in self.inputs.items() if paths}
        if not present:
            raise FolderFormatError(
                f"{self.path}: no input found: add features.npy (N x D), images.npy (N x H x W x 3 uint8) "
                "or a videos/ folder with one clip per item"
            )
        if input_kind == "auto":
            if "videos" in present and len(present) > 1:
                others = ", ".join(p.name for k, ps in present.items() if k != "videos" for p in ps)
                raise FolderFormatError(
                    f"{self.path}: two input kinds, videos/ and {others}: they identify items differently "
                    "(file names vs rows); set dataset.input_kind to the one to use "
                    "(e.g. --params=\"dataset.input_kind=videos\") or remove the other"
                )
            input_kind = "features" if "features" in present else next(iter(present))
        if input_kind not in present:
            raise FolderFormatError(f"{self.path}: dataset.input_kind is {input_kind!r} but the folder has no {input_kind}")
        paths = present[input_kind]
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            raise FolderFormatError(
                f"{self.path}: two {input_kind} files ({names}): simlabel cannot tell which one to use. Keep "
                f"one: move the others out of the folder or rename them so that they do not start with "
                f"{input_kind!r} (names starting with test_ or valid_ are ignored, e.g. test_{paths[-1].name} "
                "for held-out items)"
            )
        return input_kind, paths[0]

    def load_array(self, path: Path) -> np.ndarray:
        """A features / images array, memory-mapped (read-only).

        Raises
        ------
        FolderFormatError
            The file is empty, truncated, not a ``.npy`` file, pickled / object data, or not numeric.
        """
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise FolderFormatError(f"{path}: cannot be read as a NumPy array: {_npy_problem(path, error)}") from error
        if not isinstance(array, np.ndarray):  # an .npz archive
            raise FolderFormatError(f"{path}: is an .npz archive, not one array: save one array with numpy.save")
        if array.dtype.kind not in NUMERIC_KINDS:
            raise FolderFormatError(
                f"{path}: dtype {array.dtype} is not numeric: save a float (features) or uint8 (images) array"
            )
        return array

    def video_files(self) -> dict[str, Path]:
        """``{item_id: clip path}`` of the videos/ folder."""
        clips = sorted(p for p in (self.path / "videos").iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        by_item: dict[str, Path] = {}
        for clip in clips:
            if clip.stem in by_item:
                raise FolderFormatError(f"two clips for item {clip.stem!r}: {by_item[clip.stem].name}, {clip.name}")
            by_item[clip.stem] = clip
        return by_item


def _npy_problem(path: Path, error: BaseException) -> str:
    """What is wrong with an ``.npy`` file that ``np.load`` refused, in words, with the fix."""
    fix = "write it with numpy.save(path, array) from a numeric array"
    size = path.stat().st_size
    if size == 0:
        return f"the file is empty (0 bytes); {fix}"
    with open(path, "rb") as handle:
        try:
            version = np.lib.format.read_magic(handle)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(handle)
        except (ValueError, OSError, EOFError):
            return f"not a .npy file (no valid NumPy header; pickled or other data?); {fix}"
        data_start = handle.tell()
    if dtype.hasobject:
        return f"it holds Python objects (dtype {dtype}), which are never unpickled; {fix} (e.g. dtype float32)"
    expected = int(np.prod(shape)) * dtype.itemsize
    if size - data_start < expected:
        return (
            f"truncated: its header says shape {shape} {dtype} ({expected} bytes of data) but only "
            f"{size - data_start} bytes follow (not fully written or copied?); write or copy it again"
        )
    return f"{error}; {fix}"


def _input_files(folder: Path) -> dict[str, list[Path]]:
    def arrays(prefix: str) -> list[Path]:
        return sorted(p for p in folder.glob(f"{prefix}*.npy") if not re.match(r"(test|valid)_", p.name))

    videos = folder / "videos"
    has_videos = videos.is_dir() and any(p.suffix.lower() in VIDEO_SUFFIXES for p in videos.iterdir())
    return {"features": arrays("features"), "images": arrays("images"), "videos": [videos] if has_videos else []}


def read_crowd_folder(path: str | Path, require_labels: bool = True) -> CrowdFolder:
    """Read and check a data folder (see the module docstring for the format).

    ``require_labels=False`` accepts a folder without ``labels.csv`` (new items to predict).

    Raises
    ------
    FolderFormatError
        Missing folder, missing / unreadable ``labels.csv`` or its columns, a bad
        ``classes.txt``, an unreadable ``truth.csv``, a bad ``test_items.txt`` (see
        :func:`read_test_items`).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FolderFormatError(
            f"data folder not found: {folder} (the embedded demo data set is written by "
            "`dvc repro` or `kedro run --pipelines=demo_data`; another folder: --params=\"dataset_dir=<folder>\")"
        )
    labels_file = folder / "labels.csv"
    if not labels_file.is_file():
        if require_labels:
            raise FolderFormatError(f"{folder}: no labels.csv (columns item_id,annotator_id,label; one row per label)")
        return CrowdFolder(folder, pd.DataFrame(columns=LABEL_COLUMNS), _read_classes(folder), None, _input_files(folder))
    labels = read_table(labels_file, LABEL_COLUMNS)
    if labels.empty:
        raise FolderFormatError(f"{labels_file}: no labels (only a header line)")
    classes = _read_classes(folder)
    truth = None
    if (folder / "truth.csv").is_file():
        truth = read_table(folder / "truth.csv", ["item_id", "label"]).reset_index(drop=True)
    test_items = read_test_items(folder / "test_items.txt", labels["item_id"])
    return CrowdFolder(folder, labels[LABEL_COLUMNS], classes, truth, _input_files(folder), test_items,
                       _read_true_similarity(folder / "true_similarity.csv"))


def _read_true_similarity(path: Path) -> pd.DataFrame | None:
    """``true_similarity.csv``: an A x A table with annotator ids as index and header, or None."""
    if not path.is_file():
        return None
    try:
        table = pd.read_csv(path, index_col=0)
    except (ValueError, UnicodeDecodeError) as error:
        raise FolderFormatError(f"{path}: cannot be read as an annotator x annotator table: {error}") from error
    table.index, table.columns = table.index.astype(str), table.columns.astype(str)
    if sorted(table.index) != sorted(table.columns):
        raise FolderFormatError(f"{path}: rows and columns must name the same annotators")
    return table


def read_test_items(path: Path, labelled_ids: pd.Series) -> list[str] | None:
    """The test panel of ``test_items.txt``: one item id per line, each an item with labels.

    Ids are stripped; blank lines are skipped; a first line ``item_id`` that is no labelled
    item is taken as a header. None when the file does not exist.

    Parameters
    ----------
    path : the ``test_items.txt`` file.
    labelled_ids : (L,) item ids of ``labels.csv`` (text).

    Returns
    -------
    The P panel ids in file order, or None.

    Raises
    ------
    FolderFormatError
        Not UTF-8, no id, an id listed twice, an id without labels in ``labels.csv``, or a panel
        holding every labelled item (none left to train on); the message names the lines.
    """
    if not path.is_file():
        return None
    lines = pd.Series([line.strip() for line in _read_text(path).splitlines()], dtype=str)
    lines.index = pd.RangeIndex(1, len(lines) + 1, name="line")
    known = set(labelled_ids.astype(str).str.strip())
    if len(lines) and lines.iloc[0] == "item_id" and "item_id" not in known:
        lines = lines.iloc[1:]  # a header line
    ids = lines[lines != ""]
    if ids.empty:
        raise FolderFormatError(f"{path}: no item ids: list one item_id per line (the test panel), or remove the file")
    repeated = ids[ids.duplicated(keep=False)]
    if len(repeated):
        first = repeated.iloc[0]
        raise FolderFormatError(
            f"{path}: item {first!r} is listed more than once (lines {repeated.index[repeated == first].tolist()}); "
            "list each test item once"
        )
    unknown = ids[~ids.isin(known)]
    if len(unknown):
        shown = ", ".join(f"line {line} ({item!r})" for line, item in unknown.head(5).items())
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise FolderFormatError(
            f"{path}: {len(unknown)} test items have no labels in labels.csv: {shown}{more}. "
            "Every test item must be an item_id of labels.csv (test accuracy is measured on its labels)"
        )
    if len(ids) == len(known):
        raise FolderFormatError(
            f"{path}: lists all {len(known)} labelled items, so none is left for training; "
            "the test panel must be a part of the items"
        )
    return ids.tolist()


def _read_text(path: Path) -> str:
    """A UTF-8 text file (a byte-order mark is allowed); other encodings are an error naming
    the first bad byte and its line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise FolderFormatError(
            f"{path}: not UTF-8 text: byte {error.start} (line {line}) is {data[error.start:error.start + 1]!r}. "
            f"Save the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 {path.name} > {path.stem}_utf8{path.suffix}` "
            "and rename the result"
        ) from error


def read_table(path: Path, columns: list[str]) -> pd.DataFrame:
    """A CSV file with a header line as a DataFrame of text (L, >= len(columns)), indexed by the
    1-based line number of each row (index name ``line``); ``attrs["source"]`` is ``path``.
    Blank lines are skipped; column names are stripped.

    Raises
    ------
    FolderFormatError
        Not UTF-8, empty, a row with more or fewer fields than the header, a column named
        twice, missing ``columns``.
    """
    reader = csv.reader(io.StringIO(_read_text(path)))
    try:
        header = [name.strip() for name in next(reader, [])]
        rows, lines = [], []
        for row in reader:
            if row:
                rows.append(row)
                lines.append(reader.line_num)
    except csv.Error as error:
        raise FolderFormatError(f"{path}: line {reader.line_num}: {error}") from error
    if not header:
        raise FolderFormatError(f"{path}: empty file: expected a header line {','.join(columns)} and one row per entry")
    widths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    ragged = np.flatnonzero(widths != len(header))
    if ragged.size:
        first = ragged[0]
        raise FolderFormatError(
            f"{path}: {ragged.size} rows do not have the header's {len(header)} fields ({','.join(header)}): "
            f"line {lines[first]} has {widths[first]}: {','.join(rows[first])!r}"
            + (f"; also lines {[lines[i] for i in ragged[1:6]]}" if ragged.size > 1 else "")
            + ". Quote values that contain commas; give every row all columns"
        )
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise FolderFormatError(f"{path}: the header line names {repeated} more than once; name each column once")
    missing = [c for c in columns if c not in header]
    if missing:
        raise FolderFormatError(f"{path}: missing columns {missing} (found {header}); the header line must name {columns}")
    table = pd.DataFrame(rows, columns=header, index=pd.Index(lines, name="line"), dtype=str)
    table.attrs["source"] = str(path)
    return table


def _read_classes(folder: Path) -> list[str] | None:
    """``classes.txt``: line k (1-based) names class k - 1. Blank lines at the end are ignored;
    a blank line before the last name (it would shift every class after it) or a duplicate
    name is an error naming the lines."""
    classes_file = folder / "classes.txt"
    if not classes_file.is_file():
        return None
    names = [line.strip() for line in _read_text(classes_file).splitlines()]
    while names and not names[-1]:
        names.pop()
    if not names:
        logger.warning("%s is empty: classes are inferred from the labels", classes_file)
        return None
    blank = [k + 1 for k, name in enumerate(names) if not name]
    if blank:
        raise FolderFormatError(
            f"{classes_file}: line {blank[0]} is blank{f' (also lines {blank[1:6]})' if len(blank) > 1 else ''}: "
            "line k names class k-1, so a blank line would shift every class after it; remove it"
        )
    first: dict[str, int] = {}
    for line, name in enumerate(names, start=1):
        if name in first:
            raise FolderFormatError(
                f"{classes_file}: class {name!r} is named twice (lines {first[name]} and {line}); class names must be unique"
            )
        first[name] = line
    return names


def array_item_ids(n_rows: int) -> list[str]:
    """Item ids of an array input: the row indices, as strings."""
    return [str(i) for i in range(n_rows)]


def restrict_labels_to_items(
    labels: pd.DataFrame, item_ids, policy: str, source: str, max_dropped_share: float = MAX_DROPPED_SHARE
) -> pd.DataFrame:
    """Labels (L, 3) of items that have an input; labels of other items are an error (``policy``
    ``error``) or dropped with a warning (``drop``, e.g. inputs that cover a subset of items).

    Even with ``drop`` it stops (``FolderFormatError``) when the ids look shifted against the
    rows of an array (1-based ids: every labelled id - k has a row, for a small k != 0), or
    when more than ``max_dropped_share`` of the labels would go and the dropped ids are not
    simply beyond the last row (an array of the first N items).
    """
    if policy not in ("error", "drop"):
        raise FolderFormatError(f"dataset.labels_without_inputs must be 'error' or 'drop', got {policy!r}")
    item_ids = [str(i) for i in item_ids]
    ids = labels["item_id"].astype(str).str.strip()
    known = ids.isin(set(item_ids)) | ids.eq("")  # blank ids: an error of their own (build_label_matrix)
    if known.all():
        return labels
    n_items = ids[~known].nunique()
    message = (
        f"{int((~known).sum())} of {len(labels)} labels ({n_items} items) are for items without an input in "
        f"{source} ({len(item_ids)} items"
    )
    shift = _id_shift(ids, item_ids)
    if shift:
        raise FolderFormatError(_shift_message(ids, known, len(item_ids), shift, source))
    beyond_rows = _beyond_rows(ids[~known], item_ids)
    share = float((~known).mean())
    if share > max_dropped_share and not beyond_rows:
        examples = sorted(ids[~known].unique(), key=str)[:5]
        raise FolderFormatError(
            f"{message}, e.g. {examples}; input ids e.g. {item_ids[:3]}): {share:.0%} of the labels would be lost "
            f"(more than {max_dropped_share:.0%}), so the item ids probably do not match the inputs (for arrays "
            "item_id is the 0-based row index; for videos the file name without extension). Fix the ids in "
            "labels.csv, or remove the labels of items that have no input"
        )
    if policy == "error":
        raise FolderFormatError(
            f"{message}; for arrays item_id must be the row index). "
            "Set labels_without_inputs: drop to train on the items that have inputs "
            "(--params=\"dataset.labels_without_inputs=drop\")."
        )
    if not known.any():
        raise FolderFormatError(f"{message}): no label is left")
    logger.warning("%s): dropped (labels_without_inputs: drop)", message)
    return labels[known]


def _row_indices(ids: pd.Series, item_ids: list[str]) -> np.ndarray | None:
    """The unique labelled ids as integers when the inputs are the rows of an array
    (``item_ids`` = ``0..N-1``) and every id is an integer; else None."""
    n = len(item_ids)
    if n == 0 or item_ids[0] != "0" or item_ids[-1] != str(n - 1) or item_ids != array_item_ids(n):
        return None
    unique = pd.Series(ids.unique())
    if not unique.str.fullmatch(r"-?\d+").all():
        return None
    return unique.astype(np.int64).to_numpy()


def _id_shift(ids: pd.Series, item_ids: list[str]) -> int:
    """k != 0 if every labelled id - k is a row of the array (ids shifted by +k), else 0."""
    values = _row_indices(ids, item_ids)
    if values is None:
        return 0
    n = len(item_ids)
    return next((k for k in ID_SHIFTS if ((values - k >= 0) & (values - k < n)).all()), 0)


def _beyond_rows(dropped: pd.Series, item_ids: list[str]) -> bool:
    """True when every dropped id is an integer past the last row of an array input: the array
    holds the first N items (e.g. images of a subset)."""
    values = _row_indices(dropped, item_ids)
    return values is not None and bool((values >= len(item_ids)).all())


def _shift_message(ids: pd.Series, known: pd.Series, n_rows: int, shift: int, source: str) -> str:
    values = ids.astype(np.int64)
    lowest, highest = int(values.min()), int(values.max())
    missing = sorted(ids[~known].astype(np.int64).unique().tolist())
    fix = f"subtract {shift} from" if shift > 0 else f"add {-shift} to"
    return (
        f"item ids look shifted by {shift:+d} against the rows of {source}: labels use {lowest}..{highest}, "
        f"rows are 0..{n_rows - 1} (item_id must be the 0-based row index), and every labelled id {-shift:+d} "
        f"is a row while {int((~known).sum())} labels ({len(missing)} items, e.g. {missing[:5]}) have no row. "
        f"If the ids are 1-based or offset, {fix} every item_id in labels.csv (and truth.csv); "
        "if they are right, remove the labels of the items that have no row"
    )
