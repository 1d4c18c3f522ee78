"""paper_tables on a tiny features folder, and predict on new clips, end to end."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import PROJECT_ROOT, run

METHODS = set(yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_methods.yml").read_text())["methods"])

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def features_folder(tmp_path_factory):
    """120 items, 6 annotators in two groups (one swaps two classes), 30 % of labels given."""
    folder = tmp_path_factory.mktemp("features_set")
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 120)
    np.save(folder / "features.npy", (rng.normal(0, 2, (3, 8))[truth] + rng.normal(size=(120, 8))).astype(np.float32))
    swap = np.array([1, 0, 2])
    rows = [
        (i, f"w{a}", int(swap[truth[i]] if a >= 3 else truth[i]))
        for i in range(120) for a in range(6) if rng.random() < 0.3
    ]
    pd.DataFrame(rows, columns=["item_id", "annotator_id", "label"]).to_csv(folder / "labels.csv", index=False)
    (folder / "classes.txt").write_text("red\ngreen\nblue\n")
    return folder


def test_paper_tables_end_to_end(tiny_project, features_folder):
    result = run(["kedro", "run", "--pipelines=paper_tables", f"--params=dataset_dir={features_folder}"], tiny_project)
    reports = tiny_project / "data" / features_folder.name / "08_reporting"  # a folder's own outputs
    assert "Table 4 shape" in result.stdout
    metrics = json.loads((reports / "paper_tables.json").read_text())
    assert set(metrics) == {"heads"} and set(metrics["heads"]) == {"r=0", "r=0.3"}
    for per_method in metrics["heads"].values():
        assert set(per_method) == METHODS | {"consensus", "dawid_skene"}
        assert all(len(seeds) == 2 and all(0 <= a <= 1 for a in seeds) for seeds in per_method.values())
    annotators = pd.read_csv(reports / "paper_table_annotators.csv")
    assert {"w0", "w5", "macro", "macro_std", "micro"} <= set(annotators.columns)
    ablation = pd.read_csv(reports / "paper_table_ablation.csv")
    assert len(ablation) == 3  # (0.5, product), (0.6, max), (0.6, product)
    paired = pd.read_csv(reports / "paper_table_paired.csv")
    assert {"skip", "simlabel", "dawid_skene", "consensus"} == set(paired["vs"])
    assert (reports / "accuracy_vs_missing.png").stat().st_size > 0
    assert (reports / "paired_differences.png").stat().st_size > 0


def test_predict_end_to_end(tiny_project, tmp_path):
    run(["kedro", "run", "--pipelines=demo_data"], tiny_project)
    run(["kedro", "run", "--pipelines=simlabel"], tiny_project)
    new = tmp_path / "new" / "videos"
    new.mkdir(parents=True)
    for clip in sorted((tiny_project / "data/01_raw/demo/videos").glob("*.avi"))[:3]:
        shutil.copy(clip, new / f"new_{clip.name}")
    run(["kedro", "run", "--pipelines=predict", f"--params=predict_dir={new.parent}"], tiny_project)
    out = pd.read_parquet(tiny_project / "data/predict/annotator_predictions.parquet")
    assert len(out) == 3 * 12 and out["item_id"].nunique() == 3
    assert out["item_id"].str.startswith("new_clip_").all()
    assert set(out["label"]) <= {"worry", "happiness", "neutral", "anger", "surprise", "sadness", "other", "unknown"}
    assert out["probability"].between(0, 1).all()


def test_distributed_training_entry_point_with_two_gloo_ranks(tiny_project):
    run(["kedro", "run", "--pipelines=demo_data"], tiny_project)
    run(["kedro", "run", "--pipelines=simlabel"], tiny_project)
    checkpoint = tiny_project / "data/06_models/simlabel/checkpoint.pt"
    before = checkpoint.stat().st_mtime_ns
    result = run(
        ["torchrun", "--standalone", "--nproc_per_node=2", "-m", "simlabel.distributed", "--pipelines", "training",
         "--params", "training.max_epochs=3"],
        tiny_project,
    )
    assert "rank 0 saved" in result.stdout + result.stderr
    assert checkpoint.stat().st_mtime_ns > before
    history = pd.read_csv(tiny_project / "data/07_model_output/methods/simlabel/training_history.csv")
    assert history["epoch"].max() <= 3
