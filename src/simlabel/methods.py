"""The method list, read from the project's configuration when the pipelines are built.

Kedro builds the pipeline graph before it reads parameters, so the per-method namespaces are
generated from the ``methods:`` block of the configuration files (``conf/base`` and the run
environment, ``conf/local`` by default or ``KEDRO_ENV``). Everything else about a method (its
overrides) is read at run time through ``params:methods.<name>``.

Also what a method becomes (``method_configs``: one ``TrainConfig`` per architecture) and the
runs of an experiment (``plan_runs``): plain configuration, without torch, so parameter
validation (every ``kedro run``) checks them without loading the training code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from simlabel.errors import UserError
from simlabel.training.config import TrainConfig, architecture_list

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PARAMETERS_FILE = "conf/base/parameters_methods.yml"


def _conf_source() -> Path:
    for root in (Path.cwd(), PROJECT_ROOT):
        if (root / "conf" / "base").is_dir():
            return root / "conf"
    raise FileNotFoundError("no conf/base folder in the working directory or the project root")


def load_parameters() -> dict:
    """The project's parameters (base + run environment), as Kedro merges them."""
    from kedro.config import OmegaConfigLoader

    from simlabel.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(conf_source=str(_conf_source()), env=os.environ.get("KEDRO_ENV"), **CONFIG_LOADER_ARGS)
    return loader["parameters"]


def method_names(params: dict | None = None) -> list[str]:
    """Names of ``methods:`` in configuration order (of ``params``, default: the project's)."""
    methods = (load_parameters() if params is None else params).get("methods") or {}
    if not methods:
        raise UserError(f"no methods configured: add a `methods:` block to {PARAMETERS_FILE}")
    for name in methods:
        if not str(name).isidentifier():
            raise UserError(f"method name {name!r} in `methods:` (parameters_methods.yml) must be a Python "
                            "identifier (letters, digits, _)")
    return list(methods)


BLEND_KEY = "blend_of"


def blend_problems(methods: dict, crowd_baselines: dict | None = None) -> list[tuple[str, str]]:
    """``(key, problem)`` of every malformed blend block (``{blend_of: [names]}``): members must
    name two or more different methods of ``methods`` or ``crowd_baselines`` that are not blends
    themselves, and a blend has no other options."""
    named = {**(crowd_baselines or {}), **methods}
    problems = []
    for name, block in methods.items():
        if not isinstance(block, dict) or BLEND_KEY not in block:
            continue
        members, key = block[BLEND_KEY], f"methods.{name}.{BLEND_KEY}"
        if set(block) != {BLEND_KEY}:
            problems.append((key, f"a blend has no other options (its members carry them); "
                                  f"remove {sorted(set(block) - {BLEND_KEY})}"))
        if not isinstance(members, list) or len(members) < 2 or len(set(map(str, members))) < len(members):
            problems.append((key, f"must list at least two different method names, got {members!r}"))
            continue
        for member in members:
            if member not in named:
                problems.append((key, f"{member!r} is not a method of methods: or crowd_baselines:; "
                                      f"choose from {' | '.join(map(str, named))}"))
            elif isinstance(named[member], dict) and BLEND_KEY in named[member]:
                problems.append((key, f"{member!r} is itself a blend; list its members instead"))
    return problems


def blend_members(methods: dict, crowd_baselines: dict | None = None) -> dict[str, list[str]]:
    """``{blend: [member, ...]}`` for every method block that is ``{blend_of: [names]}``: a
    method whose predictions are the mean of other methods' (``experiment.blend``).

    Raises ``UserError`` naming the block when a blend is malformed (``blend_problems``)."""
    for key, problem in blend_problems(methods, crowd_baselines)[:1]:
        raise UserError(f"{key} ({PARAMETERS_FILE}): {problem}")
    return {name: list(block[BLEND_KEY]) for name, block in methods.items()
            if isinstance(block, dict) and BLEND_KEY in block}


def methods_to_train(methods: dict, crowd_baselines: dict | None = None) -> list[tuple[str, str]]:
    """``(name, group)`` of every method the training pipeline runs, in configuration order:
    each method of ``methods`` (group ``methods``), then blend members that are not listed
    there (crowd baselines: group ``crowd_baselines``), each once."""
    blends = blend_members(methods, crowd_baselines)
    order = [(name, "methods") for name in methods]
    extra = [m for members in blends.values() for m in members if m not in methods]
    return order + [(name, "crowd_baselines") for name in dict.fromkeys(extra)]


def training_plan() -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
    """What the training pipeline builds from the configuration: ``methods_to_train`` and
    ``blend_members`` (``method_names`` checks the names first)."""
    params = load_parameters()
    method_names(params)
    methods, baselines = params["methods"], params.get("crowd_baselines") or {}
    return methods_to_train(methods, baselines), blend_members(methods, baselines)


def method_configs(training: dict, similarity: dict, method: dict, method_name: str) -> dict[str, TrainConfig]:
    """``{architecture: TrainConfig}``: ``training`` updated by the method's overrides."""
    params = dict(training)
    state_dir = params.pop("state_dir", None)
    architectures = architecture_list(params.pop("architectures", None)) or ["heads"]
    return {
        architecture: TrainConfig.from_params(
            params, {"min_overlap": similarity["min_overlap"]}, method, {"architecture": architecture},
            {"state_path": f"{state_dir}/{method_name}/{architecture}.pt"} if state_dir else {},
            {"run_name": method_name if len(architectures) == 1 else f"{method_name}/{architecture}"},
        )
        for architecture in architectures
    }


@dataclass
class Run:
    """One training run of an experiment: a method (its ``training`` overrides) under one
    architecture, removal rate ``r`` and split seed."""

    architecture: str
    r: float
    seed: int
    method: str
    overrides: dict


def plan_runs(architectures, rates, seeds, methods: dict, baselines: dict, ablation: dict | None) -> list[Run]:
    """Every run of an experiment; crowd baselines once per (r, seed), under the first architecture.

    ``methods`` / ``baselines``: name -> overrides of ``training``. ``ablation``: the paper's
    Table 5, one factor at a time around ``default_threshold`` / ``default_formula`` of the method
    ``ablation["method"]``."""
    runs = []
    for seed in seeds:
        for r in rates:
            runs += [Run(architectures[0], r, seed, name, overrides) for name, overrides in baselines.items()]
            for architecture in architectures:
                runs += [Run(architecture, r, seed, name, overrides) for name, overrides in methods.items()]
    if ablation:
        if ablation.get("method") not in methods:
            raise ValueError(f"paper_tables.ablation.method must name one of the methods {sorted(methods)}, "
                             f"got {ablation.get('method')!r} (or set paper_tables.ablation: null)")
        base = methods[ablation["method"]]
        for seed in seeds[: ablation["seeds"]]:
            for threshold in ablation["thresholds"]:
                for formula in ablation["formulas"]:
                    if threshold != ablation["default_threshold"] and formula != ablation["default_formula"]:
                        continue  # one factor at a time, as the paper's Table 5
                    overrides = {**base, "cycling": True, "threshold": threshold, "confidence_formula": formula}
                    runs.append(Run(architectures[0], 0.0, seed, f"ablation:T={threshold}:{formula}", overrides))
    return runs
