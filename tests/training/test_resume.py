"""kill -9 in the middle of training, resume, and get exactly the uninterrupted result."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from tests.conftest import PROJECT_ROOT

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import torch
    from simlabel.core.kappa import kappa_matrix
    from simlabel.training.loop import TrainConfig, train_annotator_models

    torch.set_num_threads(1)
    state_path, resume, out = sys.argv[1], sys.argv[2] == "resume", sys.argv[3]
    rng = np.random.default_rng(0)
    n, a, c, d = 3000, 12, 4, 32
    truth = rng.integers(0, c, n)
    tokens = (rng.normal(0, 1.5, (c, d))[truth] + rng.normal(size=(n, d))).astype(np.float32)[:, None]
    labels = np.where(rng.random((n, a)) < 0.2, (truth[:, None] + (np.arange(a) % 2)) % c, -1)
    train, val = np.arange(n) < 2000, np.arange(n) >= 2400
    config = TrainConfig.from_params({
        "max_epochs": 25, "patience": 25, "hidden": 64, "cycling": True, "threshold": 0.4,
        "device": "cpu", "state_path": state_path, "resume": resume, "dropout": 0.3,
    })
    similarity = kappa_matrix(np.where(train[:, None], labels, -1), c, 2)
    result = train_annotator_models(tokens, labels, train, val, similarity, c, config)
    np.savez(out, loss=result.history["loss"].to_numpy(), val=result.history["val_mean_accuracy"].to_numpy(),
             best=result.best_epoch, imputed=result.imputed.label, conf=result.imputed.confidence,
             similarity=result.similarity, weights=torch.cat([p.flatten() for p in result.model.parameters()]).detach().numpy())
    """
)


def train(tmp_path, name: str, mode: str, kill_after_epoch: int | None = None):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    state, out = tmp_path / f"{name}.state.pt", tmp_path / f"{name}.npz"
    cmd = [sys.executable, str(script), str(state), mode, str(out)]
    env = {"PYTHONPATH": str(PROJECT_ROOT / "src"), "PATH": "/usr/bin:/bin"}
    if kill_after_epoch is None:
        subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=600)
        return np.load(out)
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if state.is_file() and torch.load(state, weights_only=False)["epoch"] >= kill_after_epoch:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "training finished before it could be killed"
    assert not out.exists()
    return torch.load(state, weights_only=False)["epoch"]


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_result(tmp_path):
    reference = train(tmp_path, "reference", "fresh")
    killed_at = train(tmp_path, "interrupted", "fresh", kill_after_epoch=3)
    assert 3 <= killed_at < 25
    leftovers = [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]
    assert not leftovers, f"half-written files left behind: {leftovers}"
    resumed = train(tmp_path, "interrupted", "resume")
    assert len(resumed["loss"]) == len(reference["loss"])
    np.testing.assert_allclose(resumed["loss"], reference["loss"], rtol=1e-6)
    np.testing.assert_array_equal(resumed["val"], reference["val"])
    assert resumed["best"] == reference["best"]
    np.testing.assert_array_equal(resumed["imputed"], reference["imputed"])
    assert (reference["imputed"] != -1).sum() > 0
    np.testing.assert_allclose(resumed["conf"], reference["conf"], rtol=1e-6)
    np.testing.assert_allclose(resumed["similarity"], reference["similarity"], rtol=1e-6)
    np.testing.assert_allclose(resumed["weights"], reference["weights"], rtol=1e-6)
