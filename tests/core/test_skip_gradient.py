import torch

from simlabel.core.losses import simlabel_loss
from simlabel.core.soft_labels import soft_labels
from simlabel.models.annotators import HeadsModel


def head_gradients(unlabeled_weight: float) -> torch.Tensor:
    torch.manual_seed(0)
    n_items, n_annotators, n_classes, dim = 16, 4, 3, 8
    model = HeadsModel(dim, n_annotators, n_classes, torch.zeros(dim), torch.ones(dim), hidden=6, dropout=0.0)
    x = torch.randn(n_items, 1, dim)
    labels = torch.randint(0, n_classes, (n_items, n_annotators))
    labels[:, 2] = -1  # annotator 2 labelled nothing in this batch
    log_p = model(x)
    p_soft, has_soft = soft_labels(log_p.exp(), labels, torch.rand(n_annotators, n_annotators))
    loss, _ = simlabel_loss(log_p, labels, p_soft, has_soft, unlabeled_weight)
    loss.backward()
    head = model.heads[-1]
    return torch.cat([head.maps.grad.flatten(1), head.bias.grad], dim=1)  # (A, H*C + C)


def test_skip_sends_no_gradient_from_unlabelled_entries():
    grads = head_gradients(unlabeled_weight=0.0)
    assert torch.count_nonzero(grads[2]) == 0
    assert all(torch.count_nonzero(grads[a]) > 0 for a in (0, 1, 3))


def test_simlabel_trains_the_unlabelled_annotator():
    grads = head_gradients(unlabeled_weight=1.0)
    assert torch.count_nonzero(grads[2]) > 0
