"""Embedded demo data: synthetic emotion clips, simulated annotator groups and a dense test panel."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from simlabel.demo.synthetic import (
    CLASS_NAMES,
    choose_test_panel,
    groups_from_sizes,
    make_demo_clips,
    simulate_annotations,
    true_similarity,
)
from simlabel.errors import UserError

logger = logging.getLogger(__name__)
PARAMETERS_FILE = "conf/base/parameters_demo_data.yml"
DEFAULTS = {"test_panel": 40, "group_sizes": [8, 4]}  # the shipped design, when a key is left out


def _check_design(params: dict) -> list[list[int]]:
    """Annotator groups (index lists) of ``params["group_sizes"]``; a panel that leaves no clip
    outside it is an error naming the parameters."""
    sizes = params["group_sizes"]
    if not isinstance(sizes, list | tuple) or not sizes or any(
        isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes
    ):
        raise UserError(
            f"demo_data.group_sizes ({PARAMETERS_FILE}) must be a non-empty list of positive integers "
            f"(annotators per group), got {sizes!r}"
        )
    if not 1 <= params["test_panel"] < params["n_items"]:
        raise UserError(
            f"demo_data.test_panel ({PARAMETERS_FILE}) must be in [1, n_items) = [1, {params['n_items']}): "
            f"got {params['test_panel']}; the clips outside the panel are the training and validation clips"
        )
    return groups_from_sizes(sizes)


def generate_demo_data(params: dict) -> tuple[dict, pd.DataFrame, str, pd.DataFrame, str, pd.DataFrame]:
    """Seeded demo data set in the project's folder format.

    ``params``: ``n_items`` N, ``n_frames`` T, ``height`` H, ``width`` W, ``test_panel`` P,
    ``group_sizes`` (annotators per group; A = their sum, numbered group by group; group 0 is
    accurate, each other group swaps class pairs of its own), ``labels_per_item_mean`` (labels
    per clip outside the panel) and ``seed``; ``test_panel`` and ``group_sizes`` default to
    :data:`DEFAULTS`.

    Returns
    -------
    clips : {item_id: (T, H, W, 3) uint8 RGB frames}, one video per item.
    labels : (L, 3) long table item_id, annotator_id, label (class index); every annotator
        labels every panel clip, the other clips get 1-3 labels each.
    classes : contents of ``classes.txt`` (one class name per line).
    truth : (N, 2) item_id, label (the class the clip was drawn from).
    test_items : contents of ``test_items.txt``: the P panel clips, one item_id per line.
    true_similarity : (A, A) expected Cohen's kappa of every annotator pair, index and columns
        the annotator ids (``true_similarity.csv``, written with its index).
    """
    params = DEFAULTS | dict(params)
    groups = _check_design(params)
    n_annotators = sum(len(g) for g in groups)
    item_ids, truth, clips = make_demo_clips(
        n_items=params["n_items"],
        n_frames=params["n_frames"],
        height=params["height"],
        width=params["width"],
        seed=params["seed"],
    )
    panel = choose_test_panel(truth, params["test_panel"], params["seed"])
    labels = simulate_annotations(
        truth,
        n_classes=len(CLASS_NAMES),
        n_annotators=n_annotators,
        groups=groups,
        labels_per_item_mean=params["labels_per_item_mean"],
        sparse_annotator=None,
        seed=params["seed"],
        panel=panel,
    )
    similarity = true_similarity(len(CLASS_NAMES), n_annotators, groups, params["seed"])
    _log_design(labels, item_ids, panel)
    truth_table = pd.DataFrame({"item_id": item_ids, "label": truth})
    test_items = "".join(f"{item_ids[i]}\n" for i in panel)
    return clips, labels, "\n".join(CLASS_NAMES) + "\n", truth_table, test_items, similarity


def _log_design(labels: pd.DataFrame, item_ids: list[str], panel: np.ndarray) -> None:
    """One log line: clips, panel, annotators, labels per annotator outside the panel."""
    outside = labels[~labels["item_id"].isin([item_ids[i] for i in panel])]
    per_annotator = outside.groupby("annotator_id").size()
    logger.info(
        "demo data: %d clips (%d in the test panel, labelled by all %d annotators), %d labels; "
        "outside the panel %.1f labels per clip, %d-%d per annotator",
        len(item_ids), len(panel), labels["annotator_id"].nunique(), len(labels),
        len(outside) / (len(item_ids) - len(panel)), per_annotator.min(), per_annotator.max(),
    )
