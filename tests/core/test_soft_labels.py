import math

import pytest
import torch

from simlabel.core.losses import simlabel_loss
from simlabel.core.soft_labels import confidence, has_labellers, labeller_index, soft_labels

S = torch.tensor([[0.0, 0.6, 0.2], [0.6, 0.0, 0.5], [0.2, 0.5, 0.0]])
# One item: annotator 0 missing, annotators 1 and 2 labelled it (classes 0 and 1).
LABELS = torch.tensor([[-1, 0, 1]])
PROBS = torch.tensor([[[0.5, 0.5], [0.9, 0.1], [0.3, 0.7]]])


def test_labeller_index():
    index, valid = labeller_index(torch.tensor([[False, True, True], [True, False, False], [False, False, False]]))
    assert index.shape == (3, 2)
    assert index[0].tolist() == [1, 2] and valid[0].tolist() == [True, True]
    assert index[1, 0] == 0 and valid[1].tolist() == [True, False]
    assert valid[2].tolist() == [False, False]


def test_soft_label_hand_computed():
    p_soft, has_soft = soft_labels(PROBS, LABELS, S)
    # Annotator 0: w_01 = 0.6 / 0.8 = 0.75, w_02 = 0.25 -> 0.75 * (0.9, 0.1) + 0.25 * (0.3, 0.7)
    torch.testing.assert_close(p_soft[0, 0], torch.tensor([0.75, 0.25]))
    # Annotator 1 (labelled, but still defined): O = {2} -> annotator 2's prediction
    torch.testing.assert_close(p_soft[0, 1], torch.tensor([0.3, 0.7]))
    torch.testing.assert_close(p_soft[0, 2], torch.tensor([0.9, 0.1]))
    assert has_soft.tolist() == [[True, True, True]]


def test_uniform_weights_when_similarity_is_zero_and_no_soft_label_without_labellers():
    labels = torch.tensor([[-1, 0, 1], [-1, -1, -1], [0, -1, -1]])
    probs = PROBS.expand(3, 3, 2)
    p_soft, has_soft = soft_labels(probs, labels, torch.zeros(3, 3))
    torch.testing.assert_close(p_soft[0, 0], torch.tensor([0.6, 0.4]))  # mean of (0.9,0.1), (0.3,0.7)
    assert not has_soft[1].any()
    assert has_soft[2].tolist() == [False, True, True]  # annotator 0 is the only labeller
    assert torch.equal(p_soft[1], torch.zeros(3, 2))


def test_label_and_mixed_sources():
    p_labels, _ = soft_labels(PROBS, LABELS, S, source="labels")
    torch.testing.assert_close(p_labels[0, 0], torch.tensor([0.75, 0.25]))  # 0.75 * (1, 0) + 0.25 * (0, 1)
    p_mixed, _ = soft_labels(PROBS, LABELS, S, source="mixed")
    torch.testing.assert_close(p_mixed[0, 0], torch.tensor([0.75, 0.25]))
    p_mixed2, _ = soft_labels(PROBS, LABELS, S, source="mixed")
    torch.testing.assert_close(p_mixed2[0, 1], (torch.tensor([0.3, 0.7]) + torch.tensor([0.0, 1.0])) / 2)
    with pytest.raises(ValueError, match="soft_label_source"):
        soft_labels(PROBS, LABELS, S, source="votes")


def test_confidence_hand_computed():
    p = torch.tensor([0.75, 0.25])
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    certainty = 1 - entropy / math.log(2)
    assert confidence(p, "max").item() == pytest.approx(0.75)
    assert confidence(p, "entropy").item() == pytest.approx(certainty, abs=1e-6)
    assert confidence(p, "product").item() == pytest.approx(0.75 * certainty, abs=1e-6)
    assert confidence(torch.tensor([1.0, 0.0, 0.0]), "product").item() == pytest.approx(1.0)
    assert confidence(torch.full((4,), 0.25), "product").item() == pytest.approx(0.0, abs=1e-6)


def test_loss_hand_computed_and_kl_direction():
    log_probs = PROBS.log()
    p_soft = torch.tensor([[[0.75, 0.25], [0.0, 0.0], [0.0, 0.0]]])
    soft_mask = torch.tensor([[True, False, False]])
    loss, parts = simlabel_loss(log_probs, LABELS, p_soft, soft_mask, unlabeled_weight=1.0)
    ce = -(math.log(0.9) + math.log(0.7)) / 2
    kl_soft_to_model = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)  # KL(p_soft || p_hat)
    kl_model_to_soft = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert float(parts["ce"]) == pytest.approx(ce, abs=1e-6)
    assert float(parts["kl"]) == pytest.approx(kl_soft_to_model, abs=1e-6)
    assert float(parts["kl"]) != pytest.approx(kl_model_to_soft, abs=1e-3)
    assert loss.item() == pytest.approx(ce + kl_soft_to_model, abs=1e-6)
    loss_half, _ = simlabel_loss(log_probs, LABELS, p_soft, soft_mask, unlabeled_weight=0.5)
    assert loss_half.item() == pytest.approx(ce + 0.5 * kl_soft_to_model, abs=1e-6)


