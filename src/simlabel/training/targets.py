"""Batch targets: what each (item, annotator) entry of a batch is trained towards.

Three strategies, one interface ``targets(model, inputs, rows, labels, similarity, transport)
-> (log_p, hard_targets, p_soft, has_soft)`` as ``simlabel_loss`` takes them:

- ``DenseTargets`` (the paper): every entry of the batch; missing entries get the
  similarity-weighted soft label of their item's labellers (none when ``unlabeled_weight`` = 0).
- ``SampledTargets`` (many annotators): the observed entries and k random soft-labelled missing
  entries per item, evaluated entry by entry, in an (E, 1, C) layout; its labels and targets
  are ``LabelRows`` (compressed rows), not (B, A) rows.
- ``FixedTargets`` (crowd baselines): soft targets given up front, e.g. Dawid-Skene posteriors
  for a one-output classifier; rows that sum to 0 have none.
"""

from __future__ import annotations

import torch

from simlabel.core.label_rows import LabelRows, host_rows, n_draws, sample_unlabelled, valid_slots
from simlabel.core.labels import MISSING
from simlabel.core.soft_labels import mix_sources, soft_labels, weighted_soft_labels


def mean_probability(log_p: torch.Tensor) -> torch.Tensor:
    """Probabilities of deterministic (..., C) outputs, or the mean over stochastic (S, ...) samples."""
    return log_p.exp() if log_p.dim() == 3 else log_p.exp().mean(0)


class DenseTargets:
    dense_rows = True  # reads (B, A) rows of the label matrix

    def __init__(self, source: str, use_soft: bool):
        self.source, self.use_soft = source, use_soft

    def __call__(self, model, inputs, rows, labels, targets, similarity, transport):
        log_p = model(inputs).float()
        if not self.use_soft:
            return log_p, targets, None, None
        p_soft, has_soft = soft_labels(mean_probability(log_p), labels, similarity, self.source, transport)
        return log_p, targets, p_soft, has_soft


class FixedTargets:
    dense_rows = True

    def __init__(self, soft_targets: torch.Tensor):
        self.soft_targets = soft_targets  # (N, A, C) on the device

    def __call__(self, model, inputs, rows, labels, targets, similarity, transport):
        p_soft = self.soft_targets[torch.as_tensor(rows, device=self.soft_targets.device)]
        return model(inputs).float(), targets, p_soft, p_soft.sum(-1) > 0


class SampledTargets:
    """Reads its labels as ``LabelRows`` (``dense_rows`` False): ``labels`` the observed ones,
    ``targets`` the hard targets (the observed labels, plus imputed ones under
    ``imputed_as_targets``; the same object when there are none). A step costs
    O(B * (W + per_item)), whatever the number of annotators."""

    dense_rows = False

    def __init__(self, source: str, per_item: int, generator: torch.Generator):
        self.source, self.per_item, self.generator = source, per_item, generator

    def __call__(self, model, inputs, rows, labels: LabelRows, targets: LabelRows, similarity, transport):
        """The hard-target entries and ``per_item`` random soft-labelled entries per item (among
        those without a hard target) are evaluated; soft labels come from the predictions at the
        item's observed entries, exactly as in the dense computation. (E, 1, C) layout."""
        rows = host_rows(rows)  # every shape below comes from the host: no device read in a step
        hard_index, hard_valid, hard_values = targets.batch(rows)
        index, valid, observed = (hard_index, hard_valid, hard_values) if targets is labels else labels.batch(rows)
        slots = valid_slots(hard_valid, targets.n_labels(rows))  # the hard entries, item-major
        hard_items, hard_annotators = slots // hard_index.shape[1], hard_index.reshape(-1)[slots]
        n_hard = len(slots)
        count = n_draws(targets.counts[rows], labels.counts[rows] > 0, labels.n_annotators, self.per_item)
        soft_items, soft_annotators = sample_unlabelled(
            hard_index, hard_valid, labels.n_annotators, self.per_item, valid.any(1), self.generator, count)
        log_p = model(inputs, torch.cat([hard_items, soft_items]), torch.cat([hard_annotators, soft_annotators])).float()
        probs = mean_probability(log_p.unsqueeze(-2)).squeeze(-2).detach()  # (E, C)
        labeller_probs = self._at_labellers(probs[:n_hard], hard_index, hard_valid, index, valid, targets is labels)
        sources = mix_sources(labeller_probs, observed, self.source) * valid[..., None]  # (B, W, C)
        index = torch.where(valid, index, 0)  # padding (A) must index the similarity; it gets weight 0
        p_soft, has_soft = weighted_soft_labels(
            similarity.to(probs.dtype), soft_annotators, index[soft_items], valid[soft_items], sources[soft_items], transport
        )
        p_soft = torch.cat([torch.zeros_like(probs[:n_hard]), p_soft])
        has_soft = torch.cat([torch.zeros(n_hard, dtype=torch.bool, device=probs.device), has_soft])
        entry_targets = torch.cat([hard_values.reshape(-1)[slots], torch.full_like(soft_items, MISSING)])
        return log_p.unsqueeze(-2), entry_targets[:, None], p_soft[:, None], has_soft[:, None]

    @staticmethod
    def _at_labellers(hard_probs, hard_index, hard_valid, index, valid, same: bool) -> torch.Tensor:
        """(B, W, C) predictions at each item's observed entries, taken from those at its hard
        entries (E_hard, C), item-major; the observed entries are among the hard ones."""
        if not len(hard_probs):
            return hard_probs.new_zeros((*index.shape, hard_probs.shape[-1]))
        counts = hard_valid.sum(1)
        first = torch.cumsum(counts, 0) - counts
        # Both ascending by annotator: an observed entry's slot among its item's hard entries.
        slot = torch.arange(index.shape[1], device=index.device) if same else torch.searchsorted(hard_index, index)
        return hard_probs[torch.where(valid, first[:, None] + slot, 0)]


def batch_targets(config, fixed_soft: torch.Tensor | None, generator: torch.Generator):
    """The strategy a config asks for."""
    if fixed_soft is not None:
        return FixedTargets(fixed_soft)
    if config.soft_entries_per_item:
        return SampledTargets(config.soft_label_source, config.soft_entries_per_item, generator)
    return DenseTargets(config.soft_label_source, config.unlabeled_weight > 0)
