from kedro.pipeline import Node, Pipeline

from simlabel.pipelines.similarity.nodes import plot_similarity
from simlabel.pipelines.training.pipeline import SHARED_INPUTS, SHARED_PARAMETERS

from .nodes import train_with_cycling


def create_pipeline(**kwargs) -> Pipeline:
    """SimLabel + confidence, in the ``simlabel_confidence`` namespace; the imputed label table
    and refined similarity keep global names for notebooks and DVC."""
    branch = Pipeline(
        [
            Node(
                train_with_cycling,
                inputs=[
                    "embeddings", "frames", "label_matrix", "item_split", "similarity", "classes",
                    "params:training", "params:similarity", "params:confidence_cycling",
                ],
                outputs=["checkpoint", "predictions", "training_history", "frame_attention", "truth_predictions", "imputed_labels", "refined_similarity"],
                name="train_with_cycling",
            ),
            Node(
                plot_similarity,
                inputs="refined_similarity",
                outputs="refined_similarity_heatmap",
                name="plot_refined_similarity",
            ),
        ]
    )
    return Pipeline(
        branch,
        namespace="simlabel_confidence",
        inputs=SHARED_INPUTS,
        outputs={"imputed_labels", "refined_similarity", "refined_similarity_heatmap"},
        parameters=SHARED_PARAMETERS | {"params:confidence_cycling"},
    )
