"""Figures and Markdown shared by the reporting stages (no Kedro here)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

MAX_MARKDOWN_ANNOTATORS = 20  # wider tables go to CSV only


def similarity_heatmaps(matrices: dict[str, pd.DataFrame], colorbar_label: str = "kappa (clipped at 0)") -> Figure:
    """Heatmaps of A x A similarity matrices side by side, titled by their keys (diagonal masked:
    it is not used)."""
    n = len(next(iter(matrices.values())))
    size = 1.0 + 0.3 * min(n, 60)
    figure = Figure(figsize=(0.5 + size * len(matrices), size + 0.6), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(matrices)))
    for ax, (title, matrix) in zip(axes, matrices.items(), strict=True):
        values = matrix.to_numpy(dtype=float).copy()
        np.fill_diagonal(values, np.nan)
        image = ax.imshow(values, vmin=0, vmax=1, cmap="viridis")
        if n <= 60:
            ax.set_xticks(range(n), matrix.columns, rotation=90, fontsize=7)
            ax.set_yticks(range(n), matrix.index, fontsize=7)
        ax.set_title(title, fontsize=9)
    figure.colorbar(image, ax=list(axes), label=colorbar_label, shrink=0.8)
    return figure


def markdown_table(table: pd.DataFrame, digits: int = 3) -> str:
    """A table as Markdown, numbers to ``digits`` places, blanks for NaN."""
    shown = table.copy()
    numeric = shown.select_dtypes("floating").columns
    shown[numeric] = shown[numeric].apply(lambda column: column.map(lambda v: "" if pd.isna(v) else f"{v:.{digits}f}"))
    return shown.fillna("").to_markdown(index=False, disable_numparse=True)
