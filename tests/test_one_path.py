"""The main pipeline's nodes and paper_tables reach the same accuracy for the same method, seed
and split: both go through experiment.run_method."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simlabel.core.labels import LabelTable, split_items
from simlabel.evaluation import Run, per_run_accuracy, run_experiment
from simlabel.folder import CrowdFolder
from simlabel.pipelines.reporting.nodes import evaluate_methods
from simlabel.pipelines.similarity.nodes import compute_similarity
from simlabel.pipelines.training.nodes import blend_method, train_method

TRAINING = {"max_epochs": 8, "patience": 8, "hidden": 16, "device": "cpu", "batch_size": 16, "seed": 0}
MEMBERS = {"mixed": {"soft_label_source": "mixed"}, "dawid_skene": {"crowd_baseline": "dawid_skene"}}


def features_set(n_items=150, n_annotators=6, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, n_items)
    tokens = (rng.normal(0, 2, (3, 8))[truth] + rng.normal(size=(n_items, 8))).astype(np.float32)[:, None]
    swap = np.array([1, 0, 2])
    labels = np.where(np.arange(n_annotators) < 3, truth[:, None], swap[truth][:, None])
    labels = np.where(rng.random(labels.shape) < 0.35, labels, -1)
    index = pd.Index([f"i{k}" for k in range(n_items)], name="item_id")
    return tokens, pd.DataFrame(labels, index=index, columns=[f"w{a}" for a in range(n_annotators)])


@pytest.mark.parametrize("method", [{"unlabeled_weight": 0.0}, {"cycling": True, "threshold": 0.3},
                                    {"crowd_baseline": "dawid_skene"},
                                    {"blend_of": ["mixed", "dawid_skene"]}])
def test_dag_nodes_and_paper_tables_give_the_same_accuracy(method):
    tokens, label_matrix = features_set()
    fractions, seed = {"train": 0.6, "val": 0.2, "test": 0.2}, 3
    classes = ["a", "b", "c"]
    labels = LabelTable.from_matrix(label_matrix).to_frame()  # what the label_matrix stage writes

    split = split_items(label_matrix.index, fractions, seed)
    similarity = compute_similarity(labels, split, classes, {"min_overlap": 2})
    training = {**TRAINING, "seed": seed}
    if "blend_of" in method:  # the members' nodes, then the blend's
        trained = [train_method(tokens, None, labels, split, similarity, classes, training, {"min_overlap": 2},
                                MEMBERS[name], method_name=name) for name in method["blend_of"]]
        outputs = blend_method(tokens, None, labels, split, similarity, classes, *(t["checkpoint"] for t in trained),
                               method_name="m", members=method["blend_of"])
    else:
        outputs = train_method(tokens, None, labels, split, similarity, classes, training,
                               {"min_overlap": 2}, method, method_name="m")
    folder = CrowdFolder(None, pd.DataFrame(), None, None)
    dag = evaluate_methods(outputs["predictions"], outputs["truth_predictions"], labels, classes, folder)

    runs = [Run("heads", 0.0, seed, "m", method)]
    results = pd.concat(run_experiment(tokens, label_matrix.to_numpy(), label_matrix.index, 3, runs, TRAINING,
                                       {"min_overlap": 2}, fractions, named=MEMBERS))
    paper = per_run_accuracy(results)["macro"].iloc[0]
    assert dag["metrics"]["m"]["mean_accuracy"] == pytest.approx(paper, abs=1e-6)
