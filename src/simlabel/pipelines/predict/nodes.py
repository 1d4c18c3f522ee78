"""How would each of my annotators label these new items? Predictions from a trained checkpoint."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from simlabel.models.factory import uses_frames
from simlabel.training.loop import BatchSource, model_from_checkpoint, predict_log_proba

logger = logging.getLogger(__name__)


def choose_checkpoint(model_checkpoints: dict[str, Callable[[], dict]], params: dict) -> dict:
    """The ``predict.method`` checkpoint (``{architecture: payload}``), loaded from the partitions
    ``<method>/checkpoint`` of ``data/06_models``."""
    method = params["method"]
    key = f"{method}/checkpoint"
    if key not in model_checkpoints:
        trained = sorted(k.split("/")[0] for k in model_checkpoints if k.endswith("/checkpoint"))
        raise ValueError(f"predict.method={method!r} has no checkpoint; trained methods: {trained}. Run the training pipeline first")
    return model_checkpoints[key]()


def predict_annotators(
    checkpoint: dict, embeddings: np.ndarray, frames: np.ndarray, items: pd.DataFrame, params: dict
) -> pd.DataFrame:
    """Every annotator's predicted label and its probability for every new item.

    Parameters
    ----------
    checkpoint : one method's checkpoint ({architecture: payload}).
    embeddings : (N, T, D) embeddings of the new items (same backbone as for training).
    frames : (N, K, H, W, 3) frames of the new items (used only by fine-tuned checkpoints).
    items : item_id of each row.
    params : ``architecture`` (None = the first one trained).

    Returns
    -------
    Long table: item_id, annotator_id, label (class name), label_index, probability.
    """
    architecture = params.get("architecture") or next(iter(checkpoint))
    if architecture not in checkpoint:
        raise ValueError(f"the checkpoint has architectures {sorted(checkpoint)}, not {architecture!r}")
    payload = checkpoint[architecture]
    model = model_from_checkpoint(payload)
    finetuned = uses_frames(payload["model_args"])
    inputs = np.asarray(frames) if finetuned else np.asarray(embeddings, dtype=np.float32)
    if inputs.ndim == 2:
        inputs = inputs[:, None, :]
    if tuple(inputs.shape[1:]) != tuple(payload["input_shape"]):
        raise ValueError(
            f"new inputs have shape {inputs.shape[1:]} per item but the checkpoint was trained on "
            f"{tuple(payload['input_shape'])}: use the same input kind and ingestion parameters"
        )
    rows = np.arange(len(inputs))
    source = BatchSource(inputs if finetuned else torch.from_numpy(np.ascontiguousarray(inputs)), torch.device("cpu"))
    probs = torch.cat([log_p.exp() for _, log_p in predict_log_proba(model, source, rows)]).numpy()  # (N, A, C)
    best = probs.argmax(-1)
    annotators, classes = payload["annotators"], payload["classes"]
    n_items, n_annotators = best.shape
    logger.info("predicted %d annotators' labels for %d new items (%s)", n_annotators, n_items, architecture)
    return pd.DataFrame(
        {
            "item_id": np.repeat(items["item_id"].astype(str).to_numpy(), n_annotators),
            "annotator_id": np.tile(annotators, n_items),
            "label": np.asarray(classes, dtype=object)[best.ravel()],
            "label_index": best.ravel(),
            "probability": np.take_along_axis(probs, best[..., None], -1).ravel(),
        }
    )
