"""Train the annotator models of one branch (Skip or SimLabel), for every listed architecture."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import torch

from simlabel.core.labels import MISSING
from simlabel.training.loop import TrainConfig, TrainingResult, train_annotator_models

PREDICTION_COLUMNS = ["architecture", "item_id", "annotator_id", "split", "label", "predicted", "probability"]
ATTENTION_COLUMNS = ["architecture", "annotator_id", "token", "weight"]
TRUTH_COLUMNS = ["architecture", "item_id", "split", "predicted", "probability"]


@dataclasses.dataclass
class Fitted:
    """The trained models of one branch, by architecture, and what they were trained on."""

    results: dict[str, TrainingResult]
    configs: dict[str, TrainConfig]
    label_matrix: pd.DataFrame
    split: pd.Series
    classes: list
    input_shape: tuple

    @property
    def primary(self) -> TrainingResult:
        """The first architecture listed: it feeds the imputed labels and refined similarity."""
        return next(iter(self.results.values()))


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
) -> Fitted:
    """Run the training loop for each of ``training_params["architectures"]``, with the
    parameters updated by each of ``overrides`` (e.g. ``unlabeled_weight: 0`` for Skip)."""
    if len(embeddings) != len(label_matrix):
        raise ValueError(
            f"embeddings have {len(embeddings)} rows but the label matrix has {len(label_matrix)} items: "
            "rerun ingestion and label_matrix together"
        )
    if list(similarity.columns) != list(label_matrix.columns):
        raise ValueError("similarity and label matrix disagree on the annotators: rerun the similarity stage")
    params = dict(training_params)
    state_dir = params.pop("state_dir", None)
    overrides = [dict(o) for o in overrides]
    branch = next((o.pop("branch") for o in overrides if "branch" in o), "run")
    architectures = params.pop("architectures", None) or ["heads"]
    if isinstance(architectures, str):  # from the command line: --params="training.architectures=heads madl"
        architectures = re.split(r"[\s,;]+", architectures.strip())
    split = item_split.set_index("item_id")["split"].reindex(label_matrix.index)
    tokens = np.asarray(embeddings, dtype=np.float32)
    if tokens.ndim == 2:
        tokens = tokens[:, None, :]
    results, configs = {}, {}
    for architecture in architectures:
        # Per-epoch training state, so `resume: true` continues a run that was killed.
        state = {"state_path": f"{state_dir}/{branch}/{architecture}.pt"} if state_dir else {}
        config = TrainConfig.from_params(
            params, {"min_overlap": similarity_params["min_overlap"]}, *overrides, {"architecture": architecture}, state
        )
        results[architecture] = train_annotator_models(
            tokens,
            label_matrix.to_numpy(),
            split.eq("train").to_numpy(),
            split.eq("val").to_numpy(),
            similarity.to_numpy(),
            len(classes),
            config,
            frames=frames,
        )
        configs[architecture] = config
    input_shape = np.shape(frames)[1:] if configs[architectures[0]].finetune_backbone else tokens.shape[1:]
    return Fitted(results, configs, label_matrix, split, list(classes), tuple(int(s) for s in input_shape))


def checkpoints(fitted: Fitted) -> dict:
    """``{architecture: everything needed to rebuild the model and name its outputs}``."""
    return {
        architecture: {
            "state_dict": {k: v.detach().cpu() for k, v in result.model.state_dict().items()},
            "config": dataclasses.asdict(fitted.configs[architecture]),
            "input_shape": fitted.input_shape,
            "annotators": list(fitted.label_matrix.columns),
            "classes": fitted.classes,
            "best_epoch": result.best_epoch,
            "best_val_accuracy": result.best_val_accuracy,
        }
        for architecture, result in fitted.results.items()
    }


def labelled_predictions(fitted: Fitted) -> pd.DataFrame:
    """Predicted label and its probability for every labelled (item, annotator) entry."""
    values = fitted.label_matrix.to_numpy()
    rows = np.flatnonzero((values != MISSING).any(1))
    frames = []
    for architecture, result in fitted.results.items():
        parts = []
        for batch, log_p in result.log_proba(rows):
            prob, pred = log_p.exp().max(-1)
            r, c = np.nonzero(values[batch] != MISSING)
            parts.append((batch[r], c, pred.cpu().numpy()[r, c], prob.cpu().numpy()[r, c]))
        item_rows, cols, predicted, probability = (np.concatenate(p) for p in zip(*parts, strict=True))
        frames.append(
            pd.DataFrame(
                {
                    "architecture": architecture,
                    "item_id": fitted.label_matrix.index.to_numpy()[item_rows],
                    "annotator_id": fitted.label_matrix.columns.to_numpy()[cols],
                    "split": fitted.split.to_numpy()[item_rows],
                    "label": values[item_rows, cols],
                    "predicted": predicted,
                    "probability": probability,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)[PREDICTION_COLUMNS]


def histories(fitted: Fitted) -> pd.DataFrame:
    return pd.concat(
        [result.history.assign(architecture=a) for a, result in fitted.results.items()], ignore_index=True
    )


@torch.no_grad()
def frame_attention(fitted: Fitted) -> pd.DataFrame:
    """Mean cross-attention of each annotator's query over the input tokens (frames), on the
    test items, for the architectures that have one (``qumatl``); empty otherwise."""
    rows = np.flatnonzero(fitted.split.eq("test").to_numpy())
    frames = []
    for architecture, result in fitted.results.items():
        if not hasattr(result.model, "cross_attention") or rows.size == 0:
            continue
        total = sum(
            result.model.cross_attention(result.inputs[rows[lo : lo + 256]]).sum(0)
            for lo in range(0, rows.size, 256)
        ) / rows.size  # (A, T)
        annotators, tokens = np.meshgrid(fitted.label_matrix.columns, np.arange(total.shape[1]), indexing="ij")
        frames.append(
            pd.DataFrame(
                {"architecture": architecture, "annotator_id": annotators.ravel(), "token": tokens.ravel(),
                 "weight": total.cpu().numpy().ravel()}
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=ATTENTION_COLUMNS)


@torch.no_grad()
def truth_predictions(fitted: Fitted) -> pd.DataFrame:
    """The ground-truth head's prediction for every item, for architectures that have one (``madl``)."""
    rows = np.arange(len(fitted.label_matrix))
    frames = []
    for architecture, result in fitted.results.items():
        if not hasattr(result.model, "truth_log_proba"):
            continue
        result.model.eval()
        log_p = torch.cat([result.model.truth_log_proba(result.inputs[rows[lo : lo + 512]]) for lo in range(0, rows.size, 512)])
        prob, pred = log_p.exp().max(-1)
        frames.append(
            pd.DataFrame(
                {"architecture": architecture, "item_id": fitted.label_matrix.index.to_numpy(),
                 "split": fitted.split.to_numpy(), "predicted": pred.cpu().numpy(), "probability": prob.cpu().numpy()}
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TRUTH_COLUMNS)


def branch_outputs(fitted: Fitted) -> tuple[dict, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """checkpoint, predictions, history, frame attention, ground-truth-head predictions."""
    return checkpoints(fitted), labelled_predictions(fitted), histories(fitted), frame_attention(fitted), truth_predictions(fitted)


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
) -> tuple[dict, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train one branch; ``method_params`` override ``training`` (e.g. unlabeled_weight: 0 = Skip).

    ``frames`` are only read when ``training.finetune_backbone`` is on (a memory map otherwise).

    Returns
    -------
    checkpoint ({architecture: payload}), predictions (labelled entries of every split),
    per-epoch history, frame attention (qumatl), ground-truth-head predictions (madl).
    """
    fitted = fit(
        embeddings, frames, label_matrix, item_split, similarity, classes, training_params, similarity_params, method_params
    )
    return branch_outputs(fitted)
