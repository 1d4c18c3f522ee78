"""Annotator similarity from the training labels, and its heatmap."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from simlabel.core.labels import Split
from simlabel.core.similarity import similarity_from_params
from simlabel.reports import similarity_heatmaps


def compute_similarity(label_matrix: pd.DataFrame, item_split: pd.DataFrame, classes: list, params: dict) -> pd.DataFrame:
    """A x A kappa similarity (SPEC section 1) from the observed labels of training items."""
    names = item_split.set_index("item_id")["split"].reindex(label_matrix.index)
    if names.isna().any():
        raise ValueError(f"{int(names.isna().sum())} items of the label matrix are not in item_split: rerun label_matrix")
    train_labels = Split.from_names(names).labels_of(label_matrix.to_numpy(), "train")
    values = similarity_from_params(train_labels, len(classes), params)
    return pd.DataFrame(values, index=label_matrix.columns.copy(), columns=label_matrix.columns.copy())


def plot_similarity(similarity: pd.DataFrame) -> Figure:
    return similarity_heatmaps({"Annotator similarity from the training labels (Cohen's kappa)": similarity})