def test_transport_carries_each_labeller_into_the_missing_annotators_label_space():
    # Annotator 0 always says the opposite of annotator 2: T[0, 2] swaps the classes.
    transport = torch.eye(2).expand(3, 3, 2, 2).clone()
    transport[0, 2] = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    p_soft, _ = soft_labels(PROBS, LABELS, S, transport=transport)
    # 0.75 * (0.9, 0.1) + 0.25 * swap(0.3, 0.7) = (0.675 + 0.175, 0.075 + 0.075)
    torch.testing.assert_close(p_soft[0, 0], torch.tensor([0.85, 0.15]))
    identity, _ = soft_labels(PROBS, LABELS, S, transport=torch.eye(2).expand(3, 3, 2, 2))
    torch.testing.assert_close(identity, soft_labels(PROBS, LABELS, S)[0])


def test_transport_matrices_from_counts():
    import numpy as np

    from simlabel.core.kappa import colabel_counts, transport_matrices

    # Annotator 1 labels 1 whenever annotator 0 labels 0 (3 items); annotator 2 shares nothing.
    y = np.array([[0, 1, -1], [0, 1, -1], [0, 1, -1], [-1, -1, 1]])
    t = transport_matrices(colabel_counts(y, 2), 3, 2, prior=1.0)
    assert t.shape == (3, 3, 2, 2)
    np.testing.assert_allclose(t.sum(-1), 1.0, rtol=1e-6)
    # P(1 says z | 0 says 0) = (counts (0, 3) + prior (1, 0) + 1e-3) / 4.002
    np.testing.assert_allclose(t[1, 0, 0], [(1 + 1e-3) / 4.002, (3 + 1e-3) / 4.002], rtol=1e-5)
    # No overlap: identity-like (the paper's soft label).
    assert t[2, 0, 0].argmax() == 0 and t[2, 0, 1].argmax() == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_soft_labels_equal_eq4_entry_by_entry_with_an_asymmetric_similarity(seed):
    """The batched (B, L, A) computation against Eq. 4 written out per entry; an asymmetric
    similarity with zero rows and negative values catches a transposed or mis-normalised weight."""
    generator = torch.Generator().manual_seed(seed)
    n_items, n_annotators, n_classes = 7, 6, 3
    labels = torch.randint(0, n_classes, (n_items, n_annotators), generator=generator)
    labels[torch.rand(n_items, n_annotators, generator=generator) < 0.6] = -1
    labels[0] = -1  # an item nobody labelled
    similarity = torch.rand(n_annotators, n_annotators, generator=generator) - 0.2
    similarity[2] = 0.0  # annotator 2: uniform weights
    probs = torch.softmax(torch.randn(n_items, n_annotators, n_classes, generator=generator), -1)
    p_soft, has_soft = soft_labels(probs, labels, similarity)
    for i in range(n_items):
        for a in range(n_annotators):
            others = [k for k in range(n_annotators) if labels[i, k] >= 0 and k != a]
            assert bool(has_soft[i, a]) == bool(others)
            if not others:
                assert torch.equal(p_soft[i, a], torch.zeros(n_classes))
                continue
            raw = torch.stack([similarity[a, k] for k in others])
            weights = raw / raw.sum() if raw.sum() > 0 else torch.full((len(others),), 1 / len(others))
            expected = sum(w * probs[i, k] for w, k in zip(weights, others, strict=True))
            torch.testing.assert_close(p_soft[i, a], expected)


def test_has_labellers_is_soft_labels_has_soft():
    """Hand-checked rows, then random matrices against soft_labels' own has_soft."""
    labels = torch.tensor([[-1, 0, 1], [2, -1, -1], [-1, -1, -1], [0, -1, -1]])
    expected = torch.tensor([[True, True, True], [False, True, True], [False, False, False], [False, True, True]])
    assert torch.equal(has_labellers(labels), expected)
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        labels = torch.randint(0, 3, (20, 7), generator=generator)
        labels[torch.rand(labels.shape, generator=generator) < 0.7] = -1
        probs = torch.softmax(torch.randn(20, 7, 3, generator=generator), -1)
        assert torch.equal(has_labellers(labels), soft_labels(probs, labels, torch.rand(7, 7, generator=generator))[1])
