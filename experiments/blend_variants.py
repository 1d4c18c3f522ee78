"""Blends of per-annotator methods with Dawid-Skene, paired over seeds: how the README's
"Does it help?" variants and the plain-ensembling control were measured.

Every single model below is trained once per seed (the paper_tables recipe: batch 128, one split
per seed shared by every method); the blends average their members' test probabilities, as
``blend_of`` does. ``sm+sdk+ds`` is ``simlabel_blend``; ``sm+ds`` the two-member blend of an
earlier session; ``sm+sm2+ds`` the control for plain ensembling (the same extra training as
``sm+sdk+ds``, spent on a second seed of ``simlabel_shrunk_mixed`` instead of the DS prior).
Prints mean macro accuracy and paired differences (mean [95 % t-interval], seeds won) against
Dawid-Skene, SimLabel, consensus and the two-member blend, and the gains by annotators' training labels.

Needs the folder's embeddings and label matrix from a main run, e.g.
    kedro run --pipelines=simlabel --params="dataset_dir=../shared/data/labelme"
    OMP_NUM_THREADS=1 .venv/bin/python experiments/blend_variants.py labelme --seeds 10
(``demo`` = the embedded demo). 2 cores, one thread: demo 35 s, labelme 155 s, music_genre 160 s.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from simlabel.core.labels import LabelTable  # noqa: E402
from simlabel.core.similarity import similarity_from_params  # noqa: E402
from simlabel.evaluation import RESULT_COLUMNS, paired_differences, per_run_accuracy  # noqa: E402
from simlabel.experiment import Split, run_method  # noqa: E402
from simlabel.runtime import use_threads  # noqa: E402
from simlabel.training.config import TrainConfig  # noqa: E402

SHRUNK_MIXED = {"similarity_estimator": "shrunk_kappa", "soft_label_source": "mixed"}
# name: (training overrides, seed offset)
SINGLE = {
    "dawid_skene": ({"crowd_baseline": "dawid_skene"}, 0),
    "consensus": ({"crowd_baseline": "consensus"}, 0),
    "simlabel": ({}, 0),
    "sm": (SHRUNK_MIXED, 0),  # simlabel_shrunk_mixed
    "sm2": (SHRUNK_MIXED, 1000),  # the same, another seed (the ensembling control)
    "sdk": ({"similarity_estimator": "shrunk_ds_kappa", "soft_label_source": "mixed"}, 0),  # simlabel_shrunk_ds_mixed
    "dsim": ({"similarity_estimator": "ds_implied", "soft_label_source": "mixed"}, 0),
}
BLENDS = {"sm+ds": ["sm", "dawid_skene"], "sdk+ds": ["sdk", "dawid_skene"], "sm+sdk": ["sm", "sdk"],
          "sm+sdk+ds": ["sm", "sdk", "dawid_skene"], "sm+sm2+ds": ["sm", "sm2", "dawid_skene"],
          "sm+dsim+ds": ["sm", "dsim", "dawid_skene"]}
BLEND = "sm+sdk+ds"  # simlabel_blend


def load(folder: str):
    """Embeddings (N, T, D), label matrix (N, A), class count and test panel of a main run."""
    base = ROOT / "data" if folder == "demo" else ROOT / "data" / folder
    matrix = LabelTable.from_frame(pd.read_parquet(base / "03_primary/labels_full.parquet")).to_matrix()
    tokens = np.load(base / "04_feature/embeddings.npy")
    n_classes = len(json.loads((base / "03_primary/classes.json").read_text()))
    panel = ROOT / "data/01_raw/demo/test_items.txt"
    test_items = [line.strip() for line in panel.read_text().splitlines() if line.strip()] if folder == "demo" else None
    return tokens, matrix, n_classes, test_items


def seed_results(tokens, matrix, n_classes, test_items, seed: int, training: dict) -> list:
    """One (method, per-annotator counts) frame per single model and blend of one seed."""
    labels = matrix.to_numpy()
    split = Split.draw(matrix.index, {"train": 0.6, "val": 0.2, "test": 0.2}, seed, test_items=test_items)
    similarity = similarity_from_params(split.labels_of(labels, "train"), n_classes, {"min_overlap": 2})
    rows = np.flatnonzero(split.test)
    probs = {}
    for name, (overrides, offset) in SINGLE.items():
        config = TrainConfig.from_params(training, overrides, {"seed": seed + offset, "run_name": f"{name} seed {seed}"})
        result = run_method(tokens, labels, split, similarity, n_classes, config)
        probs[name] = torch.cat([log_p.exp() for _, log_p in result.log_proba(rows)]).cpu().numpy()
    probs |= {name: sum(probs[m] for m in members) / len(members) for name, members in BLENDS.items()}
    test_labels = labels[split.test]
    scored = test_labels >= 0
    n_train = (split.labels_of(labels, "train") >= 0).sum(0)
    return [
        pd.DataFrame({"architecture": "heads", "r": 0.0, "seed": seed, "method": name,
                      "annotator": np.arange(labels.shape[1]), "n_test": scored.sum(0),
                      "n_correct": ((p.argmax(-1) == test_labels) & scored).sum(0)},
                     columns=RESULT_COLUMNS).assign(n_train=n_train)
        for name, p in probs.items()
    ]


def gains_by_training_labels(results: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy differences over (annotator, seed) pairs, by the annotator's training labels
    (README, "Who gains"): the blend against DS and against its per-annotator member."""
    scored = results[results["n_test"] > 0].assign(acc=lambda r: r["n_correct"] / r["n_test"])
    scored["training labels"] = pd.cut(scored["n_train"], [-1, 10, 40, np.inf], labels=["<= 10", "11-40", "> 40"])
    wide = scored.pivot_table(index=["seed", "annotator", "training labels"], columns="method", values="acc",
                              observed=True).reset_index()
    return wide.groupby("training labels", observed=True).agg(
        pairs=("sm", "size"),
        sm_minus_ds=("sm", lambda b: (b - wide.loc[b.index, "dawid_skene"]).mean()),
        blend_minus_ds=(BLEND, lambda b: (b - wide.loc[b.index, "dawid_skene"]).mean()),
        blend_minus_sm=(BLEND, lambda b: (b - wide.loc[b.index, "sm"]).mean()),
    ).round(3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="demo, or the name of a folder run before (labelme, music_genre, ...)")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--out", default=None, help="write the per-annotator results here (parquet)")
    args = parser.parse_args()
    use_threads(1)
    training = yaml.safe_load((ROOT / "conf/base/parameters_training.yml").read_text())["training"]
    paper = yaml.safe_load((ROOT / "conf/base/parameters_paper_tables.yml").read_text())["paper_tables"]
    # The paper_tables recipe, as run_paper_experiments builds it.
    training = {k: v for k, v in training.items() if k not in ("architectures", "state_dir")} | paper.get("training", {})
    data = load(args.folder)
    results = pd.concat([frame for seed in range(args.seeds)
                         for frame in seed_results(*data, seed, training)], ignore_index=True)
    if args.out:
        results.to_parquet(args.out)
    per_run = per_run_accuracy(results)
    print(per_run.groupby("method", sort=False)["macro"].mean().round(4).to_string())
    for reference in ("dawid_skene", "simlabel", "consensus", "sm+ds"):
        if reference in set(per_run["method"]):
            table = paired_differences(per_run, reference)
            print(table[["method", "vs", "mean_difference", "ci95_low", "ci95_high", "wins", "seeds"]]
                  .round(4).to_string(index=False))
    print(gains_by_training_labels(results).to_string())


if __name__ == "__main__":
    main()
