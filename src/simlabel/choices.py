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
