"""One path from labels to scores: split, similarity, method, predictions, per-annotator score.

The main pipeline's training node and the paper's tables both call ``run_method``; a method is a
``TrainConfig`` (a block of ``methods:`` merged over ``training``), so a change to how similarity,
soft labels or training work reaches every report at once.

Crowd baselines are methods too (``crowd_baseline``):
- ``consensus``: one classifier trained on the training items' majority-vote labels predicts that
  class for every annotator;
- ``dawid_skene``: Dawid-Skene EM on the training labels gives class posteriors and per-annotator
  confusions; a classifier trained on the posteriors (the ``FixedTargets`` strategy) gives
  p(y|x), and annotator a's prediction is sum_y p(y|x) pi_a[y, :].
Both are returned as annotator models (``AnnotatorsFromTruth``), so predictions, checkpoints and
scores treat them like any other method.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from simlabel.core.baselines import dawid_skene, majority_vote
from simlabel.core.labels import MISSING, Split, as_label_table
from simlabel.core.pair_similarity import PairSimilarity
from simlabel.core.similarity import similarity_from_params
from simlabel.models.factory import AnnotatorsFromTruth, BlendedAnnotators, uses_frames
from simlabel.training.config import TrainConfig
from simlabel.training.loop import TrainingResult, predict_labels, train_annotator_models


def run_method(
    tokens: np.ndarray, labels: np.ndarray, split: Split, similarity: np.ndarray | PairSimilarity, n_classes: int,
    config: TrainConfig, frames: np.ndarray | None = None,
) -> TrainingResult:
    """Train one method on a split. ``tokens``: (N, T, D); ``labels``: a ``LabelTable`` or the
    (N, A) matrix, -1 = missing; ``similarity``: (A, A) array or ``PairSimilarity``, the similarity stage's (a method may ask
    for another estimator). Everything reads the table except Dawid-Skene soft targets
    (``soft_targets: dawid_skene``, (N, A, C) by nature) and the dense steps' own rows."""
    table = as_label_table(labels)
    if config.crowd_baseline != "none":
        return crowd_baseline(tokens, table, split, n_classes, config, frames)
    train_labels = table.of_items(split.train)
    if config.similarity_estimator != "stage":
        similarity = similarity_from_params(
            train_labels, n_classes, {"estimator": config.similarity_estimator, "min_overlap": config.min_overlap})
    soft = ds_soft_targets(train_labels.to_numpy(), n_classes, config.ds_diagonal_prior) \
        if config.soft_targets == "dawid_skene" else None
    return train_annotator_models(
        tokens, table, split.train, split.val, similarity, n_classes, config, frames, soft_targets=soft
    )


def ds_soft_targets(train_labels: np.ndarray, n_classes: int, diagonal_prior: float) -> np.ndarray:
    """(N, A, C) soft labels of the missing training entries: the item's Dawid-Skene posterior
    carried through each annotator's confusion, p(a says z | labels of i) = sum_y p(y | i) pi_a[y, z].
    Zero for observed entries and for items without training labels."""
    posteriors, confusions, _ = dawid_skene(train_labels, n_classes, diagonal_prior=diagonal_prior)
    soft = np.einsum("iy,ayz->iaz", posteriors, confusions).astype(np.float32)
    keep = (train_labels == MISSING) & (train_labels != MISSING).any(1, keepdims=True)
    soft *= keep[..., None]
    return soft


def crowd_baseline(tokens, labels, split: Split, n_classes: int, config: TrainConfig, frames=None) -> TrainingResult:
    """A classifier of the true class (trained by the same loop) mapped to every annotator.
    ``labels``: a ``LabelTable`` or the (N, A) matrix; the votes and Dawid-Skene read the table."""
    labels = as_label_table(labels)
    n_annotators = labels.shape[1]
    train_labels = labels.of_items(split.train)
    val_votes = majority_vote(labels.of_items(split.val), n_classes, rng=config.seed)
    classifier_config = dataclasses.replace(config, cycling=False, crowd_baseline="none", soft_entries_per_item=None)
    if config.crowd_baseline == "consensus":
        train_votes = majority_vote(train_labels, n_classes, rng=config.seed)
        votes = np.where(split.train, train_votes, np.where(split.val, val_votes, MISSING))
        soft, confusions = None, np.broadcast_to(np.eye(n_classes), (n_annotators, n_classes, n_classes))
        classifier_config = dataclasses.replace(classifier_config, unlabeled_weight=0.0)
    else:
        posteriors, confusions, _ = dawid_skene(train_labels, n_classes, diagonal_prior=config.ds_diagonal_prior)
        votes, soft = np.where(split.val, val_votes, MISSING), posteriors[:, None, :]
        classifier_config = dataclasses.replace(classifier_config, unlabeled_weight=1.0)
    result = train_annotator_models(
        tokens, votes[:, None], split.train, split.val, np.zeros((1, 1)), n_classes, classifier_config, frames,
        soft_targets=soft,
    )
    device = next(result.model.parameters()).device
    model = AnnotatorsFromTruth(result.model, torch.as_tensor(np.array(confusions))).to(device)
    return dataclasses.replace(
        result, model=model.eval(), model_args={**result.model_args, "crowd_annotators": n_annotators},
        similarity=PairSimilarity.constant(n_annotators),
    )


def blend(members: list[TrainingResult]) -> TrainingResult:
    """``blend_of``: the mean of several methods' per-annotator probabilities (same split).

    Why: the members see an annotator differently. Per-annotator heads learn from the inputs and
    from similar annotators' labels, under a similarity prior that models annotators as differing
    in quality (``shrunk_kappa``) or in confusion structure (``shrunk_ds_kappa``); a crowd
    baseline (one classifier of the true class carried through each annotator's Dawid-Skene
    confusion) knows the annotator through one confusion fitted on all of their labels. Their
    errors differ, and averaging the predictive distributions (a mixture with equal weights:
    nothing fitted to a data set) keeps what each gets right (README, "Does it help?").
    History, similarity and imputations are the first member's."""
    if len({uses_frames(m.model_args) for m in members}) > 1:
        raise ValueError("a blend's members must all read embeddings or all fine-tune the frame encoder")
    model = BlendedAnnotators([m.model for m in members]).eval()
    return dataclasses.replace(members[0], model=model, model_args={"blend": [m.model_args for m in members]})


def score(result: TrainingResult, labels: np.ndarray, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """(A,) test labels and correct predictions per annotator of a trained method."""
    test_labels = np.asarray(labels)[split.test]
    predicted = predict_labels(result.model, result.inputs, np.flatnonzero(split.test), result.eval_batch_size)
    scored = test_labels != MISSING
    return scored.sum(0), ((predicted == test_labels) & scored).sum(0)
