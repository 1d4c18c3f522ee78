"""Annotator-model architectures. Each maps input tokens (B, T, D) to per-annotator
log-probabilities (B, A, C), so the SimLabel loss, soft labels and confidence never know which
one ran. A new architecture is one class here and one name in ``ARCHITECTURES``.

Inputs are standardised inside the model with the training items' mean and std (buffers saved
in the checkpoint), so a checkpoint predicts from raw embeddings / features.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Standardize(nn.Module):
    """(x - mean) / std with statistics fixed at construction.

    Each std is floored at a tenth of the median std: CNN features often have channels that
    are (nearly) constant on the training items, and dividing by their tiny std would blow
    small deviations on new items up into huge inputs.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        std = std.float()
        floor = 0.1 * std.median().clamp(min=1e-6) if std.numel() else torch.tensor(1e-6)
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.clamp(min=floor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class BatchedLinear(nn.Module):
    """One linear map per annotator, all evaluated in one einsum: (B, [A,] I) -> (B, A, O)."""

    def __init__(self, n_annotators: int, in_dim: int, out_dim: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(n_annotators, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_annotators, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:  # shared input for every annotator
            return torch.einsum("bi,aio->bao", x, self.weight) + self.bias
        return torch.einsum("bai,aio->bao", x, self.weight) + self.bias


class HeadsModel(nn.Module):
    """``heads``: shared embedding -> per-annotator MLP head (SPEC section 5).

    tokens (B, T, D) -> mean over T -> standardise -> Linear(D, hidden) + GELU + dropout ->
    per annotator: [Linear(hidden, head_hidden) + GELU] -> Linear(., C).
    """

    def __init__(
        self,
        in_dim: int,
        n_annotators: int,
        n_classes: int,
        feature_mean: torch.Tensor,
        feature_std: torch.Tensor,
        hidden: int = 128,
        head_hidden: int = 0,
        dropout: float = 0.2,
    ):
        super().__init__()
        self.standardize = Standardize(feature_mean, feature_std)
        self.trunk = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout))
        layers: list[nn.Module] = []
        width = hidden
        if head_hidden:
            layers += [BatchedLinear(n_annotators, hidden, head_hidden), nn.GELU()]
            width = head_hidden
        layers.append(BatchedLinear(n_annotators, width, n_classes))
        self.heads = nn.Sequential(*layers)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        shared = self.trunk(self.standardize(tokens.mean(1)))
        return torch.log_softmax(self.heads(shared), dim=-1)


class EndToEnd(nn.Module):
    """Fine-tune the frame encoder with the annotator model: frames (B, K, H, W, 3) uint8 ->
    per-frame features (B, K, D) -> annotator model -> (B, A, C) log-probabilities."""

    def __init__(self, encoder: nn.Module, annotator_model: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.annotator_model = annotator_model

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        batch, n_frames = frames.shape[:2]
        features = self.encoder(frames.flatten(0, 1)).view(batch, n_frames, -1)
        return self.annotator_model(features)


ARCHITECTURES: dict[str, type[nn.Module]] = {"heads": HeadsModel}


def build_model(architecture: str, **kwargs) -> nn.Module:
    """Instantiate an architecture by name (see ``ARCHITECTURES``)."""
    try:
        cls = ARCHITECTURES[architecture]
    except KeyError:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {sorted(ARCHITECTURES)}") from None
    return cls(**kwargs)
