"""The project's pipelines: one per stage (``src/simlabel/pipelines/<stage>``), found by
``find_pipelines``, and ``simlabel`` = the main stages in order (a pipeline package of its own).

Kedro 1.7's ``find_pipelines`` imports only the pipelines a run asks for (``kedro run
--pipelines=label_matrix`` never imports the training stage, nor torch: about 2 s less start-up
per stage that needs no model).
"""

from __future__ import annotations

import warnings

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

# Reporting reads every method's namespaced outputs (``skip.predictions``, ...) and predict reads
# the namespaced ingestion of the new folder: dotted names there are Kedro namespaces, on purpose.
warnings.filterwarnings("ignore", message="One or more dataset names contain '.' characters")


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Returns
    -------
    ``{stage: pipeline}`` for the stages asked for (every stage when all are asked for):
    ``ingestion``, ``label_matrix``, ``similarity``, ``training`` (trains every method of
    ``methods:``), ``reporting``; ``simlabel`` (ingestion to reporting, on the folder
    ``dataset_dir``) and ``__default__`` (the same). ``demo_data`` writes the embedded demo
    folder and runs on its own: it must finish before a run reads the folder, and a run on a
    user's folder has no use for it; ``paper_tables`` and ``predict`` are separate experiments.
    """
    pipelines = find_pipelines()
    if "__default__" in pipelines:  # every pipeline was asked for
        pipelines["__default__"] = pipelines["simlabel"]
    return pipelines
