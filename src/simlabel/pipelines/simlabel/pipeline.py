"""``simlabel``: the main stages in order, ingestion to reporting, on the folder ``dataset_dir``.

A pipeline package of its own (not composed in the registry) so that ``find_pipelines`` loads
only the stages a run asks for: ``kedro run --pipelines=simlabel`` imports these five,
``--pipelines=label_matrix`` imports one and never torch.
"""

from kedro.pipeline import Pipeline

from simlabel.pipelines import ingestion, label_matrix, reporting, similarity, training

MAIN_STAGES = (ingestion, label_matrix, similarity, training, reporting)


def create_pipeline(**kwargs) -> Pipeline:
    return sum((stage.create_pipeline() for stage in MAIN_STAGES), Pipeline([]))
