"""The project's pipelines: one per stage, and ``simlabel`` = the main stages in order.

Stages are listed explicitly rather than through ``find_pipelines()``: Kedro 1.7's
``find_pipelines`` loads only the pipelines a run asked for, and ``simlabel`` is composed of
five of them.
"""

from __future__ import annotations

import warnings

from kedro.pipeline import Pipeline

from simlabel.pipelines import (
    demo_data,
    ingestion,
    label_matrix,
    paper_tables,
    predict,
    reporting,
    similarity,
    training,
)

MAIN_STAGES = {"ingestion": ingestion, "label_matrix": label_matrix, "similarity": similarity,
               "training": training, "reporting": reporting}

# Reporting reads every method's namespaced outputs (``skip.predictions``, ...) and predict reads
# the namespaced ingestion of the new folder: dotted names there are Kedro namespaces, on purpose.
warnings.filterwarnings("ignore", message="One or more dataset names contain '.' characters")


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Returns
    -------
    ``{stage: pipeline}`` for every stage (``training`` trains every method of ``methods:``),
    plus ``simlabel`` (ingestion to reporting, on the folder ``dataset_dir``) and
    ``__default__`` (the same). ``demo_data`` writes the embedded demo folder and runs on its
    own: it must finish before a run reads the folder, and a run on a user's folder has no use
    for it; ``paper_tables`` and ``predict`` are separate experiments.
    """
    pipelines = {name: module.create_pipeline() for name, module in MAIN_STAGES.items()}
    pipelines["simlabel"] = sum(pipelines.values(), Pipeline([]))
    pipelines["__default__"] = pipelines["simlabel"]
    pipelines["demo_data"] = demo_data.create_pipeline()
    pipelines["paper_tables"] = paper_tables.create_pipeline()
    pipelines["predict"] = predict.create_pipeline()
    return pipelines
