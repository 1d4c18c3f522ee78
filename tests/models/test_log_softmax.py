"""The models' log_softmax (a few whole-tensor ops on the CPU for many rows) equals torch's."""

from __future__ import annotations

import pytest
import torch

from simlabel.models.annotators import log_softmax, uses_torch_log_softmax


# Shapes that take the whole-tensor formula (the others are torch's kernel itself).
@pytest.mark.parametrize("shape", [(256, 3), (32, 220, 10), (4, 8, 30, 5, 5), (1408, 10)])
def test_values_and_gradients_equal_torchs(shape):
    assert not uses_torch_log_softmax(torch.zeros(shape))
    torch.manual_seed(0)
    logits = (torch.randn(shape) * 20).requires_grad_()  # large logits: the shift matters
    weights = torch.randn(shape)
    ours = log_softmax(logits)
    (ours * weights).sum().backward()
    ours_grad, logits.grad = logits.grad, None
    theirs = torch.log_softmax(logits, dim=-1)
    (theirs * weights).sum().backward()
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-6)  # float32 rounding of outputs down to -100
    torch.testing.assert_close(ours_grad, logits.grad, atol=2e-6, rtol=1e-5)


def test_few_rows_and_long_class_axes_keep_torchs_kernel():
    assert uses_torch_log_softmax(torch.zeros(128, 1, 10)) and uses_torch_log_softmax(torch.zeros(300, 100))
    assert not uses_torch_log_softmax(torch.zeros(256, 10))


def test_masked_classes_and_rows_by_hand():
    logits = torch.zeros(64, 8, 4)
    logits[..., 0] = float("-inf")  # a class that can never be predicted
    out = log_softmax(logits)
    assert torch.equal(out[..., 0], torch.full((64, 8), float("-inf")))
    torch.testing.assert_close(out[..., 1:], torch.full((64, 8, 3), -torch.log(torch.tensor(3.0)).item()))
    assert log_softmax(torch.tensor([[1.0, 2.0, 3.0]])).exp().sum().item() == pytest.approx(1.0)
