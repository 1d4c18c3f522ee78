from kedro.pipeline import Node, Pipeline

from .nodes import attention_heatmap, evaluate_methods


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                evaluate_methods,
                inputs=[
                    "label_matrix", "classes", "crowd_folder",
                    "skip.predictions", "simlabel.predictions", "simlabel_confidence.predictions",
                    "skip.truth_predictions", "simlabel.truth_predictions", "simlabel_confidence.truth_predictions",
                ],
                outputs=["accuracy_table", "metrics", "accuracy_markdown", "accuracy_plot"],
                name="evaluate_methods",
            ),
            Node(attention_heatmap, inputs="simlabel.frame_attention", outputs="attention_plot", name="plot_frame_attention"),
        ]
    )
