"""The training recipe and the method's knobs as one validated dataclass.

A *method* (Skip, SimLabel, SimLabel + confidence, a crowd baseline, ...) is nothing but a block
of overrides of these fields (``methods:`` in ``conf/base/parameters_methods.yml``).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from simlabel.choices import (
    ARCHITECTURE_OPTIONS,
    CONFIDENCE_FORMULAS,
    ENTRY_ARCHITECTURES,
    HEAD_UPDATES,
    SOFT_LABEL_SOURCES,
)

CROWD_BASELINES = ("none", "consensus", "dawid_skene")


def architecture_list(value) -> list[str]:
    """``training.architectures`` as a list: a list, or a string of names (from the command line:
    ``--params="training.architectures=heads madl"``)."""
    return re.split(r"[\s,;]+", value.strip()) if isinstance(value, str) else list(value or [])


SOFT_TARGETS = ("similarity", "dawid_skene")
SIMILARITY_ESTIMATORS = ("stage", "kappa", "shrunk_kappa", "ds_implied", "shrunk_ds_kappa")
REFRESH_RULES = ("paper", "anchored", "models")
IMPUTE_FROM = ("soft_label", "own_prediction")


@dataclass
class TrainConfig:
    """Every knob of the recipe (SPEC section 6) and of the method (sections 2-4)."""

    architecture: str = "heads"
    hidden: int = 128
    head_hidden: int = 0
    dropout: float = 0.2
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 32
    max_epochs: int = 200
    patience: int = 25
    warmup_fraction: float = 0.2
    grad_clip: float = 1.0
    unlabeled_weight: float = 1.0
    soft_label_source: str = "predictions"
    soft_label_transport: bool = False  # carry labellers' predictions through pairwise confusions
    transport_prior: float = 1.0
    # Many annotators: per step, each item's KL term uses this many of its soft-labelled missing
    # entries, drawn at random (an unbiased estimate of the mean); only those entries and the
    # observed ones are evaluated. None = every entry (the paper). heads / madl / padl only.
    soft_entries_per_item: int | None = None
    # With soft_entries_per_item: ``rows`` updates only the annotators each step evaluates (AdamW on
    # their rows, the steps a row sat out caught up in closed form: a step costs what its entries
    # cost, whatever A; optim.AnnotatorRowsAdamW), ``dense`` every annotator's
    # parameters every step, ``auto`` rows where A >= choices.ROW_UPDATES_PER_ENTRY x the entries
    # of a step (batch_size x (labels per item + soft_entries_per_item)).
    head_updates: str = "auto"
    seed: int = 0
    device: str = "auto"
    # Confidence cycling (SPEC section 4).
    cycling: bool = False
    threshold: float = 0.6
    confidence_formula: str = "product"
    cycle_every: int = 1
    imputed_as_targets: bool = False
    # The refresh that keeps the similarity's structure is the default (README, "Does it help?");
    # the paper's literal rule is refresh: paper with impute_from: soft_label.
    # paper: kappa of observed + imputed | anchored: pairs with an observed label | models: observed
    # kappa shrunk towards the kappa of the annotators' models on every training item
    refresh: str = "models"
    impute_from: str = "own_prediction"  # soft_label (paper: argmax of the pooled soft label) | own_prediction
    min_overlap: int = 2
    # A crowd baseline instead of per-annotator learning: one classifier on majority-vote labels
    # (consensus) or on Dawid-Skene posteriors, mapped to every annotator (see experiment.py).
    crowd_baseline: str = "none"
    ds_diagonal_prior: float = 1.0
    # What a missing entry is trained towards: ``similarity`` (the paper: similarity-weighted
    # predictions of the item's labellers) or ``dawid_skene`` (fixed: the item's Dawid-Skene
    # posterior carried through the annotator's DS confusion, p(a says z | the item's labels)).
    soft_targets: str = "similarity"
    # The similarity a method uses: ``stage`` (the similarity stage's, `parameters_similarity.yml`)
    # or an estimator of core/similarity.py recomputed from this run's training labels.
    similarity_estimator: str = "stage"
    architecture_options: dict = field(default_factory=dict)  # {architecture: {option: value}}
    # End-to-end fine-tuning of the frame encoder (GPU use): inputs are frames, not embeddings.
    finetune_backbone: bool = False
    backbone: str = "efficientnet_lite0"
    backbone_learning_rate: float = 1e-4
    mixed_precision: bool = True  # bf16 / fp16 autocast on CUDA; ignored on CPU
    run_name: str = ""  # shown in the epoch log lines (methods train in parallel processes)
    state_path: str | None = None  # training state written here after every epoch
    resume: bool = False  # continue from state_path if it exists

    @classmethod
    def from_params(cls, *overrides: dict) -> TrainConfig:
        """Merge parameter dicts (later ones win) into a validated config."""
        merged: dict = {}
        for params in overrides:
            params = dict(params or {})
            # A method that sets one architecture's option keeps the other options.
            options = {arch: dict(opts) for arch, opts in merged.get("architecture_options", {}).items()}
            for arch, opts in (params.pop("architecture_options", None) or {}).items():
                options[arch] = {**options.get(arch, {}), **(opts or {})}
            merged.update(params)
            if options:
                merged["architecture_options"] = options
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(merged) - known)
        if unknown:
            raise ValueError(f"unknown training parameters {unknown}; known: {sorted(known)}")
        config = cls(**merged)
        config.validate()
        return config

    def validate(self) -> None:
        checks = [
            (self.architecture in ARCHITECTURE_OPTIONS, f"architecture must be one of {sorted(ARCHITECTURE_OPTIONS)}"),
            (self.soft_label_source in SOFT_LABEL_SOURCES, f"soft_label_source must be one of {SOFT_LABEL_SOURCES}"),
            (self.confidence_formula in CONFIDENCE_FORMULAS, f"confidence_formula must be one of {CONFIDENCE_FORMULAS}"),
            (self.crowd_baseline in CROWD_BASELINES, f"crowd_baseline must be one of {CROWD_BASELINES}"),
            (self.refresh in REFRESH_RULES, f"refresh must be one of {REFRESH_RULES}"),
            (self.impute_from in IMPUTE_FROM, f"impute_from must be one of {IMPUTE_FROM}"),
            (self.soft_targets in SOFT_TARGETS, f"soft_targets must be one of {SOFT_TARGETS}"),
            (self.similarity_estimator in SIMILARITY_ESTIMATORS, f"similarity_estimator must be one of {SIMILARITY_ESTIMATORS}"),
            (self.head_updates in HEAD_UPDATES, f"head_updates must be one of {HEAD_UPDATES}"),
            (self.head_updates != "rows" or self.soft_entries_per_item is not None,
             "head_updates: rows needs soft_entries_per_item (a dense step evaluates every annotator)"),
            (self.unlabeled_weight >= 0, "unlabeled_weight must be >= 0"),
            (self.learning_rate > 0 and self.backbone_learning_rate > 0, "learning rates must be > 0"),
            (self.weight_decay >= 0 and self.grad_clip > 0, "weight_decay must be >= 0 and grad_clip > 0"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (0 <= self.threshold <= 1, "threshold must be in [0, 1]"),
            (0 <= self.warmup_fraction < 1, "warmup_fraction must be in [0, 1)"),
            (self.batch_size > 0 and self.max_epochs > 0 and self.patience > 0, "batch_size, max_epochs, patience must be > 0"),
            (self.cycle_every > 0 and self.min_overlap >= 1, "cycle_every and min_overlap must be >= 1"),
            (
                self.soft_entries_per_item is None
                or (self.soft_entries_per_item > 0 and self.architecture in ENTRY_ARCHITECTURES),
                f"soft_entries_per_item must be > 0 and needs one of {ENTRY_ARCHITECTURES}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"{message} (config: {dataclasses.asdict(self)})")

    def model_args(self, in_dim: int, n_tokens: int, n_annotators: int, n_classes: int) -> dict:
        """The constructor arguments of this config's model (stored in checkpoints)."""
        return {
            "architecture": self.architecture, "in_dim": int(in_dim), "n_tokens": int(n_tokens),
            "n_annotators": int(n_annotators), "n_classes": int(n_classes), "hidden": self.hidden,
            "head_hidden": self.head_hidden, "dropout": self.dropout,
            "options": dict(self.architecture_options.get(self.architecture, {})),
            "backbone": self.backbone if self.finetune_backbone else None,
        }
