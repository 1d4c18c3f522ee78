"""FusedAdamW and WarmupCosine against torch.optim.AdamW(fused=True) and LambdaLR: the same
updates bit for bit, state dicts that load into each other, and no import of torch._dynamo."""

import io
import subprocess
import sys

import pytest
import torch

from simlabel.training.optim import FusedAdamW, WarmupCosine, fused_adamw_supported, warmup_cosine


def two_groups(seed: int = 0) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    trunk = [torch.nn.Parameter(torch.randn(6, 4, generator=generator)), torch.nn.Parameter(torch.randn(4, generator=generator))]
    heads = [torch.nn.Parameter(torch.randn(3, 2, 5, generator=generator).transpose(1, 2))]  # not contiguous
    return [{"params": trunk, "lr": 3e-3}, {"params": heads, "lr": 1e-4}]


def set_gradients(groups: list[dict], step: int, skip_last: bool = False) -> None:
    generator = torch.Generator().manual_seed(100 + step)
    params = [p for group in groups for p in group["params"]]
    for p in params:
        p.grad = torch.randn(p.shape, generator=generator)
    if skip_last:  # a parameter without a gradient this step is left alone, as torch does
        params[-1].grad = None


def run(optimizer_class, steps: int, schedule_steps: int | None = None, **options):
    groups = two_groups()
    optimizer = optimizer_class(groups, weight_decay=0.05, **options)
    schedule = WarmupCosine(optimizer, warmup_cosine(schedule_steps or steps, 0.3))
    rates = []
    for step in range(steps):
        set_gradients(groups, step, skip_last=step % 3 == 1)
        optimizer.step()
        schedule.step()
        rates.append(schedule.get_last_lr())
    return groups, optimizer, schedule, rates


def test_updates_equal_torch_fused_adamw_bit_for_bit():
    ours, optimizer, _, rates = run(FusedAdamW, 12)
    theirs, reference, _, reference_rates = run(torch.optim.AdamW, 12, fused=True)
    for mine, expected in zip((p for g in ours for p in g["params"]), (p for g in theirs for p in g["params"]), strict=True):
        assert torch.equal(mine, expected)
        assert torch.equal(optimizer.state[mine]["exp_avg_sq"], reference.state[expected]["exp_avg_sq"])
        assert optimizer.state[mine]["step"].item() == reference.state[expected]["step"].item()
    assert rates == reference_rates
    assert optimizer.state[ours[1]["params"][0]]["step"].item() == 8  # skipped on 4 of 12 steps


def test_schedule_equals_lambda_lr():
    factor = warmup_cosine(20, 0.25)
    model = torch.nn.Linear(2, 2)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    reference = torch.optim.lr_scheduler.LambdaLR(sgd, factor)
    ours = WarmupCosine(FusedAdamW(model.parameters(), lr=0.1), factor)
    for _ in range(25):
        assert ours.get_last_lr() == reference.get_last_lr()
        ours.step()
        sgd.step()
        reference.step()
    assert factor(0) == 1 / 5 and factor(4) == 1.0 and factor(20) == 0.0  # by hand: warm-up 5 steps


@pytest.mark.parametrize("direction", ["torch_to_ours", "ours_to_torch"])
def test_state_dicts_load_into_each_other_and_continue_identically(direction):
    steps = 10
    source_class, target_class = (torch.optim.AdamW, FusedAdamW) if direction == "torch_to_ours" else (FusedAdamW, torch.optim.AdamW)
    options = {"fused": True} if source_class is torch.optim.AdamW else {}
    groups, optimizer, schedule, _ = run(source_class, 5, steps, **options)
    buffer = io.BytesIO()  # through a file, as a training state is saved
    torch.save({"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    # Continue: the source itself, and a fresh target object loaded from the saved state.
    copies = [{"params": [torch.nn.Parameter(p.detach().clone()) for p in g["params"]], "lr": g["initial_lr"]} for g in optimizer.param_groups]
    target_options = {"fused": True} if target_class is torch.optim.AdamW else {}
    target = target_class(copies, weight_decay=0.05, **target_options)
    target_schedule = WarmupCosine(target, warmup_cosine(steps, 0.3))
    target.load_state_dict(saved["optimizer"])
    target_schedule.load_state_dict(saved["schedule"])
    for step in range(5, steps):
        for these, opt, sched in ((groups, optimizer, schedule), (copies, target, target_schedule)):
            set_gradients(these, step)
            opt.step()
            sched.step()
    for mine, expected in zip((p for g in copies for p in g["params"]), (p for g in groups for p in g["params"]), strict=True):
        assert torch.equal(mine, expected)
    assert target_schedule.get_last_lr() == schedule.get_last_lr()


def test_zero_grad_and_bad_input():
    groups = two_groups()
    optimizer = FusedAdamW(groups)
    set_gradients(groups, 0)
    optimizer.zero_grad(set_to_none=False)
    assert all(torch.count_nonzero(p.grad) == 0 for g in groups for p in g["params"])
    optimizer.zero_grad()
    assert all(p.grad is None for g in groups for p in g["params"])
    with pytest.raises(ValueError, match="more than one group"):
        FusedAdamW([{"params": groups[0]["params"]}, {"params": groups[0]["params"][:1]}])
    with pytest.raises(ValueError, match="floating-point"):
        FusedAdamW([torch.zeros(3, dtype=torch.long)])
    assert not fused_adamw_supported([]) and fused_adamw_supported(groups[0]["params"])
    with pytest.raises(ValueError, match="different parameter groups"):
        FusedAdamW(groups[:1]).load_state_dict(optimizer.state_dict())


def test_grad_scaler_steps_it():
    groups = two_groups()
    optimizer = FusedAdamW(groups)
    before = [p.detach().clone() for g in groups for p in g["params"]]
    scaler = torch.amp.GradScaler("cpu", init_scale=4.0)
    loss = sum((p * p).sum() for g in groups for p in g["params"])
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    expected = [2 * b for b in before]  # unscaled gradient of sum p^2
    for p, grad in zip((p for g in groups for p in g["params"]), expected, strict=True):
        torch.testing.assert_close(p.grad, grad)
    scaler.step(optimizer)
    scaler.update()
    assert all(not torch.equal(p, b) for p, b in zip((p for g in groups for p in g["params"]), before, strict=True))


def test_a_training_run_never_imports_torch_dynamo():
    probe = (
        "import sys, numpy as np\n"
        "from simlabel.training.loop import train_annotator_models, TrainConfig\n"
        "rng = np.random.default_rng(0)\n"
        "labels = np.where(rng.random((60, 4)) < 0.5, rng.integers(0, 3, (60, 4)), -1)\n"
        "rows = np.arange(60) < 45\n"
        "config = TrainConfig(max_epochs=2, batch_size=16, hidden=8)\n"
        "train_annotator_models(rng.normal(size=(60, 1, 5)).astype('float32'), labels, rows, ~rows, np.eye(4), 3, config)\n"
        "assert 'torch' in sys.modules\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False"
