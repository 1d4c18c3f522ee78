"""End to end: the `simlabel` pipeline on a tiny demo set writes every catalog output."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kedro_run(tiny_project):
    run(["kedro", "run", "--pipeline=demo_data"], tiny_project)
    result = run(["kedro", "run", "--pipeline=simlabel"], tiny_project)
    return tiny_project, result.stdout + result.stderr


def test_every_catalog_output_is_written(kedro_run):
    project, _ = kedro_run
    from kedro.framework.project import configure_project, pipelines
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    configure_project("simlabel")
    with KedroSession.create(project_path=project) as session:
        catalog = session.load_context().catalog
        outputs = pipelines["simlabel"].all_outputs()
        assert outputs, "the simlabel pipeline has no outputs"
        for name in sorted(outputs):
            assert catalog.exists(name), f"catalog output {name!r} was not written"

        label_matrix = catalog.load("label_matrix")
        assert label_matrix.shape == (40, 10)
        assert label_matrix.index.name == "item_id"
        assert set(np.unique(label_matrix.to_numpy())) <= set(range(-1, 8))
        assert set(catalog.load("item_split").columns) == {"item_id", "split"}
        similarity = catalog.load("similarity")
        assert list(similarity.index) == list(similarity.columns) == list(label_matrix.columns)
        imputed = catalog.load("imputed_labels")
        assert list(imputed.columns) == ["item_id", "annotator_id", "label", "confidence", "epoch"]
        assert len(imputed) > 0, "threshold 0.2 should impute something"
        observed = label_matrix.stack()
        keys = pd.MultiIndex.from_frame(imputed[["item_id", "annotator_id"]])
        assert (observed.reindex(keys).to_numpy() == -1).all(), "an observed label was overwritten"
        assert catalog.load("embeddings").shape[:2] == (40, 3)
        assert catalog.load("frames").shape == (40, 3, 224, 224, 3)


def test_metrics_shape_and_printed_table(kedro_run):
    project, log = kedro_run
    metrics = json.loads((project / "data/08_reporting/metrics.json").read_text())
    assert {"skip", "simlabel", "simlabel_confidence"} <= set(metrics)
    assert set(metrics["by_architecture"]) == {"heads", "qumatl", "madl", "padl"}
    assert metrics["skip"] == metrics["by_architecture"]["heads"]["skip"]
    for values in (metrics[m] for m in ("skip", "simlabel", "simlabel_confidence")):
        assert 0.0 <= values["mean_accuracy"] <= 1.0
        assert set(values["per_annotator"]) <= {f"A{k}" for k in range(1, 11)}
        assert values["mean_accuracy"] == pytest.approx(np.mean(list(values["per_annotator"].values())))
    assert "SimLabel + confidence" in log and "| mean" in log and "| padl" in log
    table = pd.read_csv(project / "data/08_reporting/accuracy.csv")
    assert len(table) == 12 and {"A1", "A10", "mean", "truth_accuracy"} <= set(table.columns)
    assert table.loc[table["architecture"] == "madl", "truth_accuracy"].notna().all()
