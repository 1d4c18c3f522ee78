"""Batch targets: what each (item, annotator) entry of a batch is trained towards.

Three strategies, one interface ``targets(model, inputs, rows, labels, similarity, transport)
-> (log_p, hard_targets, p_soft, has_soft)`` as ``simlabel_loss`` takes them:

- ``DenseTargets`` (the paper): every entry of the batch; missing entries get the
  similarity-weighted soft label of their item's labellers (none when ``unlabeled_weight`` = 0).
- ``SampledTargets`` (many annotators): the observed entries and k random soft-labelled missing
  entries per item, evaluated entry by entry, in an (E, 1, C) layout.
- ``FixedTargets`` (crowd baselines): soft targets given up front, e.g. Dawid-Skene posteriors
  for a one-output classifier; rows that sum to 0 have none.
"""

from __future__ import annotations

import torch

from simlabel.core.labels import MISSING
from simlabel.core.soft_labels import labeller_index, soft_labels, weighted_soft_labels


def mean_probability(log_p: torch.Tensor) -> torch.Tensor:
    """Probabilities of deterministic (..., C) outputs, or the mean over stochastic (S, ...) samples."""
    return log_p.exp() if log_p.dim() == 3 else log_p.exp().mean(0)


class DenseTargets:
    def __init__(self, source: str, use_soft: bool):
        self.source, self.use_soft = source, use_soft

    def __call__(self, model, inputs, rows, labels, targets, similarity, transport):
        log_p = model(inputs).float()
        if not self.use_soft:
            return log_p, targets, None, None
        p_soft, has_soft = soft_labels(mean_probability(log_p), labels, similarity, self.source, transport)
        return log_p, targets, p_soft, has_soft


class FixedTargets:
    def __init__(self, soft_targets: torch.Tensor):
        self.soft_targets = soft_targets  # (N, A, C) on the device

    def __call__(self, model, inputs, rows, labels, targets, similarity, transport):
        p_soft = self.soft_targets[torch.as_tensor(rows, device=self.soft_targets.device)]
        return model(inputs).float(), targets, p_soft, p_soft.sum(-1) > 0


class SampledTargets:
    def __init__(self, source: str, per_item: int, generator: torch.Generator):
        self.source, self.per_item, self.generator = source, per_item, generator

    def __call__(self, model, inputs, rows, labels, targets, similarity, transport):
        """Only the observed entries and ``per_item`` random soft-labelled missing entries per
        item are evaluated; their soft labels come from the predictions at the item's observed
        entries, exactly as in the dense computation."""
        device = labels.device
        n_items, n_annotators = labels.shape
        index, valid = labeller_index(labels >= 0)  # (B, L): each item's labellers
        batch_of = torch.arange(n_items, device=device)[:, None].expand_as(index)
        slot_of = torch.arange(index.shape[1], device=device)[None].expand_as(index)
        obs_items, obs_annotators, obs_slots = batch_of[valid], index[valid], slot_of[valid]
        scores = torch.rand((n_items, n_annotators), generator=self.generator).to(device)
        scores = torch.where((labels < 0) & valid.any(1, keepdim=True), scores, -1.0)
        top, picked = scores.topk(min(self.per_item, n_annotators), dim=1)
        keep = top >= 0
        soft_items = torch.arange(n_items, device=device)[:, None].expand_as(picked)[keep]
        soft_annotators = picked[keep]
        log_p = model(inputs, torch.cat([obs_items, soft_items]), torch.cat([obs_annotators, soft_annotators])).float()
        probs = mean_probability(log_p.unsqueeze(-2)).squeeze(-2).detach()  # (E, C)
        n_obs = obs_items.numel()
        sources = self._sources(probs[:n_obs], labels, obs_items, obs_annotators, obs_slots, index.shape)
        p_soft, has_soft = weighted_soft_labels(
            similarity.to(probs.dtype), soft_annotators, index[soft_items], valid[soft_items], sources[soft_items], transport
        )
        p_soft = torch.cat([torch.zeros_like(probs[:n_obs]), p_soft])
        has_soft = torch.cat([torch.zeros(n_obs, dtype=torch.bool, device=device), has_soft])
        entry_targets = torch.cat([targets[obs_items, obs_annotators], torch.full_like(soft_items, MISSING)])
        return log_p.unsqueeze(-2), entry_targets[:, None], p_soft[:, None], has_soft[:, None]

    def _sources(self, obs_probs, labels, obs_items, obs_annotators, obs_slots, shape):
        """(B, L, C) what each labeller contributes: predictions, one-hot labels or their mean."""
        sources = torch.zeros((*shape, obs_probs.shape[-1]), device=obs_probs.device, dtype=obs_probs.dtype)
        parts = []
        if self.source in ("predictions", "mixed"):
            parts.append(obs_probs)
        if self.source in ("labels", "mixed"):
            parts.append(torch.nn.functional.one_hot(labels[obs_items, obs_annotators], obs_probs.shape[-1]).to(obs_probs.dtype))
        sources[obs_items, obs_slots] = sum(parts) / len(parts)
        return sources


def batch_targets(config, fixed_soft: torch.Tensor | None, generator: torch.Generator):
    """The strategy a config asks for."""
    if fixed_soft is not None:
        return FixedTargets(fixed_soft)
    if config.soft_entries_per_item:
        return SampledTargets(config.soft_label_source, config.soft_entries_per_item, generator)
    return DenseTargets(config.soft_label_source, config.unlabeled_weight > 0)
