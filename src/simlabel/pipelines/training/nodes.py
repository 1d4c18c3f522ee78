"""Train one method (``methods.<name>``) for every listed architecture, through
``experiment.run_method``: the same function paper_tables calls; or blend trained methods
(``blend_method``, ``experiment.blend``)."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pandas as pd
import torch

from simlabel.core.cycling import IMPUTED_COLUMNS
from simlabel.core.labels import LabelTable
from simlabel.core.pair_similarity import PairSimilarity, as_pair_similarity
from simlabel.experiment import Split, blend, run_method
from simlabel.methods import method_configs
from simlabel.models.factory import uses_frames
from simlabel.training.loop import BatchSource, TrainingResult, model_from_checkpoint

PREDICTION_COLUMNS = ["method", "architecture", "item_id", "annotator_id", "split", "label", "predicted", "probability"]
ATTENTION_COLUMNS = ["method", "architecture", "annotator_id", "token", "weight"]
TRUTH_COLUMNS = ["method", "architecture", "item_id", "split", "predicted", "probability"]


def train_method(
    embeddings: np.ndarray, frames: np.ndarray, labels: pd.DataFrame, item_split: pd.DataFrame,
    similarity: PairSimilarity, classes: list, training: dict, similarity_params: dict, method: dict,
    method_name: str,
) -> dict:
    """Train ``method_name`` for each of ``training.architectures``.

    ``labels`` is the long label table (``LabelTable.to_frame``); ``frames`` are only read when
    ``training.finetune_backbone`` is on (a memory map otherwise).

    Returns
    -------
    checkpoint : {architecture: payload with the model's constructor arguments and weights}.
    predictions : every labelled entry's prediction (all splits), long, with ``method``.
    training_history, frame_attention (qumatl), truth_predictions (madl) : long tables.
    imputed_labels : of the first architecture (empty without confidence cycling).
    refined_similarity : the ``PairSimilarity`` the first architecture ended with, where the
        method has its own (confidence cycling, or ``similarity_estimator``); empty (0
        annotators) where it trains with the stage's ``similarity`` as it is (a copy per method
        is no news) and for the crowd baselines (none).
    """
    table, split, names, tokens, similarity = _inputs(embeddings, labels, item_split, similarity)
    configs = method_configs(training, similarity_params, method, method_name)
    results = {
        architecture: run_method(tokens, table, split, similarity, len(classes), config, frames)
        for architecture, config in configs.items()
    }
    primary = next(iter(results.values()))
    input_shape = np.shape(frames)[1:] if next(iter(configs.values())).finetune_backbone else tokens.shape[1:]
    return {
        **method_tables(results, method_name, table, names),
        "checkpoint": {
            a: checkpoint(r, dataclasses.asdict(configs[a]), table, names, classes, input_shape)
            for a, r in results.items()
        },
        "training_history": pd.concat(
            [r.history.assign(method=method_name, architecture=a) for a, r in results.items()], ignore_index=True
        ),
        "imputed_labels": primary.imputed.to_frame(table.item_ids, table.annotator_ids)
        if primary.imputed is not None else pd.DataFrame(columns=IMPUTED_COLUMNS),
        "refined_similarity": as_pair_similarity(primary.similarity).with_ids(table.annotator_ids)
        if has_own_similarity(next(iter(configs.values()))) else PairSimilarity.constant(0),
    }


def has_own_similarity(config) -> bool:
    """Whether a method ends with a similarity other than the stage's: refined by confidence
    cycling or estimated by its own ``similarity_estimator`` (a crowd baseline uses none)."""
    return config.crowd_baseline == "none" and (config.cycling or config.similarity_estimator != "stage")


def blend_method(
    embeddings: np.ndarray, frames: np.ndarray, labels: pd.DataFrame, item_split: pd.DataFrame,
    similarity: PairSimilarity, classes: list, *checkpoints: dict, method_name: str, members: list[str],
) -> dict:
    """A blend (``blend_of``, ``experiment.blend``) of the members' trained models (their
    ``checkpoints``, in ``members`` order): nothing is trained.

    Returns the outputs of ``train_method``. The members' epochs, imputations and similarities
    are in their own tables: the blend's ``training_history``, ``imputed_labels`` and
    ``refined_similarity`` are empty (reading the members' tables
    would make Kedro-Viz's layers circular: model_output -> models -> model_output)."""
    table, _, names, tokens, similarity = _inputs(embeddings, labels, item_split, similarity)
    fingerprint = data_fingerprint(table, names)
    for member, checkpoint_of in zip(members, checkpoints, strict=True):
        for payload in checkpoint_of.values():  # a member's checkpoint left over from other data
            if payload.get("data_fingerprint") != fingerprint or payload["classes"] != list(classes):
                raise ValueError(f"{method_name}: member {member}'s checkpoint was trained on other labels, split or "
                                 f"classes than these; rerun {member} (kedro run --namespaces={member})")
    architectures = [a for a in checkpoints[0] if all(a in c for c in checkpoints)]
    results, payloads = {}, {}
    for architecture in architectures:
        payloads[architecture] = [c[architecture] for c in checkpoints]
        inputs = np.asarray(frames) if uses_frames(payloads[architecture][0]["model_args"]) else torch.from_numpy(tokens)
        results[architecture] = blend([
            TrainingResult(model_from_checkpoint(p), p["model_args"], pd.DataFrame(), p["best_epoch"],
                           p["best_val_accuracy"], similarity, None,
                           BatchSource(inputs, torch.device("cpu")), 512)
            for p in payloads[architecture]
        ])
    tables = method_tables(results, method_name, table, names)
    val = tables["predictions"].query("split == 'val'")
    return {
        **tables,
        "checkpoint": {
            a: checkpoint(r, {"blend_of": members, "members": [p["config"] for p in payloads[a]]}, table,
                          names, classes, payloads[a][0]["input_shape"], val.query("architecture == @a"))
            for a, r in results.items()
        },
        "training_history": pd.DataFrame(columns=["method", "architecture"]),
        "imputed_labels": pd.DataFrame(columns=IMPUTED_COLUMNS),
        "refined_similarity": PairSimilarity.constant(0),
    }


def _inputs(embeddings, labels: pd.DataFrame, item_split: pd.DataFrame, similarity: PairSimilarity):
    """The ``LabelTable``, the split (``Split`` and the names per item), the (N, T, D) float32
    tokens and the similarity (a ``PairSimilarity``; an (A, A) DataFrame is taken too), after
    checking that the stages' outputs belong together."""
    table = LabelTable.from_frame(labels)
    if len(embeddings) != table.shape[0]:
        raise ValueError(
            f"embeddings have {len(embeddings)} rows but the labels have {table.shape[0]} items: "
            "rerun ingestion and label_matrix together"
        )
    if isinstance(similarity, pd.DataFrame):  # an (A, A) matrix of one's own, e.g. in a notebook
        similarity = PairSimilarity.from_dense(similarity)
    if similarity.annotator_ids is None or list(similarity.annotator_ids.astype(str)) != list(table.annotator_ids.astype(str)):
        raise ValueError("similarity and labels disagree on the annotators: rerun the similarity stage")
    names = item_split.set_index("item_id")["split"].reindex(table.item_ids)
    tokens = np.asarray(embeddings, dtype=np.float32)
    return table, Split.from_names(names), names, tokens[:, None, :] if tokens.ndim == 2 else tokens, similarity


def data_fingerprint(table: LabelTable, split: pd.Series) -> str:
    """A hash of the labels, their item and annotator ids and the split a model was trained on."""
    digest = hashlib.sha256()
    for entries in (table.items, table.annotators, table.labels):
        digest.update(np.ascontiguousarray(entries, dtype=np.int64).tobytes())
    for part in (table.item_ids, table.annotator_ids, split):
        digest.update("\x1f".join(map(str, part)).encode())
    return digest.hexdigest()[:16]


def method_tables(results: dict, method_name: str, table: LabelTable, names: pd.Series) -> dict:
    """The prediction tables of trained (or blended) models, ``{architecture: TrainingResult}``."""
    context = {"method": method_name, "table": table, "split": names}
    return {
        "predictions": labelled_predictions(results, **context),
        "frame_attention": frame_attention(results, **context),
        "truth_predictions": truth_predictions(results, **context),
    }


def checkpoint(result: TrainingResult, config: dict, table: LabelTable, split: pd.Series, classes, input_shape,
               val_predictions: pd.DataFrame | None = None) -> dict:
    """Everything needed to rebuild the model (``model_from_checkpoint``) and name its outputs.
    A blend has no epochs: its validation accuracy is computed from ``val_predictions``."""
    val_accuracy = result.best_val_accuracy
    if val_predictions is not None:
        correct = (val_predictions["predicted"] == val_predictions["label"]).groupby(val_predictions["annotator_id"])
        val_accuracy = float(correct.mean().mean()) if len(val_predictions) else float("nan")
    return {
        "model_args": result.model_args,
        "state_dict": {k: v.detach().cpu() for k, v in result.model.state_dict().items()},
        "config": config,
        "input_shape": tuple(int(s) for s in input_shape),
        "annotators": list(table.annotator_ids),
        "data_fingerprint": data_fingerprint(table, split),
        "classes": list(classes),
        "best_epoch": None if val_predictions is not None else result.best_epoch,
        "best_val_accuracy": val_accuracy,
    }


def labelled_predictions(results: dict, method: str, table: LabelTable, split: pd.Series) -> pd.DataFrame:
    """Predicted label and its probability for every labelled (item, annotator) entry, in the
    table's order (``TrainingResult.log_proba_at``: no (N, A) array)."""
    frames = []
    for architecture, result in results.items():
        predicted, probability = np.empty(len(table), np.int64), np.empty(len(table), np.float32)
        for lo, hi, log_p in result.log_proba_at(table):
            prob, pred = log_p.exp().max(-1)
            predicted[lo:hi], probability[lo:hi] = pred.cpu().numpy(), prob.cpu().numpy()
        frames.append(pd.DataFrame({
            "method": method, "architecture": architecture,
            "item_id": table.item_ids.to_numpy()[table.items], "annotator_id": table.annotator_ids.to_numpy()[table.annotators],
            "split": split.to_numpy()[table.items], "label": table.labels,
            "predicted": predicted, "probability": probability,
        }))
    return pd.concat(frames, ignore_index=True)[PREDICTION_COLUMNS]


@torch.no_grad()
def frame_attention(results: dict, method: str, table: LabelTable, split: pd.Series) -> pd.DataFrame:
    """Mean cross-attention of each annotator's query over the input tokens (frames), on the
    test items, for the architectures that have one (``qumatl``); empty otherwise."""
    rows = np.flatnonzero(split.eq("test").to_numpy())
    frames = []
    for architecture, result in results.items():
        if not hasattr(result.model, "cross_attention") or rows.size == 0:
            continue
        total = sum(
            result.model.cross_attention(result.inputs[rows[lo : lo + 256]]).sum(0) for lo in range(0, rows.size, 256)
        ) / rows.size  # (A, T)
        annotators, tokens = np.meshgrid(table.annotator_ids, np.arange(total.shape[1]), indexing="ij")
        frames.append(pd.DataFrame({"method": method, "architecture": architecture, "annotator_id": annotators.ravel(),
                                    "token": tokens.ravel(), "weight": total.cpu().numpy().ravel()}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=ATTENTION_COLUMNS)


@torch.no_grad()
def truth_predictions(results: dict, method: str, table: LabelTable, split: pd.Series) -> pd.DataFrame:
    """The ground-truth head's prediction for every item, for architectures that have one (``madl``)."""
    rows = np.arange(table.shape[0])
    frames = []
    for architecture, result in results.items():
        if not hasattr(result.model, "truth_log_proba"):
            continue
        result.model.eval()
        log_p = torch.cat([result.model.truth_log_proba(result.inputs[rows[lo : lo + 512]]) for lo in range(0, rows.size, 512)])
        prob, pred = log_p.exp().max(-1)
        frames.append(pd.DataFrame({"method": method, "architecture": architecture, "item_id": table.item_ids.to_numpy(),
                                    "split": split.to_numpy(), "predicted": pred.cpu().numpy(), "probability": prob.cpu().numpy()}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TRUTH_COLUMNS)
