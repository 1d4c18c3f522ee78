"""Cohen's-kappa annotator similarity from the training labels, and its heatmap."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from simlabel.core.kappa import kappa_matrix
from simlabel.core.labels import MISSING


def training_labels(label_matrix: pd.DataFrame, item_split: pd.DataFrame) -> np.ndarray:
    """(N, A) labels of the training items only (val / test entries set to missing)."""
    split = item_split.set_index("item_id")["split"].reindex(label_matrix.index)
    if split.isna().any():
        raise ValueError(f"{int(split.isna().sum())} items of the label matrix are not in item_split")
    return np.where(split.eq("train").to_numpy()[:, None], label_matrix.to_numpy(), MISSING)


def compute_similarity(label_matrix: pd.DataFrame, item_split: pd.DataFrame, classes: list, params: dict) -> pd.DataFrame:
    """A x A kappa similarity (SPEC section 1) from the observed labels of training items."""
    values = kappa_matrix(training_labels(label_matrix, item_split), len(classes), params["min_overlap"])
    return pd.DataFrame(values, index=label_matrix.columns.copy(), columns=label_matrix.columns.copy())


def plot_similarity(similarity: pd.DataFrame, title: str = "Annotator similarity (Cohen's kappa)") -> Figure:
    """Heatmap of a similarity matrix (diagonal masked: it is not used)."""
    values = similarity.to_numpy(dtype=float).copy()
    np.fill_diagonal(values, np.nan)
    n = len(similarity)
    figure = Figure(figsize=(1.5 + 0.35 * min(n, 60), 1.0 + 0.35 * min(n, 60)), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(values, vmin=0, vmax=1, cmap="viridis")
    if n <= 60:
        axes.set_xticks(range(n), similarity.columns, rotation=90)
        axes.set_yticks(range(n), similarity.index)
    axes.set_title(title)
    figure.colorbar(image, ax=axes, label="kappa (clipped at 0)")
    return figure
