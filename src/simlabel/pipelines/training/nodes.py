"""Train the annotator models of one branch (Skip or SimLabel) from cached embeddings."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from simlabel.core.labels import MISSING
from simlabel.training.loop import TrainConfig, TrainingResult, train_annotator_models

PREDICTION_COLUMNS = ["item_id", "annotator_id", "split", "label", "predicted", "probability"]


def fit(
    embeddings: np.ndarray,
    frames: np.ndarray | None,
    label_matrix: pd.DataFrame,
    item_split: pd.DataFrame,
    similarity: pd.DataFrame,
    classes: list,
    training_params: dict,
    similarity_params: dict,
    *overrides: dict,
) -> tuple[TrainingResult, TrainConfig, pd.Series]:
    """Run the training loop with ``training_params`` updated by each of ``overrides``."""
    if len(embeddings) != len(label_matrix):
        raise ValueError(
            f"embeddings have {len(embeddings)} rows but the label matrix has {len(label_matrix)} items: "
            "rerun ingestion and label_matrix together"
        )
    if list(similarity.columns) != list(label_matrix.columns):
        raise ValueError("similarity and label matrix disagree on the annotators: rerun the similarity stage")
    config = TrainConfig.from_params(training_params, {"min_overlap": similarity_params["min_overlap"]}, *overrides)
    split = item_split.set_index("item_id")["split"].reindex(label_matrix.index)
    tokens = np.asarray(embeddings, dtype=np.float32)
    if tokens.ndim == 2:
        tokens = tokens[:, None, :]
    result = train_annotator_models(
        tokens,
        label_matrix.to_numpy(),
        split.eq("train").to_numpy(),
        split.eq("val").to_numpy(),
        similarity.to_numpy(),
        len(classes),
        config,
        frames=frames,
    )
    return result, config, split


def checkpoint(result: TrainingResult, config: TrainConfig, label_matrix: pd.DataFrame, classes: list, tokens_shape) -> dict:
    """Everything needed to rebuild the model and name its outputs."""
    return {
        "state_dict": {k: v.detach().cpu() for k, v in result.model.state_dict().items()},
        "config": dataclasses.asdict(config),
        "input_shape": tuple(int(s) for s in tokens_shape[1:]),
        "annotators": list(label_matrix.columns),
        "classes": list(classes),
        "best_epoch": result.best_epoch,
        "best_val_accuracy": result.best_val_accuracy,
    }


def labelled_predictions(result: TrainingResult, label_matrix: pd.DataFrame, split: pd.Series) -> pd.DataFrame:
    """Predicted label and its probability for every labelled (item, annotator) entry."""
    values = label_matrix.to_numpy()
    rows = np.flatnonzero((values != MISSING).any(1))
    parts = []
    for batch, log_p in result.log_proba(rows):
        labelled = values[batch] != MISSING
        prob, pred = log_p.exp().max(-1)
        r, c = np.nonzero(labelled)
        parts.append((batch[r], c, pred.cpu().numpy()[r, c], prob.cpu().numpy()[r, c]))
    item_rows, cols, predicted, probability = (np.concatenate(p) for p in zip(*parts, strict=True))
    return pd.DataFrame(
        {
            "item_id": label_matrix.index.to_numpy()[item_rows],
            "annotator_id": label_matrix.columns.to_numpy()[cols],
            "split": split.to_numpy()[item_rows],
            "label": values[item_rows, cols],
            "predicted": predicted,
            "probability": probability,
        },
        columns=PREDICTION_COLUMNS,
    )


def train_branch(
    embeddings: np.ndarray,
    frames: np.ndarray,
    label_matrix: pd.DataFrame,
    item_split: pd.DataFrame,
    similarity: pd.DataFrame,
    classes: list,
    training_params: dict,
    similarity_params: dict,
    method_params: dict,
) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Train one branch; ``method_params`` override ``training`` (e.g. unlabeled_weight: 0 = Skip).

    ``frames`` are only read when ``training.finetune_backbone`` is on (a memory map otherwise).

    Returns
    -------
    checkpoint, predictions (labelled entries of every split), per-epoch history.
    """
    result, config, split = fit(
        embeddings, frames, label_matrix, item_split, similarity, classes, training_params, similarity_params, method_params
    )
    return (
        checkpoint(result, config, label_matrix, classes, np.shape(frames if config.finetune_backbone else embeddings)),
        labelled_predictions(result, label_matrix, split),
        result.history,
    )
