from kedro.pipeline import Node, Pipeline

from simlabel.pipelines.ingestion import create_pipeline as ingestion

from .nodes import choose_checkpoint, predict_annotators


def create_pipeline(**kwargs) -> Pipeline:
    """Ingest the new folder (``predict_dir``) like the training folder, then predict with the
    checkpoint of ``predict.method``."""
    new_items = Pipeline(
        ingestion(),
        namespace="new_items",
        inputs={"crowd_folder": "predict_folder"},
        parameters={"params:dataset", "params:ingestion"},
    )
    return new_items + Pipeline(
        [
            Node(choose_checkpoint, inputs=["model_checkpoints", "params:predict"], outputs="predict_checkpoint",
                 name="choose_checkpoint"),
            Node(
                predict_annotators,
                inputs=["predict_checkpoint", "new_items.embeddings", "new_items.frames", "new_items.ingested_items",
                        "params:predict"],
                outputs="annotator_predictions",
                name="predict_annotators",
            ),
        ],
        tags=["predict"],
    )
