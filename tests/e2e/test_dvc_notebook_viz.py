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
    return tiny_project, first.stdout


def test_dvc_repro_runs_every_stage_then_nothing(reproduced):
    project, first = reproduced
    for stage in [*STAGES, "paper_tables"]:
        assert f"Running stage '{stage}'" in first
    second = run(["dvc", "repro"], project).stdout
    assert "Running stage" not in second, second
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


def test_dvc_metrics_show_lists_the_accuracies(reproduced):
    project, _ = reproduced
    shown = run(["dvc", "metrics", "show", "--json"], project).stdout
    metrics = next(iter(json.loads(shown).values()))["data"]["data/08_reporting/metrics.json"]["data"]
    assert {"skip", "simlabel", "simlabel_confidence"} <= set(metrics)


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
    assert "imputed labels" in text and "items x 10 annotators" in text


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
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)  # kedro viz leaves a uvicorn child: stop the group
        except ProcessLookupError:
            pass
        process.wait(timeout=30)
