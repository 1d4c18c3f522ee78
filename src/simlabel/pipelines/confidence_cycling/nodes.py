"""SimLabel + confidence cycling: the same training loop with imputation and refreshed similarity."""

from __future__ import annotations

import numpy as np
import pandas as pd

from simlabel.pipelines.training.nodes import branch_outputs, fit


def train_with_cycling(
    embeddings: np.ndarray,
    frames: np.ndarray,
    label_matrix: pd.DataFrame,
    item_split: pd.DataFrame,
    similarity: pd.DataFrame,
    classes: list,
    training_params: dict,
    similarity_params: dict,
    cycling_params: dict,
) -> tuple:
    """Train with confidence cycling (SPEC section 4).

    Returns
    -------
    checkpoint, predictions, history, frame attention, ground-truth-head predictions (as the
    training branches), then, for the first architecture listed:
    imputed_labels : item_id, annotator_id, label, confidence, epoch (training items only),
    refined_similarity : A x A kappa from observed + imputed training labels.
    """
    fitted = fit(
        embeddings, frames, label_matrix, item_split, similarity, classes, training_params, similarity_params,
        {"cycling": True, "branch": "simlabel_confidence", **cycling_params},
    )
    primary = fitted.primary
    imputed = primary.imputed.to_frame(label_matrix.index, label_matrix.columns)
    refined = pd.DataFrame(primary.similarity, index=similarity.index.copy(), columns=similarity.columns.copy())
    return (*branch_outputs(fitted), imputed, refined)
