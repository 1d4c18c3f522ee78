"""The project's pipelines: one per stage, and ``simlabel`` = all of them in order."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from simlabel.pipelines import (
    confidence_cycling,
    demo_data,
    ingestion,
    label_matrix,
    paper_tables,
    predict,
    reporting,
    similarity,
    training,
)

STAGES = {
    "demo_data": demo_data,
    "ingestion": ingestion,
    "label_matrix": label_matrix,
    "similarity": similarity,
    "training": training,
    "confidence_cycling": confidence_cycling,
    "reporting": reporting,
}


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Returns
    -------
    ``{stage: pipeline}`` for every stage, plus ``simlabel`` (every stage from ingestion to
    reporting, on the folder ``dataset_dir``) and ``__default__`` (the same). ``demo_data``
    writes the embedded demo folder and runs on its own: it must finish before a run reads the
    folder, and a run on a user's folder has no use for it.
    """
    pipelines = {name: module.create_pipeline() for name, module in STAGES.items()}
    pipelines["simlabel"] = sum((p for name, p in pipelines.items() if name != "demo_data"), Pipeline([]))
    pipelines["__default__"] = pipelines["simlabel"]
    pipelines["paper_tables"] = paper_tables.create_pipeline()
    pipelines["predict"] = predict.create_pipeline()
    return pipelines
