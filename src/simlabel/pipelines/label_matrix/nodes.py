"""Long label table -> validated (N, A) label matrix, item split, optional label removal."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from simlabel.core.labels import (
    MISSING,
    LabelTableError,
    build_label_matrix,
    remove_labels,
    split_items,
)
from simlabel.folder import CrowdFolder, restrict_labels_to_items

logger = logging.getLogger(__name__)


def make_label_matrix(
    crowd_folder: CrowdFolder, ingested_items: pd.DataFrame, bad_videos: pd.DataFrame, dataset: dict
) -> tuple[pd.DataFrame, list[str]]:
    """Validated label matrix over the ingested items.

    Labels of clips skipped as unreadable are dropped; labels of other items without an input
    are an error unless ``dataset.labels_without_inputs`` is ``drop``.

    Returns
    -------
    label_matrix_full : DataFrame (N, A), index item_id, columns annotator ids, -1 = missing.
    classes : class names in index order.
    """
    labels = crowd_folder.labels
    skipped = labels["item_id"].astype(str).isin(bad_videos["item_id"].astype(str))
    if skipped.any():
        logger.warning("dropping %d labels of %d skipped clips", int(skipped.sum()), bad_videos["item_id"].nunique())
    item_ids = ingested_items["item_id"].astype(str).tolist()
    labels = restrict_labels_to_items(labels[~skipped], item_ids, dataset["labels_without_inputs"], str(crowd_folder.path))
    matrix, classes = build_label_matrix(labels, item_ids, classes=crowd_folder.classes)
    check_learnable(matrix, classes, crowd_folder.path)
    observed = (matrix.to_numpy() != MISSING).mean(0)
    logger.info(
        "label matrix: %d items x %d annotators, %d classes, %.1f %% missing",
        *matrix.shape, len(classes), 100 * (1 - observed.mean()),
    )
    return matrix, classes


def check_learnable(matrix: pd.DataFrame, classes: list[str], source) -> None:
    """A label matrix with a single class used cannot train a classifier (an error); a single
    annotator leaves nobody to borrow labels from, so every method equals Skip (a warning)."""
    used = np.unique(matrix.to_numpy()[matrix.to_numpy() != MISSING])
    if used.size < 2:
        raise LabelTableError(
            f"{source}/labels.csv: every label is class {[classes[k] for k in used]}: there is nothing to "
            "learn (a classifier needs at least two classes); check the label column"
        )
    if matrix.shape[1] == 1:
        logger.warning(
            "only one annotator (%s): SimLabel has no other annotator to borrow labels from, so every "
            "method trains the same model as Skip", matrix.columns[0],
        )


def make_item_split(label_matrix_full: pd.DataFrame, crowd_folder: CrowdFolder, params: dict) -> pd.DataFrame:
    """Seeded train / val / test split of the items; the folder's test panel (``test_items.txt``)
    is always test, the other items then fill train and val."""
    panel = crowd_folder.test_panel(label_matrix_full.index)
    return split_items(label_matrix_full.index, params["split_fractions"], params["seed"], test_items=panel)


def apply_extra_missing(label_matrix_full: pd.DataFrame, item_split: pd.DataFrame, params: dict) -> pd.DataFrame:
    """Remove ``extra_missing`` (r) of the observed training labels at random (SPEC section 7)."""
    fraction = params["extra_missing"]
    if not fraction:
        return label_matrix_full
    train = item_split.set_index("item_id").loc[label_matrix_full.index, "split"].eq("train").to_numpy()
    values = remove_labels(label_matrix_full.to_numpy(), train, fraction, params["seed"])
    logger.info("removed %.0f %% of the observed training labels", 100 * fraction)
    return pd.DataFrame(values, index=label_matrix_full.index, columns=label_matrix_full.columns)
