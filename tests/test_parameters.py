"""Every stage's parameters are checked before a run starts: unknown keys (with the closest known
one), types, ranges and choices, method blocks through TrainConfig; all problems in one message
naming each dotted key and its file; `kedro run` stops before ingestion."""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simlabel.errors import UserError
from simlabel.methods import load_parameters
from simlabel.parameters import ParameterValidationHooks, validate_parameters
from tests.conftest import TINY_PARAMETERS, copy_project, tool_env

DELETE = object()


@pytest.fixture(scope="module")
def base_params() -> dict:
    return load_parameters()


def changed(params: dict, changes: dict) -> dict:
    """A deep copy of ``params`` with ``{"dotted.key": value}`` set (``DELETE`` removes the key)."""
    params = copy.deepcopy(params)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = params
        for key in parents:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        if value is DELETE:
            del node[leaf]
        else:
            node[leaf] = value
    return params


def problems_of(params: dict) -> str:
    with pytest.raises(UserError) as error:
        validate_parameters(params)
    return str(error.value)


def test_the_projects_parameters_validate(base_params):
    assert {"demo_data", "dataset", "ingestion", "label_matrix", "similarity", "training", "methods",
            "crowd_baselines", "paper_tables", "predict"} <= set(base_params)
    validate_parameters(base_params)


def test_the_tests_tiny_parameters_and_documented_variants_validate(base_params):
    tiny = copy.deepcopy(base_params)
    for overrides in TINY_PARAMETERS.values():
        for stage, values in overrides.items():
            tiny[stage].update(values)
    validate_parameters(tiny)
    for variant in (
        {"training.architectures": "heads qumatl madl padl"},  # README: --params="training.architectures=heads qumatl madl padl"
        {"training.architectures": "heads,madl"},
        {"training.resume": True, "training.learning_rate": 0.0003, "training.state_dir": None},
        {"dataset_dir": "../shared/data/cifar10n", "dataset.labels_without_inputs": "drop", "predict_dir": "x"},
        {"methods.simlabel_labels": {"soft_label_source": "labels"}, "methods.simlabel": None},
        {"methods.madl_only": {"architecture_options": {"madl": {"confusion": "diagonal"}}, "min_overlap": 3}},
        {"paper_tables.ablation": None, "predict.architecture": "madl", "ingestion.device": "cuda:1"},
        {"label_matrix.split_fractions": {"train": 0.8, "val": 0.0, "test": 0.2}},  # no validation: a warning at run time
        {"ingestion.backbone": "torchvision:resnet18", "similarity.estimator": "shrunk_kappa"},
    ):
        validate_parameters(changed(base_params, variant))


def test_a_project_without_stage_parameters_is_not_checked_for_them():
    validate_parameters({})  # a run that needs a missing stage fails on its own, naming it
    validate_parameters({"dataset_dir": "some/folder"})


