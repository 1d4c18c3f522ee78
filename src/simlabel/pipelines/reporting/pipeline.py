from kedro.pipeline import Node, Pipeline

from .nodes import evaluate_methods


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                evaluate_methods,
                inputs=["label_matrix", "skip.predictions", "simlabel.predictions", "simlabel_confidence.predictions"],
                outputs=["accuracy_table", "metrics", "accuracy_markdown", "accuracy_plot"],
                name="evaluate_methods",
            )
        ]
    )
