"""embed_frames: the batched, folded inference path gives the naive batch-of-1 features."""

import importlib.util

import numpy as np
import pytest
import torch
from torch import nn

from simlabel.models import backbones
from simlabel.models.backbones import FrameEncoder, embed_frames, inference_copy, load_backbone

HAS_ORT = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return load_backbone()  # the real offline EfficientNet-Lite0


def _naive(encoder, frames):
    """Batch of 1, eager, the encoder as loaded: the reference."""
    with torch.no_grad():
        return np.stack([encoder(torch.from_numpy(np.ascontiguousarray(f[None])))[0].numpy() for f in frames])


def _frames(n, size, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("runtime", ["torch", pytest.param("onnxruntime", marks=pytest.mark.skipif(not HAS_ORT, reason="onnxruntime not installed")), "auto"])
def test_batched_equals_batch_of_one(encoder, runtime):
    frames = _frames(6, 224)
    reference = _naive(encoder, frames)
    # (2 items, 3 frames each) in batches of 4: one full batch and a partial one.
    out = embed_frames(frames.reshape(2, 3, 224, 224, 3), encoder, batch_size=4, runtime=runtime)
    assert out.shape == (2, 3, 1280) and out.dtype == np.float32
    np.testing.assert_allclose(out.reshape(6, -1), reference, atol=1e-4, rtol=0)


def test_image_size(encoder):
    images = _frames(3, 32, seed=1)[:, None]  # CIFAR-size: (3 items, 1 frame, 32, 32, 3)
    # 224 (the default) is what the encoder did before: upsampled to 224.
    np.testing.assert_allclose(embed_frames(images, encoder, runtime="torch")[:, 0], _naive(encoder, images[:, 0]), atol=1e-4, rtol=0)
    # A smaller size is the same network on the frames resized to that size (None: as they are).
    for size in (64, None):
        native = FrameEncoder(encoder.trunk, encoder.feature_dim, image_size=size).eval()
        expected = _naive(native, images[:, 0])
        got = embed_frames(images, encoder, image_size=size)[:, 0]
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
        assert np.abs(got - embed_frames(images, encoder)[:, 0]).max() > 1e-2  # not the 224 features
    with pytest.raises(ValueError, match="image_size"):
        embed_frames(images, encoder, image_size=0)


def test_encoder_is_left_unchanged(encoder):
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    embed_frames(_frames(2, 64)[:, None], encoder, runtime="torch")
    after = encoder.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert encoder.image_size == 224
    assert any(isinstance(m, nn.BatchNorm2d) for m in encoder.modules())


@pytest.mark.parametrize(("kernel", "stride", "size"), [(3, 2, 16), (5, 2, 16), (3, 1, 15), (5, 1, 16), (3, 2, 15)])
def test_fold_padding_is_exact(kernel, stride, size):
    from efficientnet_lite_pytorch.utils import Conv2dStaticSamePadding

    torch.manual_seed(0)
    conv = Conv2dStaticSamePadding(4, 4, kernel, stride=stride, groups=4, bias=False, image_size=size).eval()
    x = torch.randn(2, 4, size, size)
    with torch.no_grad():
        expected = conv(x)
        backbones._fold_padding(conv)
        assert isinstance(conv.static_padding, nn.Identity)
        np.testing.assert_allclose(conv(x).numpy(), expected.numpy(), atol=1e-5, rtol=0)


def test_other_trunks_fold_through_torch_fx():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None)
    net.fc = nn.Identity()
    for m in net.modules():  # non-trivial BatchNorm statistics, so that folding has work to do
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    encoder = FrameEncoder(net, 512, image_size=64).eval()
    frozen = inference_copy(encoder, image_size=64)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in frozen.modules())
    frames = torch.from_numpy(_frames(3, 64, seed=2))
    with torch.no_grad():
        np.testing.assert_allclose(frozen(frames).numpy(), encoder(frames).numpy(), atol=1e-4, rtol=1e-4)


def test_arguments_and_empty_input(encoder):
    frames = _frames(1, 32)[:, None]
    with pytest.raises(ValueError, match="runtime"):
        embed_frames(frames, encoder, runtime="tensorrt")
    with pytest.raises(ValueError, match="CPU only"):
        embed_frames(frames, encoder, device="cuda", runtime="onnxruntime")
    with pytest.raises(ValueError, match="uint8"):
        embed_frames(frames.astype(np.float32), encoder)
    assert embed_frames(np.zeros((0, 4, 32, 32, 3), np.uint8), encoder).shape == (0, 4, 1280)


@pytest.mark.skipif(not HAS_ORT, reason="onnxruntime not installed")
@pytest.mark.parametrize(("threads", "expected"), [(None, "torch"), (0, "cores"), (3, 3)])
def test_onnx_runtime_gets_the_threads_asked_for(encoder, monkeypatch, threads, expected):
    import onnxruntime

    seen = []
    session = onnxruntime.InferenceSession

    def recording_session(model, options, **kwargs):
        seen.append(options.intra_op_num_threads)
        return session(model, options, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", recording_session)
    frames = _frames(2, 32)[:, None]
    out = embed_frames(frames, encoder, runtime="onnxruntime", threads=threads)
    np.testing.assert_allclose(out[:, 0], _naive(encoder, frames[:, 0]), atol=1e-4, rtol=0)
    wanted = {"torch": torch.get_num_threads(), "cores": backbones.available_cores()}.get(expected, expected)
    assert seen == [wanted]
    with pytest.raises(ValueError, match="threads"):
        embed_frames(frames, encoder, threads=-1)
    with pytest.raises(ValueError, match="threads"):  # checked before the empty input returns
        embed_frames(frames[:0], encoder, threads=1.5)
