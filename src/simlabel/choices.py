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
# scale_run.py, 200,000 items, 2 epochs, one thread, 256 items x ~7 entries a step): rows 27.2 s
# against 15.6 s dense at 3,000 annotators, 40.1 against 27.5 s at 10,000, 53.4 against 235 s
# at 100,000 (interpolating between 10,000 and 100,000: break-even near 16,000, 9 per entry);
# validation accuracy equal to 4 decimals.
HEAD_UPDATES = ("auto", "dense", "rows")
ROW_UPDATES_PER_ENTRY = 10
