"""The names a configuration chooses from, without importing the code behind them.

Parameter validation (every ``kedro run``) and ``TrainConfig`` read these; the modules that
implement them (``core.soft_labels``, ``models.annotators``) import torch, which the stages
without a model never load. Tests check that the names match the implementations.
"""

from __future__ import annotations

SOFT_LABEL_SOURCES = ("predictions", "labels", "mixed")
CONFIDENCE_FORMULAS = ("max", "entropy", "product")
# Architecture -> the options of its constructor beyond the shared ones (in_dim, hidden, ...),
# as ``training.architecture_options.<architecture>`` may set them.
ARCHITECTURE_OPTIONS = {
    "heads": (),
    "qumatl": ("n_heads", "query_self_attention"),
    "madl": ("confusion", "diagonal_prior", "embedding_dim"),
    "padl": ("n_samples", "sigma_scale"),
}
ENTRY_ARCHITECTURES = ("heads", "madl", "padl")  # can evaluate single (item, annotator) entries
# How a sampled step updates the per-annotator parameters: every annotator (dense AdamW), only
# the batch's annotators (training.optim.AnnotatorRowsAdamW), or ``auto``: rows where there are
# at least ROW_UPDATES_PER_ENTRY annotators per entry a step evaluates. Measured (bench/
# scale_run.py, one thread, 256 items x ~7 entries a step): rows 14.6 s against 11.7 s dense
# at 3,000 annotators, 17.2 against 17.1 s at 10,000, 19.9 against 118 s at 100,000.
HEAD_UPDATES = ("auto", "dense", "rows")
ROW_UPDATES_PER_ENTRY = 8
