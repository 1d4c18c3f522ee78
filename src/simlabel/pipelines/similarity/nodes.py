"""Annotator similarity from the training labels, and its heatmap."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from simlabel.core.labels import LabelTable
from simlabel.core.similarity import similarity_from_params
from simlabel.reports import similarity_heatmaps


def compute_similarity(labels: pd.DataFrame, item_split: pd.DataFrame, classes: list, params: dict) -> pd.DataFrame:
    """A x A kappa similarity (SPEC section 1) from the observed labels of training items.

    ``labels``: the long label table (``LabelTable.to_frame``)."""
    table = LabelTable.from_frame(labels)
    names = item_split.set_index("item_id")["split"].reindex(table.item_ids)
    if names.isna().any():
        raise ValueError(f"{int(names.isna().sum())} items of the labels are not in item_split: rerun label_matrix")
    values = similarity_from_params(table.of_items(names.eq("train").to_numpy()), len(classes), params)
    return pd.DataFrame(values, index=table.annotator_ids.copy(), columns=table.annotator_ids.copy())


def plot_similarity(similarity: pd.DataFrame) -> Figure:
    return similarity_heatmaps({"Annotator similarity from the training labels (Cohen's kappa)": similarity})
