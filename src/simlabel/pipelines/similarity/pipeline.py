from kedro.pipeline import Node, Pipeline

from .nodes import compute_similarity, plot_similarity


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                compute_similarity,
                inputs=["labels", "item_split", "classes", "params:similarity"],
                outputs="similarity",
                name="compute_similarity",
            ),
            Node(plot_similarity, inputs="similarity", outputs="similarity_heatmap", name="plot_similarity"),
        ],
        tags=["similarity"],
    )