METHODS_FILE = "conf/base/parameters_methods.yml"
BAD = [  # (changes, dotted key named, file named, words in the message)
    ({"training.learning_rate": -0.1}, "training.learning_rate", "conf/base/parameters_training.yml", "must be > 0, got -0.1"),
    ({"similarity.min_overlap": -1}, "similarity.min_overlap", "conf/base/parameters_similarity.yml", "must be >= 1, got -1"),
    ({"similarity.min_overlapp": 5}, "similarity.min_overlapp", "conf/base/parameters_similarity.yml", "did you mean similarity.min_overlap?"),
    ({"similarity.estimator": "kapa"}, "similarity.estimator", "conf/base/parameters_similarity.yml", "must be one of"),
    ({"ingestion.frame_per_clip": 4}, "ingestion.frame_per_clip", "conf/base/parameters_ingestion.yml", "did you mean ingestion.frames_per_clip?"),
    ({"ingestion.frames_per_clip": 0}, "ingestion.frames_per_clip", "conf/base/parameters_ingestion.yml", "must be >= 1, got 0"),
    ({"ingestion.frames_per_clip": 2.5}, "ingestion.frames_per_clip", "conf/base/parameters_ingestion.yml", "must be an integer"),
    ({"ingestion.on_bad_video": "ignore"}, "ingestion.on_bad_video", "conf/base/parameters_ingestion.yml", "must be one of error | skip"),
    ({"ingestion.device": "gpu"}, "ingestion.device", "conf/base/parameters_ingestion.yml", "must be auto, cpu, cuda"),
    ({"ingestion.backbone": "resnet"}, "ingestion.backbone", "conf/base/parameters_ingestion.yml", "torchvision:<model name>"),
    ({"ingestion.batch_size": DELETE}, "ingestion.batch_size", "conf/base/parameters_ingestion.yml", "is missing"),
    ({"training.lerning_rate": 0.1}, "training.lerning_rate", "conf/base/parameters_training.yml", "did you mean training.learning_rate?"),
    ({"training.dropout": 1.0}, "training.dropout", "conf/base/parameters_training.yml", "dropout must be in [0, 1)"),
    ({"training.batch_size": "32"}, "training.batch_size", "conf/base/parameters_training.yml", "must be an integer"),
    ({"training.cycling": "yes"}, "training.cycling", "conf/base/parameters_training.yml", "must be true/false"),
    ({"training.architectures": ["heads", "qmatl"]}, "training.architectures", "conf/base/parameters_training.yml", "unknown architecture 'qmatl' (did you mean qumatl?)"),
    ({"training.architectures": "heads madll"}, "training.architectures", "conf/base/parameters_training.yml", "unknown architecture 'madll'"),
    ({"training.architecture": "madl"}, "training.architecture", "conf/base/parameters_training.yml", "training.architectures"),
    ({"training.min_overlap": 3}, "training.min_overlap", "conf/base/parameters_training.yml", "similarity.min_overlap"),
    ({"training.architecture_options.madl.confusoin": "full"}, "training.architecture_options.madl.confusoin", "conf/base/parameters_training.yml", "did you mean training.architecture_options.madl.confusion?"),
    ({"training.architecture_options.madl.confusion": "half"}, "training.architecture_options.madl.confusion", "conf/base/parameters_training.yml", "must be one of full | diagonal"),
    ({"training.architecture_options.madll": {}}, "training.architecture_options.madll", "conf/base/parameters_training.yml", "unknown architecture"),
    ({"training.architectures": ["qumatl"], "training.hidden": 30}, "training", "conf/base/parameters_training.yml", "must be divisible by"),
    ({"methods.simlabel_confidence.treshold": 0.6}, "methods.simlabel_confidence.treshold", METHODS_FILE, "did you mean methods.simlabel_confidence.threshold?"),
    ({"methods.simlabel_confidence.threshold": 1.5}, "methods.simlabel_confidence.threshold", METHODS_FILE, "threshold must be in [0, 1], got 1.5"),
    ({"methods.simlabel_confidence.confidence_formula": "mean"}, "methods.simlabel_confidence.confidence_formula", METHODS_FILE, "confidence_formula must be one of"),
    ({"methods.skip.unlabeled_weight": -1.0}, "methods.skip.unlabeled_weight", METHODS_FILE, "unlabeled_weight must be >= 0"),
    ({"methods.skip.architecture": "madl"}, "methods.skip.architecture", METHODS_FILE, "architectures are run-level"),
    ({"methods.skip.architectures": ["madl"]}, "methods.skip.architectures", METHODS_FILE, "run-level"),
    ({"methods.skip.state_path": "x.pt"}, "methods.skip.state_path", METHODS_FILE, "training state is run-level"),
    ({"methods.skip.resume": True}, "methods.skip.resume", METHODS_FILE, "resuming is run-level"),
    ({"methods.bad-name": {}}, "methods.bad-name", METHODS_FILE, "Python identifier"),
    ({"methods.entries": {"soft_entries_per_item": 4}, "training.architectures": ["qumatl"]}, "methods.entries", METHODS_FILE, "soft_entries_per_item must be > 0 and needs one of"),
    ({"methods": {}}, "methods", METHODS_FILE, "non-empty mapping"),
    ({"crowd_baselines.dawid_skene.crowd_baseline": "dawid"}, "crowd_baselines.dawid_skene.crowd_baseline", METHODS_FILE, "crowd_baseline must be one of"),
    ({"label_matrix.split_fractions.val": 0.5}, "label_matrix.split_fractions", "conf/base/parameters_label_matrix.yml", "must sum to 1 (they sum to 1.3)"),
    ({"label_matrix.split_fractions": {"train": 1.2, "val": -0.2, "test": 0.0}}, "label_matrix.split_fractions.val", "conf/base/parameters_label_matrix.yml", "must be >= 0, got -0.2"),
    ({"label_matrix.split_fractions": {"train": 0.0, "val": 0.5, "test": 0.5}}, "label_matrix.split_fractions", "conf/base/parameters_label_matrix.yml", "train must be > 0"),
    ({"label_matrix.split_fractions.tset": 0.2}, "label_matrix.split_fractions.tset", "conf/base/parameters_label_matrix.yml", "did you mean label_matrix.split_fractions.test?"),
    ({"label_matrix.extra_missing": 1.0}, "label_matrix.extra_missing", "conf/base/parameters_label_matrix.yml", "must be in [0, 1), got 1.0"),
    ({"label_matrix.extra_missing": -0.1}, "label_matrix.extra_missing", "conf/base/parameters_label_matrix.yml", "must be in [0, 1)"),
    ({"dataset.labels_without_inputs": "keep"}, "dataset.labels_without_inputs", "conf/base/parameters_dataset.yml", "must be one of error | drop"),
    ({"dataset.input_kind": "video"}, "dataset.input_kind", "conf/base/parameters_dataset.yml", "must be one of auto | features | images | videos"),
    ({"demo_data.height": 16}, "demo_data.height", "conf/base/parameters_demo_data.yml", "must be >= 32"),
    ({"demo_data.labels_per_item_mean": 5.0}, "demo_data.labels_per_item_mean", "conf/base/parameters_demo_data.yml", "must be in [1, 3]"),
    ({"paper_tables.seeds": 0}, "paper_tables.seeds", "conf/base/parameters_paper_tables.yml", "must be >= 1, got 0"),
    ({"paper_tables.architectures": "heads"}, "paper_tables.architectures", "conf/base/parameters_paper_tables.yml", "must be a list"),
    ({"paper_tables.extra_missing": [0.0, 1.2]}, "paper_tables.extra_missing", "conf/base/parameters_paper_tables.yml", "1.2 must be in [0, 1)"),
    ({"paper_tables.training.lr": 0.1}, "paper_tables.training.lr", "conf/base/parameters_paper_tables.yml", "unknown parameter"),
    ({"paper_tables.ablation.method": "simlabel_conf"}, "paper_tables.ablation.method", "conf/base/parameters_paper_tables.yml", "did you mean simlabel_confidence?"),
    ({"paper_tables.ablation.formulas": ["max", "mean"]}, "paper_tables.ablation.formulas", "conf/base/parameters_paper_tables.yml", "'mean' must be one of max | entropy | product"),
    ({"predict.method": "dawid_skene"}, "predict.method", "conf/base/parameters_predict.yml", "is not a method of methods: (conf/base/parameters_methods.yml)"),
    ({"methods.simlabel_blend.blend_of": ["simlabel", "dawid_skeen"]}, "methods.simlabel_blend.blend_of", "conf/base/parameters_methods.yml", "'dawid_skeen' is not a method of methods: or crowd_baselines:"),
    ({"methods.simlabel_blend.seed": 3}, "methods.simlabel_blend.blend_of", "conf/base/parameters_methods.yml", "a blend has no other options"),
    ({"paper_tables.ablation.method": "simlabel_blend"}, "paper_tables.ablation.method", "conf/base/parameters_paper_tables.yml", "is a blend"),
    ({"predict.architecture": "qmatl"}, "predict.architecture", "conf/base/parameters_predict.yml", "must be one of"),
    ({"similarty": {"min_overlap": 2}}, "similarty", "conf/base/parameters_similarity.yml", "unknown parameter group; did you mean similarity?"),
    ({"dataset_dir": ["a", "b"]}, "dataset_dir", "conf/base/globals.yml", "must be a string"),
]


