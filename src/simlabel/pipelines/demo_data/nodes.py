"""Embedded demo data: synthetic emotion clips and simulated sparse annotators."""

from __future__ import annotations

import logging

import pandas as pd

from simlabel.demo.synthetic import CLASS_NAMES, make_demo_clips, simulate_annotations

logger = logging.getLogger(__name__)


def generate_demo_data(params: dict) -> tuple[dict, pd.DataFrame, str, pd.DataFrame]:
    """Seeded demo data set in the project's folder format.

    Returns
    -------
    clips : {item_id: (T, H, W, 3) uint8 RGB frames}, one video per item.
    labels : long table item_id, annotator_id, label (class index).
    classes : contents of ``classes.txt`` (one class name per line).
    truth : item_id, label (the class the clip was drawn from).
    """
    item_ids, truth, clips = make_demo_clips(
        n_items=params["n_items"],
        n_frames=params["n_frames"],
        height=params["height"],
        width=params["width"],
        seed=params["seed"],
    )
    labels = simulate_annotations(
        truth,
        n_classes=len(CLASS_NAMES),
        labels_per_item_mean=params["labels_per_item_mean"],
        seed=params["seed"],
    )
    missing = 1.0 - labels.groupby("annotator_id").size() / len(item_ids)
    logger.info(
        "demo data: %d clips, %d labels from %d annotators, missing %.1f %% on average (max %.1f %%)",
        len(item_ids), len(labels), labels["annotator_id"].nunique(), 100 * missing.mean(), 100 * missing.max(),
    )
    truth_table = pd.DataFrame({"item_id": item_ids, "label": truth})
    return clips, labels, "\n".join(CLASS_NAMES) + "\n", truth_table
