"""SimLabel + confidence cycling: the same training loop with imputation and refreshed similarity."""

from __future__ import annotations

import numpy as np
import pandas as pd

from simlabel.pipelines.training.nodes import checkpoint, fit, labelled_predictions


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
) -> tuple[dict, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train with confidence cycling (SPEC section 4).

    Returns
    -------
    checkpoint, predictions, history,
    imputed_labels : item_id, annotator_id, label, confidence, epoch (training items only),
    refined_similarity : A x A kappa from observed + imputed training labels.
    """
    result, config, split = fit(
        embeddings, frames, label_matrix, item_split, similarity, classes, training_params, similarity_params,
        {"cycling": True, **cycling_params},
    )
    imputed = result.imputed.to_frame(label_matrix.index, label_matrix.columns)
    refined = pd.DataFrame(result.similarity, index=similarity.index.copy(), columns=similarity.columns.copy())
    return (
        checkpoint(result, config, label_matrix, classes, np.shape(frames if config.finetune_backbone else embeddings)),
        labelled_predictions(result, label_matrix, split),
        result.history,
        imputed,
        refined,
    )
