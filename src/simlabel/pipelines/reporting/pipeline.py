from kedro.pipeline import Node, Pipeline

from simlabel.methods import method_names
from simlabel.pipelines.bound import BoundFunction

from .nodes import (
    attention_heatmap,
    combine_tables,
    compare_similarities,
    evaluate_methods,
    training_curves,
    with_similarity_errors,
)

COMBINED = {"predictions": "predictions", "truth_predictions": "truth_predictions", "frame_attention": "frame_attention",
            "training_history": "training_history"}


def create_pipeline(methods: list[str] | None = None, **kwargs) -> Pipeline:
    """Every method's tables combined into long tables, then one report over all methods."""
    methods = methods or method_names()
    combine = [
        Node(combine_tables, inputs=[f"{m}.{table}" for m in methods], outputs=combined, name=f"combine_{table}")
        for table, combined in COMBINED.items()
    ]
    finals = [f"{m}.refined_similarity" for m in methods]
    return Pipeline(
        [
            *combine,
            Node(
                evaluate_methods,
                inputs=["predictions", "truth_predictions", "labels", "classes", "crowd_folder"],
                outputs={"accuracy_table": "accuracy_table", "per_annotator": "per_annotator", "metrics": "accuracy_metrics",
                         "accuracy_markdown": "accuracy_markdown", "accuracy_plot": "accuracy_plot"},
                name="evaluate_methods",
            ),
            Node(attention_heatmap, inputs="frame_attention", outputs="attention_plot", name="plot_frame_attention"),
            Node(training_curves, inputs="training_history", outputs="training_curves_plot", name="plot_training_curves"),
            Node(BoundFunction(compare_similarities, methods=methods),
                 inputs=["crowd_folder", "params:methods", "similarity", *finals],
                 outputs=["refined_similarity_heatmap", "similarity_errors"], name="compare_similarities"),
            Node(with_similarity_errors, inputs=["accuracy_metrics", "similarity_errors"], outputs="metrics",
                 name="add_similarity_errors"),
        ],
        tags=["reporting"],
    )
