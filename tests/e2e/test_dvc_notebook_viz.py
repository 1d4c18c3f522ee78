"""DVC reruns only what changed; the notebook runs headless; kedro viz serves the pipelines."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from tests.conftest import PROJECT_ROOT, run, tool_env

pytestmark = pytest.mark.slow
STAGES = ["demo_data", "ingestion", "label_matrix", "similarity", "training", "reporting"]


@pytest.fixture(scope="module")
def reproduced(tiny_project):
    first = run(["dvc", "repro"], tiny_project)
    return tiny_project, first.stdout + first.stderr  # Kedro's warnings go to stderr


def test_dvc_repro_runs_the_main_stages_then_nothing(reproduced):
    project, first = reproduced
    for stage in STAGES:
        assert f"Running stage '{stage}'" in first
    assert "paper_tables" not in first, "the paper's evaluation is opt-in"
    assert "KedroDeprecationWarning" not in first and "dataset names contain '.'" not in first
    assert "made from a 'partial' function" not in first  # the training stage runs in parallel workers
    assert "Could not extract type hints" not in first  # Kedro reads the node functions' annotations
    # Methods train in parallel processes: every epoch line names its method (and architecture).
    assert "simlabel_shrunk_mixed/madl: epoch   1/" in first and "dawid_skene/heads: epoch   1/" in first
    second = run(["dvc", "repro"], project).stdout
    assert "Running stage" not in second, second
    assert "Running stage" not in run(["dvc", "repro", "--dry"], project).stdout
    assert "up to date" in run(["dvc", "status"], project).stdout
    dry = run(["dvc", "repro", "--dry"], project / "experiments/paper_tables").stdout
    assert "Running stage 'paper_tables'" in dry


def test_a_run_on_another_folder_leaves_the_tracked_outputs_alone(reproduced, tmp_path):
    import hashlib

    import numpy as np
    import pandas as pd

    project, _ = reproduced
    tracked = sorted(p for p in (project / "data").rglob("*") if p.is_file() and "other_set" not in p.parts)
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in tracked if ".simlabel-run.lock" not in p.name}
    folder = tmp_path / "other_set"
    folder.mkdir()
    rng = np.random.default_rng(0)
    np.save(folder / "features.npy", rng.normal(size=(60, 5)).astype(np.float32))
    rows = [(i, f"w{a}", int(rng.integers(0, 2))) for i in range(60) for a in range(3) if rng.random() < 0.6]
    pd.DataFrame(rows, columns=["item_id", "annotator_id", "label"]).to_csv(folder / "labels.csv", index=False)
    run(["kedro", "run", "--pipelines=simlabel", f"--params=dataset_dir={folder}"], project)
    assert (project / "data/other_set/08_reporting/metrics.json").is_file()
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in before}
    assert after == before, "a run on another folder changed the demo's outputs"
    assert "up to date" in run(["dvc", "status"], project).stdout


def test_dvc_reruns_only_downstream_of_a_changed_parameter(reproduced):
    project, _ = reproduced
    params = project / "conf/base/parameters_training.yml"
    original = params.read_text()
    params.write_text(original.replace("grad_clip: 1.0", "grad_clip: 2.0"))
    try:
        out = run(["dvc", "repro"], project).stdout
        ran = {stage for stage in [*STAGES, "paper_tables"] if f"Running stage '{stage}'" in out}
        assert {"training"} <= ran <= {"training", "reporting", "paper_tables"}, out
        assert "similarity" not in ran and "ingestion" not in ran
    finally:
        params.write_text(original)
        run(["dvc", "repro"], project)


def test_dvc_metrics_and_experiments_are_readable(reproduced):
    project, _ = reproduced
    shown = run(["dvc", "metrics", "show", "--json"], project)
    assert "failed to load" not in (shown.stdout + shown.stderr).lower()
    metrics = next(iter(json.loads(shown.stdout).values()))["data"]["data/08_reporting/metrics.json"]["data"]
    assert {"skip", "simlabel", "simlabel_confidence"} <= set(metrics)
    assert set(metrics["simlabel"]) == {"mean_accuracy", "ci95_low", "ci95_high", "n_annotators"}
    # Commit the run, as a user would, then compare against it: both revisions load.
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "dvc.lock"], project)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "run"], project)
    diff = run(["dvc", "metrics", "diff", "HEAD"], project)
    assert "failed" not in (diff.stdout + diff.stderr).lower()
    plots = run(["dvc", "plots", "show"], project)
    assert "failed to load" not in (plots.stdout + plots.stderr).lower()


def test_notebook_executes_headless(reproduced):
    project, _ = reproduced
    run(
        ["jupyter", "nbconvert", "--to", "notebook", "--execute", "--output", "executed.ipynb",
         "--ExecutePreprocessor.timeout=300", "notebooks/explore_run.ipynb"],
        project,
    )
    executed = json.loads((project / "notebooks/executed.ipynb").read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    text = json.dumps(executed)
    assert "imputed labels" in text and "items x 12 annotators" in text


def free_port() -> int:
    """A free port in kedro viz's usual range (it refuses ephemeral high ports)."""
    for port in range(4141, 4999, 5):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port for kedro viz")


def test_kedro_viz_serves_every_pipeline(tmp_path):
    port = free_port()
    log = tmp_path / "viz.log"
    process = subprocess.Popen(
        ["kedro", "viz", "run", "--no-browser", "--host", "127.0.0.1", "--port", str(port)],
        cwd=PROJECT_ROOT, env=tool_env(), stdout=log.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/main", timeout=5) as response:
                    main = json.load(response)
                break
            except OSError:
                if time.time() > deadline or process.poll() is not None:
                    raise AssertionError(f"kedro viz did not serve /api/main:\n{log.read_text()[-3000:]}") from None
                time.sleep(1)
        pipeline_ids = {p["id"] for p in main["pipelines"]}
        assert {"simlabel", "paper_tables", "predict", *STAGES} <= pipeline_ids
        node_names = {n["name"] for n in main["nodes"]}
        assert {"train", "compute_similarity", "evaluate_methods"} <= {n.split(".")[-1] for n in node_names}
        assert {"ingestion", "training", "reporting"} <= {t["id"] for t in main["tags"]}
        assert main["layers"], "kedro viz found no layers (a cycle among layers disables them)"
        assert "circular dependency" not in log.read_text()
        dataset_types = {str(n.get("dataset_type")) for n in main["nodes"] if n.get("type") == "data"}
        assert not any("AtomicDataset" in t for t in dataset_types), dataset_types
        assert any(t.endswith("ParquetDataset") for t in dataset_types), dataset_types
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)  # kedro viz leaves a uvicorn child: stop the group
        except ProcessLookupError:
            pass
        process.wait(timeout=30)
