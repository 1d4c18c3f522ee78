"""The folder's labels -> the validated long label table, item split, optional label removal.

The stage's outputs hold the L labels given (``LabelTable.to_frame``: categorical item and
annotator ids whose categories keep every item and annotator in order), never an (N, A) matrix;
the catalog's ``label_matrix`` entry shows one for small data."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from simlabel.core.labels import (
    LabelTable,
    LabelTableError,
    build_label_table,
    remove_table_labels,
    split_items,
)
from simlabel.folder import CrowdFolder, restrict_labels_to_items

logger = logging.getLogger(__name__)


def make_labels(
    crowd_folder: CrowdFolder, ingested_items: pd.DataFrame, bad_videos: pd.DataFrame, dataset: dict
) -> tuple[pd.DataFrame, list[str]]:
    """Validated labels of the ingested items.

    Labels of clips skipped as unreadable are dropped; labels of other items without an input
    are an error unless ``dataset.labels_without_inputs`` is ``drop``.

    Returns
    -------
    labels_full : long table (L, 3) ``LabelTable.to_frame``: item_id, annotator_id (categorical:
        all N ingested items and all A annotators, in order), label (class index).
    classes : class names in index order.
    """
    labels = crowd_folder.labels
    skipped = labels["item_id"].astype(str).isin(bad_videos["item_id"].astype(str))
    if skipped.any():
        logger.warning("dropping %d labels of %d skipped clips", int(skipped.sum()), bad_videos["item_id"].nunique())
    item_ids = ingested_items["item_id"].astype(str).tolist()
    labels = restrict_labels_to_items(labels[~skipped], item_ids, dataset["labels_without_inputs"], str(crowd_folder.path))
    table, classes = build_label_table(labels, item_ids, classes=crowd_folder.classes)
    check_learnable(table, classes, crowd_folder.path)
    n_items, n_annotators = table.shape
    logger.info("labels: %d items x %d annotators, %d classes, %d labels (%.1f %% missing)",
                n_items, n_annotators, len(classes), len(table), 100 * (1 - len(table) / max(n_items * n_annotators, 1)))
    return table.to_frame(), classes


def check_learnable(table: LabelTable, classes: list[str], source) -> None:
    """Labels of a single class cannot train a classifier (an error); a single annotator leaves
    nobody to borrow labels from, so every method equals Skip (a warning)."""
    used = np.unique(table.labels)
    if used.size < 2:
        raise LabelTableError(
            f"{source}/labels.csv: every label is class {[classes[k] for k in used]}: there is nothing to "
            "learn (a classifier needs at least two classes); check the label column"
        )
    if table.shape[1] == 1:
        logger.warning(
            "only one annotator (%s): SimLabel has no other annotator to borrow labels from, so every "
            "method trains the same model as Skip", table.annotator_ids[0],
        )


def make_item_split(labels_full: pd.DataFrame, crowd_folder: CrowdFolder, params: dict) -> pd.DataFrame:
    """Seeded train / val / test split of the items; the folder's test panel (``test_items.txt``)
    is always test, the other items then fill train and val."""
    item_ids = labels_full["item_id"].cat.categories
    panel = crowd_folder.test_panel(item_ids)
    return split_items(item_ids, params["split_fractions"], params["seed"], test_items=panel)


def apply_extra_missing(labels_full: pd.DataFrame, item_split: pd.DataFrame, params: dict) -> pd.DataFrame:
    """Remove ``extra_missing`` (r) of the observed training labels at random (SPEC section 7)."""
    fraction = params["extra_missing"]
    if not fraction:
        return labels_full
    table = LabelTable.from_frame(labels_full)
    train = item_split.set_index("item_id").loc[table.item_ids, "split"].eq("train").to_numpy()
    kept = remove_table_labels(table, train, fraction, params["seed"])
    if len(kept) == 0:  # (a Parquet file of no rows would also lose the item and annotator ids)
        raise LabelTableError(f"label_matrix.extra_missing: {fraction} removes all {len(table)} labels: "
                              "nothing is left to train on; lower it")
    logger.info("removed %.0f %% of the observed training labels (%d of %d labels left)",
                100 * fraction, len(kept), len(table))
    return kept.to_frame()
