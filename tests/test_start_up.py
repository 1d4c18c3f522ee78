"""Start-up: a run loads only the stages it asks for, and the stages without a model
(demo_data, label_matrix, similarity, reporting) never import torch: about 2 s of every
``kedro run --pipelines=<stage>`` and of each such DVC stage."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest

from simlabel.choices import ARCHITECTURE_OPTIONS
from simlabel.models.annotators import ARCHITECTURES
from tests.conftest import PROJECT_ROOT, tool_env

# What `kedro run --pipelines=<names>` does before its first node: bootstrap the project, build
# the requested pipelines, validate every parameter, set the threads.
PROBE = """
import json, sys
from pathlib import Path
from kedro.framework.project import pipelines
from kedro.framework.startup import bootstrap_project
bootstrap_project(Path.cwd())
pipelines.set_requested(sys.argv[1].split(","))
nodes = {name: len(pipelines[name].nodes) for name in sys.argv[1].split(",")}
from simlabel.methods import load_parameters
from simlabel.parameters import validate_parameters
from simlabel.runtime import distributed_rank_and_size, use_threads
validate_parameters(load_parameters())
use_threads(1)
stages = sorted({m.split(".")[2] for m in sys.modules if m.startswith("simlabel.pipelines.") and m.count(".") > 2})
print(json.dumps({"nodes": nodes, "stages": stages, "torch": "torch" in sys.modules,
                  "rank": distributed_rank_and_size()}))
"""


def probe(names: str) -> dict:
    result = subprocess.run([sys.executable, "-c", PROBE, names], cwd=PROJECT_ROOT, env=tool_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_stages_without_a_model_never_import_torch():
    light = probe("demo_data,label_matrix,similarity,reporting")
    assert light["stages"] == ["demo_data", "label_matrix", "reporting", "similarity"]
    assert not light["torch"], "a stage without a model imported torch"
    assert light["rank"] == [0, 1] and all(light["nodes"].values())


@pytest.mark.parametrize("names", ["training", "ingestion"])
def test_the_probe_sees_torch_where_a_stage_needs_it(names):
    loaded = probe(names)
    assert loaded["torch"] and loaded["stages"] == [names]


def test_the_main_pipeline_is_its_five_stages_in_one():
    loaded = probe("simlabel,ingestion,label_matrix,similarity,training,reporting")
    stages = ("ingestion", "label_matrix", "similarity", "training", "reporting")
    assert loaded["nodes"]["simlabel"] == sum(loaded["nodes"][s] for s in stages)
    assert loaded["stages"] == sorted(["simlabel", *stages])


def test_the_option_names_validation_reads_are_the_architectures_own():
    """``choices.ARCHITECTURE_OPTIONS`` (read without torch) lists every architecture and the
    constructor arguments ``training.architecture_options.<architecture>`` may set."""
    shared = {"self", "in_dim", "n_annotators", "n_classes", "feature_mean", "feature_std", "hidden",
              "head_hidden", "dropout", "n_tokens"}
    assert set(ARCHITECTURE_OPTIONS) == set(ARCHITECTURES)
    for name, cls in ARCHITECTURES.items():
        assert set(ARCHITECTURE_OPTIONS[name]) == set(inspect.signature(cls.__init__).parameters) - shared, name