@pytest.mark.parametrize(("changes", "key", "file", "words"), BAD, ids=[case[1] + ":" + case[3][:24] for case in BAD])
def test_a_bad_parameter_is_named_with_its_file(base_params, changes, key, file, words):
    message = problems_of(changed(base_params, changes))
    assert message.startswith(f"invalid parameter {key} ({file}): "), message
    assert words in message, message
    assert "\n" not in message and "Nothing was run" in message, message


def test_every_problem_is_listed_at_once_one_per_line(base_params):
    keys = ["training.learning_rate", "similarity.min_overlapp", "ingestion.frame_per_clip", "paper_tables.seeds",
            "methods.simlabel_confidence.treshold", "predict.architecture", "label_matrix.extra_missing"]
    cases = [next(case for case in BAD if case[1] == key) for key in keys]
    params = base_params
    for changes, *_ in cases:
        params = changed(params, changes)
    lines = problems_of(params).splitlines()
    assert lines[0].startswith(f"{len(cases)} invalid parameters (nothing was run"), lines
    assert len(lines) == len(cases) + 1
    for _, key, file, words in cases:
        assert any(line.startswith(f"  - {key} ({file}): ") and words in line for line in lines), (key, lines)


def test_a_training_problem_is_reported_once_not_per_method(base_params):
    message = problems_of(changed(base_params, {"training.architectures": ["qumatl"], "training.hidden": 30}))
    assert message.count("must be divisible by") == 1, message


