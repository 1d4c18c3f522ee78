"""The sampled step (``training.soft_entries_per_item``) never reads a value back from the device.

On a GPU every such read (``.item()``, ``int(t)``, a boolean-mask index, ``nonzero``) makes the
host wait for the queued work, once or more per step. Tensors on torch's ``meta`` device hold no
values, so each of those raises there: a step that runs on ``meta`` takes every shape from the
host. Its values on the CPU are those of the compacting code it replaced (same draws, same order).
"""

import numpy as np
import pytest
import torch

from simlabel.choices import ENTRY_ARCHITECTURES
from simlabel.core.label_rows import (
    LabelRows,
    batch_entries,
    n_draws,
    sample_unlabelled,
    valid_slots,
)
from simlabel.core.losses import simlabel_loss
from simlabel.core.pair_similarity import PairSimilarity
from simlabel.models.annotators import build_model
from simlabel.training.targets import SampledTargets

META = torch.device("meta")


def crowd(seed=0, n_items=40, n_annotators=9, n_classes=3):
    rng = np.random.default_rng(seed)
    labels = np.where(rng.random((n_items, n_annotators)) < 0.35, rng.integers(0, n_classes, (n_items, n_annotators)), -1)
    labels[:, 0] = np.where(np.arange(n_items) % 2, labels[:, 0], 1)  # some items labelled by most annotators
    labels[:4, :] = np.where(rng.random((4, n_annotators)) < 0.9, 2, -1)
    labels[5] = -1  # an item nobody labelled
    imputed = np.where((labels == -1) & (rng.random(labels.shape) < 0.2), rng.integers(0, n_classes, labels.shape), labels)
    return labels, imputed, n_classes


@pytest.mark.parametrize("architecture", ENTRY_ARCHITECTURES)
@pytest.mark.parametrize("imputed_targets", [False, True])
@pytest.mark.parametrize("sparse_similarity", [False, True])
def test_the_sampled_step_runs_forward_and_backward_on_the_meta_device(architecture, imputed_targets, sparse_similarity):
    labels, imputed, n_classes = crowd()
    n_annotators = labels.shape[1]
    observed = LabelRows.from_matrix(labels, device=META)
    hard = LabelRows.from_matrix(imputed, device=META) if imputed_targets else observed
    pairs = PairSimilarity.from_dense(np.full((n_annotators, n_annotators), 0.3) - 0.3 * np.eye(n_annotators))
    similarity = pairs.tensor(META) if sparse_similarity else torch.zeros(n_annotators, n_annotators, device=META)
    model = build_model(architecture, in_dim=5, n_annotators=n_annotators, n_classes=n_classes,
                        feature_mean=torch.zeros(5), feature_std=torch.ones(5), hidden=8).to(META).train()
    step = SampledTargets("mixed", 4, torch.Generator().manual_seed(0))
    rows = np.array([0, 5, 7, 3, 12, 31, 7])  # a heavy item, an unlabelled one, a repeat
    log_p, targets, p_soft, has_soft = step(model, torch.zeros(len(rows), 1, 5, device=META), rows, observed, hard,
                                            similarity, None)
    expected = hard.n_labels(rows) + n_draws(hard.counts[rows], observed.counts[rows] > 0, n_annotators, 4)
    assert targets.shape == (expected, 1) and has_soft.shape == (expected, 1)
    loss, _ = simlabel_loss(log_p, targets, p_soft, has_soft, 1.0)
    loss.backward()
    assert all(p.grad is not None and p.grad.device == META for p in model.parameters() if p.requires_grad)


def test_the_cpu_step_draws_and_orders_entries_as_boolean_masks_do():
    labels, imputed, _ = crowd(seed=1)
    rows_table, hard_table = LabelRows.from_matrix(labels), LabelRows.from_matrix(imputed)
    rows = np.random.default_rng(0).choice(len(labels), 30)
    index, valid, values = hard_table.batch(rows)
    for count in (None, hard_table.n_labels(rows)):
        items, annotators = batch_entries(index, valid, count)
        reference = torch.arange(len(rows))[:, None].expand_as(index)
        torch.testing.assert_close(items, reference[valid])
        torch.testing.assert_close(annotators, index[valid])
    eligible = rows_table.batch(rows)[1].any(1)
    for per_item in (0, 1, 3, 8, 20):
        count = n_draws(hard_table.counts[rows], rows_table.counts[rows] > 0, labels.shape[1], per_item)
        drawn = sample_unlabelled(index, valid, labels.shape[1], per_item, eligible, torch.Generator().manual_seed(2), count)
        masked = sample_unlabelled(index, valid, labels.shape[1], per_item, eligible, torch.Generator().manual_seed(2))
        for ours, reference in zip(drawn, masked, strict=True):
            torch.testing.assert_close(ours, reference)
        # by hand: min(per_item, unlabelled annotators) for each item that has an observed label
        free = labels.shape[1] - (imputed[rows] >= 0).sum(1)
        assert len(drawn[0]) == sum(min(per_item, f) for f, r in zip(free, rows, strict=True) if (labels[r] >= 0).any())


def test_a_count_that_disagrees_with_the_mask_is_an_error_on_the_cpu():
    valid = torch.tensor([[True, False], [True, True]])
    torch.testing.assert_close(valid_slots(valid, 3), torch.tensor([0, 2, 3]))
    with pytest.raises(RuntimeError, match="2 entries expected from the host counts, the mask has 3"):
        valid_slots(valid, 2)


def test_batches_take_host_or_cpu_tensor_rows_alike():
    labels, _, _ = crowd(seed=3)
    table = LabelRows.from_matrix(labels)
    rows = np.array([4, 0, 9])
    for ours, reference in zip(table.batch(torch.from_numpy(rows)), table.batch(rows), strict=True):
        torch.testing.assert_close(ours, reference)
    assert table.n_labels(rows) == (labels[rows] >= 0).sum()
    np.testing.assert_array_equal(table.counts, (labels >= 0).sum(1))
    assert table.batch(np.zeros(0, dtype=np.int64))[0].shape == (0, 1)
