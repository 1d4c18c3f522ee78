"""Build a model from its constructor arguments (``TrainConfig.model_args``), as checkpoints
store them: rebuilding a trained model needs no guessing from state-dict keys."""

from __future__ import annotations

import math

import torch
from torch import nn

from simlabel.choices import ENTRY_ARCHITECTURES
from simlabel.models.annotators import EndToEnd, build_model
from simlabel.models.backbones import load_backbone


class AnnotatorsFromTruth(nn.Module):
    """A crowd baseline as an annotator model: a one-output classifier p(y | x) carried through
    each annotator's confusion matrix, p_a(z | x) = sum_y p(y | x) pi_a[y, z].

    ``classifier``: inputs -> (B, 1, C) log-probabilities; ``confusions``: (A, C, C), rows sum
    to 1 (the identity for a majority-vote consensus: every annotator says the class)."""

    def __init__(self, classifier: nn.Module, confusions: torch.Tensor):
        super().__init__()
        self.classifier = classifier
        self.register_buffer("log_confusions", torch.log(confusions.float().clamp(min=1e-8)))

    def truth_log_proba(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, C) log p(y | x) of the classifier of the true class."""
        return self.classifier(inputs)[:, 0]

    def forward(self, inputs: torch.Tensor, items=None, annotators=None) -> torch.Tensor:
        """(B, A, C) log-probabilities, or (E, C) for the entries (``items[e]`` of the batch,
        ``annotators[e]``) only."""
        log_truth = self.truth_log_proba(inputs)  # (B, C)
        if items is None:
            return torch.logsumexp(log_truth[:, None, :, None] + self.log_confusions[None], dim=2)
        return torch.logsumexp(log_truth[items][:, :, None] + self.log_confusions[annotators], dim=1)


class BlendedAnnotators(nn.Module):
    """The mean of several annotator models' probabilities, p_a(z | x) = mean_m p_a^m(z | x):
    models that err differently (flexible per-annotator heads, a structured Dawid-Skene mapping)
    averaged as a mixture. ``members``: modules mapping inputs to (B, A, C) log-probabilities."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)
        if all(hasattr(member, "truth_log_proba") for member in members):
            # The blend's estimate of the true class: the mean of its members' (e.g. madl's truth
            # head and Dawid-Skene's classifier); only where every member has one.
            self.truth_log_proba = self._mean_truth_log_proba

    @staticmethod
    def _log_mean(log_p: list[torch.Tensor]) -> torch.Tensor:
        return torch.logsumexp(torch.stack(log_p), dim=0) - math.log(len(log_p))

    def _mean_truth_log_proba(self, inputs: torch.Tensor) -> torch.Tensor:
        return self._log_mean([member.truth_log_proba(inputs) for member in self.members])

    def forward(self, inputs: torch.Tensor, items=None, annotators=None) -> torch.Tensor:
        """(B, A, C), or (E, C) at the entries where every member evaluates entries."""
        if items is None:
            return self._log_mean([member(inputs) for member in self.members])
        return self._log_mean([member(inputs, items, annotators) for member in self.members])


def evaluates_entries(model_args: dict) -> bool:
    """Whether the model built from ``model_args`` evaluates single (item, annotator) entries,
    ``model(inputs, items, annotators)`` -> (E, C): the entry architectures, the crowd baselines
    (a classifier per item, a confusion per annotator) and blends of such models."""
    if "blend" in model_args:
        return all(map(evaluates_entries, model_args["blend"]))
    return "crowd_annotators" in model_args or model_args.get("architecture") in ENTRY_ARCHITECTURES


def uses_frames(model_args: dict) -> bool:
    """Whether a model built from ``model_args`` reads frames (a fine-tuned encoder) or embeddings."""
    return any(map(uses_frames, model_args["blend"])) if "blend" in model_args else bool(model_args.get("backbone"))


def model_from_args(model_args: dict, feature_mean=None, feature_std=None) -> nn.Module:
    """The architecture named in ``model_args`` (``TrainConfig.model_args``), wrapped in the
    frame encoder when ``backbone`` is set and in ``AnnotatorsFromTruth`` when ``crowd_annotators``
    is; ``{"blend": [args, ...]}`` is a ``BlendedAnnotators`` of its members. Without statistics
    the standardisation buffers are placeholders (a checkpoint's state dict fills them)."""
    if "blend" in model_args:
        return BlendedAnnotators([model_from_args(member) for member in model_args["blend"]])
    in_dim = model_args["in_dim"]
    mean = torch.zeros(in_dim) if feature_mean is None else feature_mean
    std = torch.ones(in_dim) if feature_std is None else feature_std
    model = build_model(
        model_args["architecture"], in_dim=in_dim, n_annotators=model_args["n_annotators"],
        n_classes=model_args["n_classes"], feature_mean=mean, feature_std=std, hidden=model_args["hidden"],
        head_hidden=model_args["head_hidden"], dropout=model_args["dropout"], n_tokens=model_args["n_tokens"],
        **model_args["options"],
    )
    if model_args.get("backbone"):
        model = EndToEnd(load_backbone(model_args["backbone"]), model)
    if model_args.get("crowd_annotators"):
        n_classes = model_args["n_classes"]
        model = AnnotatorsFromTruth(model, torch.eye(n_classes).expand(model_args["crowd_annotators"], -1, -1))
    return model
