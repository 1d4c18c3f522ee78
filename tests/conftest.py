"""Shared fixtures: a throw-away copy of the project configured for a tiny, fast demo run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

# Small enough for CI's 2 cores, big enough that every branch trains and imputes.
TINY_PARAMETERS = {
    "parameters_demo_data.yml": {"demo_data": {"n_items": 40, "test_panel": 12, "n_frames": 12, "height": 60, "width": 80}},
    "parameters_ingestion.yml": {"ingestion": {"frames_per_clip": 3}},
    "parameters_training.yml": {"training": {"max_epochs": 10, "patience": 5, "hidden": 32, "learning_rate": 0.01, "architectures": ["heads", "qumatl", "madl", "padl"]}},
    "parameters_methods.yml": {"methods": {"simlabel_confidence": {"cycling": True, "threshold": 0.2}}},
    "parameters_paper_tables.yml": {
        "paper_tables": {
            "seeds": 2, "extra_missing": [0.0, 0.3],
            "ablation": {"method": "simlabel_confidence", "seeds": 1, "thresholds": [0.5, 0.6], "formulas": ["max", "product"],
                         "default_threshold": 0.6, "default_formula": "product"},
        }
    },
}


def tool_env() -> dict[str, str]:
    """Environment for subprocesses: this venv's tools first, no telemetry or analytics."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update({"KEDRO_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1", "DVC_NO_ANALYTICS": "1"})
    return env


def run(cmd: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = tool_env()
    env["PYTHONPATH"] = str(Path(cwd) / "src")  # the copy's own package, also for python -m
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def copy_project(destination: Path) -> Path:
    """Copy the files git would see (tracked + new, not ignored) into a fresh git repository."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = PROJECT_ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def shrink_parameters(project: Path) -> None:
    for filename, overrides in TINY_PARAMETERS.items():
        path = project / "conf" / "base" / filename
        params = yaml.safe_load(path.read_text())
        for key, values in overrides.items():
            params[key].update(values)
        path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory) -> Path:
    """A copy of the project with tiny demo parameters, committed in its own git repository."""
    project = copy_project(tmp_path_factory.mktemp("project"))
    shrink_parameters(project)
    (project / "dvc.lock").unlink(missing_ok=True)
    run(["git", "init", "-q"], project)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A"], project)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "copy"], project)
    return project