class FakeCatalog:
    def __init__(self, params: dict):
        self.params = params

    def load(self, name: str) -> dict:
        assert name == "parameters"
        return self.params


@pytest.mark.parametrize("validation_first", [True, False])
def test_the_hook_runs_before_the_run_lock_whatever_the_registration_order(tmp_path, base_params, validation_first):
    from kedro.framework.hooks.manager import _create_hook_manager

    from simlabel.runlock import RunLockHooks

    manager = _create_hook_manager()
    hooks = [ParameterValidationHooks(), RunLockHooks()]
    for hook in hooks if validation_first else hooks[::-1]:
        manager.register(hook)
    bad = changed(base_params, {"similarity.min_overlapp": 5})
    with pytest.raises(UserError, match=r"similarity\.min_overlapp"):
        manager.hook.before_pipeline_run(run_params={"project_path": str(tmp_path)}, pipeline=None, catalog=FakeCatalog(bad))
    assert not (tmp_path / "data").exists()  # the lock was never taken
    manager.hook.before_pipeline_run(run_params={"project_path": str(tmp_path)}, pipeline=None, catalog=FakeCatalog(base_params))
    manager.hook.after_pipeline_run(run_params={}, run_result={}, pipeline=None, catalog=None)


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


def test_kedro_run_with_a_typo_stops_in_seconds_with_one_line_and_writes_nothing(tmp_path):
    project = copy_project(tmp_path / "project")
    settings = project / "src" / "simlabel" / "settings.py"
    if "ParameterValidationHooks" not in settings.read_text():  # until the project's settings register it
        settings.write_text(settings.read_text() + "\nfrom simlabel.parameters import ParameterValidationHooks\n"
                            "HOOKS = (*HOOKS, ParameterValidationHooks())\n")
    before = files_under(project / "data")
    env = {**tool_env(), "PYTHONPATH": str(project / "src"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "kedro", "run", "--pipelines=simlabel", "--params=similarity.min_overlapp=5"]
    started = time.monotonic()
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert errors == [
        "Error: invalid parameter similarity.min_overlapp (conf/base/parameters_similarity.yml): unknown parameter; "
        "did you mean similarity.min_overlap? Nothing was run; fix it in that file, in conf/local or in --params."
    ], output
    assert "Traceback" not in output
    assert "Running node" not in output and "Loading data from crowd_folder" not in output, output
    assert files_under(project / "data") == before  # no lock, no frames: it failed before ingestion
    assert elapsed < 60, f"took {elapsed:.0f}s: the check must come before any work"
