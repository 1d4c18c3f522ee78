"""Every stage's parameters, checked before a run starts: a typo costs a second, not an ingestion.

``validate_parameters(params)`` checks the merged parameters (``conf/base`` + the run environment +
``--params``, what Kedro's ``context.params`` holds) against a declarative schema: for each stage
(``SCHEMA``) the keys it may have, their types and ranges or choices. ``training``, every block of
``methods:`` / ``crowd_baselines:`` and ``paper_tables.training`` are overrides of ``TrainConfig``
and are checked by ``TrainConfig`` itself, key by key and then merged the way the training node
and ``paper_tables`` merge them. Every problem is collected; one ``UserError`` lists them all, each
with its dotted key, the file it belongs in and, for an unknown key, the closest known one.

``ParameterValidationHooks`` runs the check in ``before_pipeline_run``: it fires for ``kedro run``
only (not for ``kedro viz`` or a notebook's ``%load_ext kedro.ipython``), before the first node,
and ``tryfirst`` puts it before the run lock is taken, so a bad parameter writes nothing.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable
from typing import Any, NamedTuple

from kedro.framework.hooks import hook_impl

from simlabel.choices import ARCHITECTURE_OPTIONS, CONFIDENCE_FORMULAS
from simlabel.core.similarity import SIMILARITY_ESTIMATORS
from simlabel.errors import UserError
from simlabel.folder import INPUT_KINDS
from simlabel.methods import BLEND_KEY, blend_problems, method_configs, plan_runs
from simlabel.training.config import TrainConfig, architecture_list

Check = Callable[[Any], str | None]  # a value -> what is wrong with it, or None


class Rule(NamedTuple):
    """One parameter: accepted types, a check of the value, what it is, and whether it must be set.
    ``schema``: the keys of a nested mapping (checked the same way)."""

    types: tuple
    check: Check | None = None
    help: str = ""
    required: bool = True
    schema: dict | None = None


# ---- checks ---------------------------------------------------------------------------------
def at_least(low: float) -> Check:
    return lambda v: None if v >= low else f"must be >= {low}"


def in_range(low: float, high: float, high_open: bool = False) -> Check:
    def check(value):
        ok = low <= value < high if high_open else low <= value <= high
        return None if ok else f"must be in [{low}, {high}{')' if high_open else ']'}"
    return check


def one_of(choices) -> Check:
    choices = tuple(choices)
    return lambda v: None if v in choices else f"must be one of {' | '.join(map(str, choices))}"


def each(check: Check, types_: tuple = (int, float), non_empty: bool = True) -> Check:
    """A list whose every element has one of ``types_`` and passes ``check``."""
    def check_list(values):
        if non_empty and not values:
            return "must list at least one value"
        for value in values:
            problem = type_problem(value, types_) or check(value)
            if problem:
                return f"{value!r} {problem}"
        return None
    return check_list


def device_check(value: str) -> str | None:
    if value in ("auto", "cpu", "cuda"):  # torch parses the rest: loaded only then
        return None
    import torch

    try:
        torch.device(value)
    except (RuntimeError, ValueError):
        return "must be auto, cpu, cuda or cuda:<index>"
    return None


def backbone_check(value: str) -> str | None:
    ok = value == "efficientnet_lite0" or (value.startswith("torchvision:") and len(value) > len("torchvision:"))
    return None if ok else "must be efficientnet_lite0 or torchvision:<model name>"


def architectures_check(value) -> str | None:
    names = architecture_list(value)
    if not names or names == [""]:
        return "must name at least one architecture"
    unknown = [n for n in names if n not in ARCHITECTURE_OPTIONS]
    if unknown:
        hints = [f"{n!r}" + _did_you_mean(str(n), ARCHITECTURE_OPTIONS).replace("; ", " (").replace("?", "?)") for n in unknown]
        return f"unknown architecture {', '.join(hints)}; choose from {' | '.join(ARCHITECTURE_OPTIONS)}"
    return None


def fractions_check(value: dict) -> str | None:
    total = sum(v for v in value.values() if isinstance(v, int | float))
    if abs(total - 1.0) > 1e-6:
        return f"train + val + test must sum to 1 (they sum to {total:g})"
    return None if value.get("train", 1) > 0 else "train must be > 0 (nothing to train on)"


def type_problem(value: Any, types_: tuple) -> str | None:
    """None if ``value`` has one of ``types_`` (int counts as float; a bool is not a number)."""
    if value is None and type(None) in types_:
        return None
    if isinstance(value, bool):
        ok = bool in types_
    elif isinstance(value, int):
        ok = int in types_ or float in types_
    else:
        ok = isinstance(value, tuple(t for t in types_ if t is not type(None)))
    return None if ok else f"must be {' or '.join(_type_name(t) for t in types_)}, got {value!r}"


def _type_name(kind: type) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "a mapping", type(None): "null"}
    return names.get(kind, kind.__name__)


# ---- the schema -----------------------------------------------------------------------------
NUMBER, INT, STR = (int, float), (int,), (str,)
FRACTIONS = {name: Rule(NUMBER, at_least(0), f"share of the items in {name}") for name in ("train", "val", "test")}
SCHEMA: dict[str, dict[str, Rule]] = {
    "demo_data": {
        "n_items": Rule(INT, at_least(1), "clips"), "n_frames": Rule(INT, at_least(1), "frames per clip"),
        "height": Rule(INT, at_least(32), "pixels"), "width": Rule(INT, at_least(32), "pixels"),
        "labels_per_item_mean": Rule(NUMBER, in_range(1, 3), "labels per clip on average"),
        "test_panel": Rule(INT, at_least(1), "clips every annotator labels, always test items", required=False),
        "group_sizes": Rule((list,), each(at_least(1), INT), "annotators per group", required=False),
        "seed": Rule(INT, at_least(0)),
    },
    "dataset": {
        "input_kind": Rule(STR, one_of(("auto", *INPUT_KINDS)), "the input kind to read"),
        "labels_without_inputs": Rule(STR, one_of(("error", "drop")), "labels of items that have no input"),
    },
    "ingestion": {
        "frames_per_clip": Rule(INT, at_least(1), "K frames sampled per clip"),
        "frame_size": Rule(INT, at_least(1), "frames resized to frame_size x frame_size"),
        "on_bad_video": Rule(STR, one_of(("error", "skip")), "unreadable clips"),
        "workers": Rule(INT, at_least(1), "clips decoded in parallel", required=False),
        "backbone": Rule(STR, backbone_check, "frame encoder"),
        "batch_size": Rule(INT, at_least(1), "frames per forward pass"),
        "image_size": Rule((int, type(None)), at_least(16), "size images are embedded at (null: their own)", required=False),
        "device": Rule(STR, device_check, "auto | cpu | cuda | cuda:<index>"),
        "threads": Rule((int, type(None)), at_least(0), "ONNX Runtime threads (0: every core; null: runtime.threads)",
                        required=False),
    },
    "label_matrix": {
        "split_fractions": Rule((dict,), fractions_check, "train / val / test shares", schema=FRACTIONS),
        "seed": Rule(INT, at_least(0)),
        "extra_missing": Rule(NUMBER, in_range(0, 1, high_open=True), "share of training labels removed"),
    },
    "similarity": {
        "estimator": Rule(STR, one_of(SIMILARITY_ESTIMATORS), "similarity estimator", required=False),
        "min_overlap": Rule(INT, at_least(1), "co-labelled training items a pair needs for its own kappa"),
    },
    "paper_tables": {
        "architectures": Rule((list,), architectures_check, "a list, e.g. [heads, madl]"),
        "extra_missing": Rule((list,), each(in_range(0, 1, high_open=True)), "a list of r in [0, 1)"),
        "seeds": Rule(INT, at_least(1), "number of seeds, one item split each"),
        "split_fractions": Rule((dict,), fractions_check, "train / val / test shares", schema=FRACTIONS),
        "training": Rule((dict, type(None)), None, "overrides of training", required=False),  # _train_block
        "ablation": Rule((dict, type(None)), None, "Table 5, or null", required=False, schema={
            "method": Rule(STR, None, "a method of methods:"),
            "seeds": Rule(INT, at_least(1)),
            "thresholds": Rule((list,), each(in_range(0, 1))),
            "formulas": Rule((list,), each(one_of(CONFIDENCE_FORMULAS), STR)),
            "default_threshold": Rule(NUMBER, in_range(0, 1)),
            "default_formula": Rule(STR, one_of(CONFIDENCE_FORMULAS)),
        }),
    },
    "runtime": {
        "threads": Rule(INT, at_least(1), "torch / OpenMP threads per process"),
    },
    "predict": {
        "method": Rule(STR, None, "a method of methods:"),
        "architecture": Rule((str, type(None)), one_of((None, *ARCHITECTURE_OPTIONS)), "null = the first trained", required=False),
    },
}
# --params="dataset_dir=2024" arrives as an integer: a folder name all the same.
RUNTIME = {"dataset_dir": Rule((str, int), None, "input folder"), "predict_dir": Rule((str, int), None, "folder of new items"),
           "paper_tables_dir": Rule((str,), None, "where paper_tables writes (default: the run's outputs)")}
TRAIN_BLOCKS = ("training", "methods", "crowd_baselines")
FILES = {**{stage: f"conf/base/parameters_{stage}.yml" for stage in (*SCHEMA, "training")},
         "methods": "conf/base/parameters_methods.yml", "crowd_baselines": "conf/base/parameters_methods.yml",
         **dict.fromkeys(RUNTIME, "conf/base/globals.yml")}

TRAINING_EXTRAS = {
    "architectures": Rule((list, str), architectures_check, "architectures every method trains", required=False),
    "state_dir": Rule((str, type(None)), None, "training state folder", required=False),
}
# Keys that are valid TrainConfig fields but would be silently overridden where they are written.
TRAINING_OVERRIDDEN = {
    "architecture": "set by the run: list the architectures in training.architectures",
    "state_path": "set by the run (one file per method and architecture under training.state_dir)",
    "min_overlap": "comes from similarity.min_overlap (conf/base/parameters_similarity.yml)",
}
RUN_LEVEL = {  # not allowed in a method block: they belong to the run, not to one method
    "architecture": "architectures are run-level: every method trains each of training.architectures",
    "architectures": "architectures are run-level: every method trains each of training.architectures",
    "state_path": "the training state is run-level: set training.state_dir",
    "resume": "resuming is run-level: set training.resume",
}
OPTION_RULES = {  # values of training.architecture_options.<architecture>.<option>
    ("qumatl", "n_heads"): Rule(INT, at_least(1)),
    ("qumatl", "query_self_attention"): Rule((bool,), lambda v: None),
    ("madl", "confusion"): Rule(STR, one_of(("full", "diagonal"))),
    ("madl", "embedding_dim"): Rule(INT, at_least(1)),
    ("madl", "diagonal_prior"): Rule(NUMBER, lambda v: None),
    ("padl", "n_samples"): Rule(INT, at_least(1)),
    ("padl", "sigma_scale"): Rule(NUMBER, lambda v: None if v > 0 else "must be > 0"),
}


# ---- the checks -----------------------------------------------------------------------------
class Problem(NamedTuple):
    key: str
    file: str
    text: str

    def __str__(self) -> str:
        return f"{self.key} ({self.file}): {self.text}"


def validate_parameters(params: dict) -> None:
    """Check every stage's parameters; raise one ``UserError`` listing every problem found.

    Stages missing altogether are not checked (a run that needs one fails on its own); within a
    stage, unknown keys, missing required keys, wrong types and out-of-range values are problems.
    """
    problems: list[Problem] = []
    known = [*SCHEMA, *TRAIN_BLOCKS, *RUNTIME]
    for key in params:
        if key not in known:
            match = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            text = f"did you mean {match[0]}?" if match else f"known: {sorted(known)}"
            file = FILES[match[0]] if match else "conf/base/parameters_<stage>.yml"
            problems.append(Problem(str(key), file, f"unknown parameter group; {text}"))
    problems += _check_mapping("", {k: v for k, v in params.items() if k in RUNTIME}, RUNTIME, None, partial=True)
    for stage, schema in SCHEMA.items():
        if stage in params:
            problems += _check_mapping(stage, params[stage], schema, FILES[stage])
    problems += _train_blocks(params)
    problems += _cross_stage(params)
    if not problems:
        problems += _merged_configs(params)
    if problems:
        raise UserError(_message(problems))


def _check_mapping(prefix: str, values: Any, schema: dict[str, Rule], file: str | None, partial: bool = False) -> list[Problem]:
    """Unknown keys, missing keys, types and checks of one mapping (recursively). ``file``: where
    the mapping lives (None: each key's own, ``FILES``); ``partial``: missing keys are fine."""
    if not isinstance(values, dict):
        return [Problem(prefix, file or "", f"must be a mapping of {sorted(schema)}, got {values!r}")]
    problems = []
    for key in [*values, *(k for k, rule in schema.items() if rule.required and not partial and k not in values)]:
        where, where_file = f"{prefix}.{key}" if prefix else str(key), file or FILES[key]
        rule = schema.get(key)
        if rule is None:
            hint = _did_you_mean(str(key), schema, prefix) or f"; known: {sorted(schema)}"
            problems.append(Problem(where, where_file, f"unknown parameter{hint}"))
            continue
        if key not in values:
            problem = "is missing"
        elif (problem := type_problem(values[key], rule.types)) is None and values[key] is not None:
            if rule.schema is not None and (nested := _check_mapping(where, values[key], rule.schema, where_file)):
                problems += nested
                continue
            problem = rule.check and rule.check(values[key])
            problem = problem and f"{problem}, got {values[key]!r}"
        if problem:
            problems.append(Problem(where, where_file, problem + (f" ({rule.help})" if rule.help else "")))
    return problems


def _did_you_mean(name: str, known, prefix: str = "") -> str:
    match = difflib.get_close_matches(name, [str(k) for k in known], n=1, cutoff=0.6)
    return f"; did you mean {prefix + '.' if prefix else ''}{match[0]}?" if match else ""


def _train_blocks(params: dict) -> list[Problem]:
    """``training``, every block of ``methods`` / ``crowd_baselines`` and ``paper_tables.training``."""
    problems = []
    training = params.get("training")
    if "training" in params:
        problems += _train_block("training", training, FILES["training"], TRAINING_OVERRIDDEN, TRAINING_EXTRAS)
    if isinstance(training, dict):
        extras = {k: v for k, v in training.items() if k in TRAINING_EXTRAS}
        problems += _check_mapping("training", extras, TRAINING_EXTRAS, FILES["training"], partial=True)
    for group in ("methods", "crowd_baselines"):
        if group not in params:
            continue
        blocks = params[group]
        if not isinstance(blocks, dict) or (group == "methods" and not blocks):
            problems.append(Problem(group, FILES[group], f"must be a non-empty mapping of name -> overrides of training, got {blocks!r}"))
            continue
        for name, block in blocks.items():
            if group == "methods" and not str(name).isidentifier():
                problems.append(Problem(f"{group}.{name}", FILES[group], "a method name must be a Python identifier (letters, digits, _)"))
            if not _is_blend(block):  # a blend's members are checked as methods (``_cross_stage``)
                problems += _train_block(f"{group}.{name}", block, FILES[group], RUN_LEVEL, {})
    paper = params.get("paper_tables")
    if isinstance(paper, dict) and paper.get("training") is not None:
        problems += _train_block("paper_tables.training", paper["training"], FILES["paper_tables"], RUN_LEVEL, {})
    return problems


def _train_block(prefix: str, block: Any, file: str, forbidden: dict[str, str], extras: dict[str, Rule]) -> list[Problem]:
    """One block of ``TrainConfig`` overrides, key by key: each key is checked by ``TrainConfig``
    with only that key changed, so the problem names it (interactions: ``_merged_configs``)."""
    if block is None:
        return []
    if not isinstance(block, dict):
        return [Problem(prefix, file, f"must be a mapping of overrides of training, got {block!r}")]
    fields = _train_fields()
    problems = []
    for key, value in block.items():
        where = f"{prefix}.{key}"
        if key in forbidden:
            problems.append(Problem(where, file, f"not allowed here: {forbidden[key]}"))
        elif key in extras:
            continue  # checked against the extras' own rules
        elif key == "architecture_options" and isinstance(value, dict):
            problems += _architecture_options(where, value, file)
        elif key not in fields:
            known = sorted(set(fields) - set(forbidden) | set(extras))
            problems.append(Problem(where, file, f"unknown parameter{_did_you_mean(str(key), known, prefix) or f'; known: {known}'}"))
        else:
            problem = type_problem(value, fields[key]) or _field_problem(key, value)
            if problem:
                problems.append(Problem(where, file, problem))
    return problems


def _train_fields() -> dict[str, tuple]:
    """``{field: accepted types}`` of ``TrainConfig``."""
    hints = typing.get_type_hints(TrainConfig)
    return {
        f.name: typing.get_args(hints[f.name]) if isinstance(hints[f.name], types.UnionType) else (hints[f.name],)
        for f in dataclasses.fields(TrainConfig)
    }


def _field_problem(key: str, value: Any) -> str | None:
    """What ``TrainConfig`` (or the device / backbone rule) says of ``key: value`` alone."""
    if key in ("device", "backbone"):
        problem = (device_check if key == "device" else backbone_check)(value)
    else:
        try:
            TrainConfig(**{key: value}).validate()
            problem = None
        except ValueError as error:
            problem = _short(error)
    return problem and f"{problem}, got {value!r}"


def _architecture_options(prefix: str, options: dict, file: str) -> list[Problem]:
    """``{architecture: {option: value}}``: known architectures, options of their constructors."""
    problems = []
    for architecture, values in options.items():
        where = f"{prefix}.{architecture}"
        if architecture not in ARCHITECTURE_OPTIONS:
            hint = _did_you_mean(str(architecture), ARCHITECTURE_OPTIONS, prefix) or f"; choose from {' | '.join(ARCHITECTURE_OPTIONS)}"
            problems.append(Problem(where, file, f"unknown architecture{hint}"))
            continue
        if not isinstance(values, dict | type(None)):
            problems.append(Problem(where, file, f"must be a mapping of options, got {values!r}"))
            continue
        allowed = sorted(ARCHITECTURE_OPTIONS[architecture])
        for option, value in (values or {}).items():
            if option not in allowed:
                hint = _did_you_mean(str(option), allowed, where)
                problems.append(Problem(f"{where}.{option}", file, f"unknown option{hint} (options of {architecture}: {allowed or 'none'})"))
            elif (architecture, option) in OPTION_RULES:
                rule = OPTION_RULES[architecture, option]
                problem = type_problem(value, rule.types) or rule.check(value)
                if problem:
                    problems.append(Problem(f"{where}.{option}", file, f"{problem}, got {value!r}"))
    return problems


def _is_blend(block: Any) -> bool:
    return isinstance(block, dict) and BLEND_KEY in block


def _cross_stage(params: dict) -> list[Problem]:
    """Names that must refer to a method of ``methods:`` (blend members: or ``crowd_baselines:``)."""
    methods = params.get("methods")
    if not isinstance(methods, dict) or not methods:
        return []
    problems = []
    baselines = params.get("crowd_baselines")
    for key, problem in blend_problems(methods, baselines if isinstance(baselines, dict) else {}):
        problems.append(Problem(key, FILES["methods"], problem))
    predict = params.get("predict")
    if isinstance(predict, dict) and isinstance(predict.get("method"), str) and predict["method"] not in methods:
        problems.append(Problem("predict.method", FILES["predict"], _not_a_method(predict["method"], methods)))
    paper = params.get("paper_tables")
    ablation = paper.get("ablation") if isinstance(paper, dict) else None
    if isinstance(ablation, dict) and isinstance(ablation.get("method"), str) and ablation["method"] not in methods:
        problems.append(Problem("paper_tables.ablation.method", FILES["paper_tables"],
                                _not_a_method(ablation["method"], methods) + " (or set paper_tables.ablation: null)"))
    elif isinstance(ablation, dict) and _is_blend(methods.get(ablation.get("method"))):
        problems.append(Problem("paper_tables.ablation.method", FILES["paper_tables"],
                                f"{ablation['method']!r} is a blend; the ablation varies the cycling of a trained method"))
    return problems


def _not_a_method(name: str, methods: dict) -> str:
    return (f"{name!r} is not a method of methods: ({FILES['methods']}); "
            f"choose from {' | '.join(map(str, methods))}{_did_you_mean(name, methods)}")


def _merged_configs(params: dict) -> list[Problem]:
    """Every config the runs will build, merged as the training node and paper_tables merge them
    (catches what only a combination rejects, e.g. soft_entries_per_item with qumatl). A problem
    of ``training`` itself is reported once, not once per method."""
    training, similarity = params.get("training"), params.get("similarity") or {}
    if not isinstance(training, dict):
        return []
    overlap = {"min_overlap": similarity.get("min_overlap", 2)}
    archs = " ".join(architecture_list(training.get("architectures")) or ["heads"])

    def problem_of(build: Callable[[], Any]) -> str | None:
        try:
            configs = build()
        except ValueError as error:
            return _short(error)
        return next(filter(None, map(_config_problem, configs if isinstance(configs, list) else configs.values())), None)

    base = problem_of(lambda: method_configs(training, {**similarity, **overlap}, {}, "training"))
    problems = [Problem("training", FILES["training"], f"with architectures {archs}: {base}")] if base else []
    for group in ("methods", "crowd_baselines"):
        for name, block in (params.get(group) or {}).items():
            if _is_blend(block):
                continue
            problem = problem_of(lambda b=block, n=name: method_configs(training, {**similarity, **overlap}, b or {}, str(n)))
            if problem and problem != base:
                problems.append(Problem(f"{group}.{name}", FILES[group], f"with training and architectures {archs}: {problem}"))
    paper = params.get("paper_tables")
    if isinstance(paper, dict) and {"architectures", "extra_missing"} <= set(paper):
        shared = {k: v for k, v in training.items() if k not in ("architectures", "state_dir")} | (paper.get("training") or {})
        runs = plan_runs(paper["architectures"], paper["extra_missing"][:1], [0], params.get("methods") or {},
                         params.get("crowd_baselines") or {}, paper.get("ablation") or None)
        seen = {None, base}
        for run in (r for r in runs if not _is_blend(r.overrides)):
            extra = {"seed": 0, "architecture": run.architecture}
            problem = problem_of(lambda r=run, e=extra: [TrainConfig.from_params(shared, overlap, r.overrides, e)])
            if problem not in seen:
                seen.add(problem)
                problems.append(Problem("paper_tables", FILES["paper_tables"], f"run {run.method} ({run.architecture}): {problem}"))
    return problems


def _config_problem(config: TrainConfig) -> str | None:
    """What only the model built from a merged config would reject."""
    n_heads = (config.architecture_options.get("qumatl") or {}).get("n_heads", 4)
    if config.architecture == "qumatl" and config.hidden % n_heads:
        return f"qumatl: hidden ({config.hidden}) must be divisible by architecture_options.qumatl.n_heads ({n_heads})"
    return None


def _short(error: Exception) -> str:
    """A ``TrainConfig`` error without the config dump it ends with."""
    return str(error).split(" (config: ")[0]


def _message(problems: list[Problem]) -> str:
    unique = list(dict.fromkeys(str(p) for p in problems))
    fix = "Nothing was run; fix it in that file, in conf/local or in --params."
    if len(unique) == 1:
        return f"invalid parameter {unique[0]}{'' if unique[0].endswith(('.', '?', ')')) else '.'} {fix}"
    lines = "\n".join(f"  - {p}" for p in unique)
    return f"{len(unique)} invalid parameters (nothing was run; fix them in the files named, in conf/local or in --params):\n{lines}"


class ParameterValidationHooks:
    """Kedro hooks: check every stage's parameters before a pipeline runs.

    Register in ``settings.py``: ``HOOKS = (..., ParameterValidationHooks())``. ``before_pipeline_run``
    fires only for ``kedro run`` (``kedro viz`` and notebooks never run a pipeline), after the
    context and catalog exist and before any node; ``tryfirst`` runs it before the other hooks
    (the run lock), so a bad parameter stops the run with nothing written under ``data/``.
    """

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, catalog) -> None:
        validate_parameters(catalog.load("parameters"))
