from kedro.pipeline import Node, Pipeline

from .nodes import train_branch

SHARED_INPUTS = {"embeddings", "frames", "label_matrix", "item_split", "similarity", "classes"}
SHARED_PARAMETERS = {"params:training", "params:similarity"}


def branch_template() -> Pipeline:
    return Pipeline(
        [
            Node(
                train_branch,
                inputs=[
                    "embeddings", "frames", "label_matrix", "item_split", "similarity", "classes",
                    "params:training", "params:similarity", "params:method",
                ],
                outputs=["checkpoint", "predictions", "training_history", "frame_attention", "truth_predictions"],
                name="train_branch",
            )
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    """Skip (lambda = 0) and SimLabel, as two namespaces of one template."""
    return sum(
        (
            Pipeline(branch_template(), namespace=branch, inputs=SHARED_INPUTS, parameters=SHARED_PARAMETERS)
            for branch in ("skip", "simlabel")
        ),
        Pipeline([]),
    )
