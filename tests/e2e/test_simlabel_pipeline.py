"""End to end: the `simlabel` pipeline on a tiny demo set writes every catalog output; a method
added by one YAML block in conf/local is trained and reported with no code change."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import PROJECT_ROOT, run

pytestmark = pytest.mark.slow
# Every method of the base list plus the one this test adds in conf/local: adding a method to
# parameters_methods.yml needs no change here either.
METHODS = set(yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_methods.yml").read_text())["methods"]) | {"simlabel_labels"}


@pytest.fixture(scope="module")
def kedro_run(tiny_project):
    local = tiny_project / "conf/local/parameters_methods.yml"
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text("methods:\n  simlabel_labels: {soft_label_source: labels}\n")
    run(["kedro", "run", "--pipelines=demo_data"], tiny_project)
    result = run(["kedro", "run", "--pipelines=simlabel"], tiny_project)
    yield tiny_project, result.stdout + result.stderr
    local.unlink()


def test_every_catalog_output_is_written(kedro_run, monkeypatch):
    project, _ = kedro_run
    monkeypatch.chdir(project)  # the method list is read from the project's conf, as `kedro run` does
    from kedro.framework.project import configure_project, pipelines
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    configure_project("simlabel")
    with KedroSession.create(project_path=project) as session:
        catalog = session.load_context().catalog
        outputs = pipelines["simlabel"].all_outputs()
        assert {f"{m}.checkpoint" for m in METHODS} <= outputs
        from kedro.io import MemoryDataset

        for name in sorted(outputs):
            if isinstance(catalog.get(name), MemoryDataset | None):
                continue  # passed between nodes in memory
            assert catalog.exists(name), f"catalog output {name!r} was not written"

        label_matrix = catalog.load("label_matrix")
        assert label_matrix.shape == (40, 12)
        assert label_matrix.index.name == "item_id"
        assert set(np.unique(label_matrix.to_numpy())) <= set(range(-1, 8))
        assert set(catalog.load("item_split").columns) == {"item_id", "split"}
        similarity = catalog.load("similarity").to_frame()
        assert list(similarity.index) == list(similarity.columns) == list(label_matrix.columns)
        assert catalog.load("simlabel.refined_similarity").empty  # trains with the stage's similarity
        assert catalog.load("simlabel_confidence.refined_similarity").shape == (12, 12)
        imputed = catalog.load("simlabel_confidence.imputed_labels")
        assert list(imputed.columns) == ["item_id", "annotator_id", "label", "confidence", "epoch"]
        assert len(imputed) > 0, "threshold 0.2 should impute something"
        assert catalog.load("simlabel.imputed_labels").empty
        observed = label_matrix.stack()
        keys = pd.MultiIndex.from_frame(imputed[["item_id", "annotator_id"]])
        assert (observed.reindex(keys).to_numpy() == -1).all(), "an observed label was overwritten"
        assert catalog.load("embeddings").shape[:2] == (40, 3)
        assert catalog.load("frames").shape == (40, 3, 224, 224, 3)
        predictions = catalog.load("predictions")
        assert set(predictions["method"]) == METHODS


def test_metrics_are_small_and_flat_and_list_every_method(kedro_run):
    project, log = kedro_run
    metrics = json.loads((project / "data/08_reporting/metrics.json").read_text())
    other_architectures = {f"{m}@{a}" for m in METHODS for a in ("qumatl", "madl", "padl")}
    assert set(metrics) == METHODS | other_architectures | {"similarity_error"}
    # The demo folder has true_similarity.csv: the similarity's error against it is reported.
    assert {"initial", "refined"} <= set(metrics.pop("similarity_error"))
    for values in metrics.values():
        assert set(values) == {"mean_accuracy", "ci95_low", "ci95_high", "n_annotators"}
        assert 0.0 <= values["ci95_low"] <= values["mean_accuracy"] <= values["ci95_high"] <= 1.5
    per_annotator = pd.read_csv(project / "data/08_reporting/per_annotator.csv")
    heads = per_annotator[(per_annotator["architecture"] == "heads") & (per_annotator["method"] == "simlabel_labels")]
    assert metrics["simlabel_labels"]["mean_accuracy"] == pytest.approx(heads["accuracy"].mean(), abs=1e-6)
    assert "simlabel_labels" in (project / "data/08_reporting/accuracy.md").read_text()
    assert "| padl" in log
    table = pd.read_csv(project / "data/08_reporting/accuracy.csv")
    assert len(table) == 4 * len(METHODS) and {"mean_accuracy", "ci95_low", "truth_accuracy"} <= set(table.columns)
    assert table.loc[table["architecture"] == "madl", "truth_accuracy"].notna().all()
    # The bar chart has one bar per method in its means panel.
    assert (project / "data/08_reporting/accuracy.png").stat().st_size > 0


def test_paper_tables_compare_the_same_methods(kedro_run, tmp_path):
    project, _ = kedro_run
    run(["kedro", "run", "--pipelines=paper_tables", "--params=paper_tables.extra_missing=[0.0],paper_tables.seeds=1,"
         "paper_tables.ablation=null"], project)
    metrics = json.loads((project / "data/08_reporting/paper_tables.json").read_text())
    assert set(metrics["heads"]["r=0"]) == METHODS | {"consensus", "dawid_skene"}
