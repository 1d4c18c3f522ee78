"""Annotator similarity from the training labels, and its heatmap."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from simlabel.core.labels import LabelTable
from simlabel.core.pair_similarity import PairSimilarity
from simlabel.core.similarity import similarity_from_params
from simlabel.reports import similarity_heatmaps


def compute_similarity(labels: pd.DataFrame, item_split: pd.DataFrame, classes: list, params: dict) -> PairSimilarity:
    """The A x A annotator similarity (SPEC section 1; ``params["estimator"]``) from the observed
    labels of training items, as a ``PairSimilarity`` named by the annotator ids: the pairs with
    evidence and the estimator's prior rule for the rest (``to_frame()`` gives the matrix).

    ``labels``: the long label table (``LabelTable.to_frame``)."""
    table = LabelTable.from_frame(labels)
    names = item_split.set_index("item_id")["split"].reindex(table.item_ids)
    if names.isna().any():
        raise ValueError(f"{int(names.isna().sum())} items of the labels are not in item_split: rerun label_matrix")
    return similarity_from_params(table.of_items(names.eq("train").to_numpy()), len(classes), params)


def plot_similarity(similarity: PairSimilarity) -> Figure:
    return similarity_heatmaps({"Annotator similarity from the training labels (Cohen's kappa)": similarity})
