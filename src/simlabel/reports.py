"""Figures and Markdown shared by the reporting stages (no Kedro here)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from simlabel.core.pair_similarity import PairSimilarity

MAX_MARKDOWN_ANNOTATORS = 20  # wider tables go to CSV only
# Past this many annotators a heatmap shows an evenly spaced sample of them: drawing 3,000 x 3,000
# took 4.4 s for two panels (quadratic in A), and no screen shows more cells than this anyway.
MAX_HEATMAP_ANNOTATORS = 300


def heatmap_positions(n_annotators: int) -> np.ndarray:
    """The annotator positions a similarity heatmap shows: all up to ``MAX_HEATMAP_ANNOTATORS``,
    past it one in ceil(A / MAX_HEATMAP_ANNOTATORS), in order."""
    return np.arange(0, n_annotators, _heatmap_step(n_annotators))


def _heatmap_step(n_annotators: int) -> int:
    return max(-(-n_annotators // MAX_HEATMAP_ANNOTATORS), 1)


def _shown(matrix: pd.DataFrame | PairSimilarity, names: pd.Index | None, positions: np.ndarray) -> pd.DataFrame:
    """The block of the annotators ``names`` (all of them where None) as a DataFrame; a
    similarity without annotator ids is read at ``positions``. A sparse similarity makes only
    that block, never its (A, A) matrix."""
    if isinstance(matrix, PairSimilarity):
        ids = matrix.annotator_ids
        return matrix.to_frame(positions if names is None or ids is None else ids.get_indexer(names))
    return matrix if names is None else matrix.reindex(index=names, columns=names)


def similarity_heatmaps(matrices: dict[str, pd.DataFrame | PairSimilarity],
                        colorbar_label: str = "kappa (clipped at 0)") -> Figure:
    """Heatmaps of A x A similarities (DataFrames or ``PairSimilarity``) side by side, titled by
    their keys (diagonal masked: it is not used; past ``MAX_HEATMAP_ANNOTATORS`` the same evenly
    spaced sample of the annotators in every panel). Where every panel names the same annotators
    in the same order, they are named once per row (y) and per column (x), on the outer panels only."""
    first = next(iter(matrices.values()))
    shown_of = first.shape[0]
    positions = heatmap_positions(shown_of)
    names = None  # every annotator, each panel in its own order
    if positions.size < shown_of:  # the first panel's sampled annotators, in every panel
        ids = first.annotator_ids if isinstance(first, PairSimilarity) else first.index
        names = ids[positions] if ids is not None else None
    matrices = {title: _shown(m, names, positions) for title, m in matrices.items()}
    first = next(iter(matrices.values()))
    n = len(first)
    same_order = all(m.index.equals(first.index) and m.columns.equals(first.columns) for m in matrices.values())
    # Readable names up to 60 annotators at a size that still saves fast (a 75-inch-wide figure
    # took 2 s to write); at most three panels per row. Drawing the names is most of the time
    # (labelme, 6 panels x 59 annotators: 4.7 s to save with names on every panel).
    cell = 0.3 if n <= 20 else 0.16
    size = 1.2 + cell * min(n, 60)
    columns = min(len(matrices), 3)
    rows = -(-len(matrices) // columns)
    figure = Figure(figsize=(0.8 + size * columns, (size + 0.6) * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for ax in axes[len(matrices):]:
        ax.remove()
    for k, (ax, (title, matrix)) in enumerate(zip(axes, matrices.items(), strict=False)):
        values = matrix.to_numpy(dtype=float).copy()
        np.fill_diagonal(values, np.nan)
        image = ax.imshow(values, vmin=0, vmax=1, cmap="viridis")
        if n <= 60:
            fontsize = 7 if n <= 20 else 4.5
            if k + columns >= len(matrices) or not same_order:  # the bottom panel of its column
                ax.set_xticks(range(n), matrix.columns, rotation=90, fontsize=fontsize)
            else:
                ax.set_xticks([])
            if k % columns == 0 or not same_order:
                ax.set_yticks(range(n), matrix.index, fontsize=fontsize)
            else:
                ax.set_yticks([])
        ax.set_title(title, fontsize=9)
    figure.colorbar(image, ax=list(axes[: len(matrices)]), label=colorbar_label, shrink=0.8)
    if n < shown_of:
        figure.suptitle(f"{n} of {shown_of} annotators (one in {_heatmap_step(shown_of)}, in order)",
                        fontsize=9)
    return figure


def markdown_table(table: pd.DataFrame, digits: int = 3) -> str:
    """A table as Markdown, numbers to ``digits`` places, blanks for NaN."""
    shown = table.copy()
    numeric = shown.select_dtypes("floating").columns
    shown[numeric] = shown[numeric].apply(lambda column: column.map(lambda v: "" if pd.isna(v) else f"{v:.{digits}f}"))
    return shown.fillna("").to_markdown(index=False, disable_numparse=True)
