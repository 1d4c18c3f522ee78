import inspect

from kedro.pipeline import Node, Pipeline

from simlabel.methods import method_names

from .nodes import (
    attention_heatmap,
    combine_tables,
    compare_similarities,
    evaluate_methods,
    plot_final_similarities,
    training_curves,
)

COMBINED = {"predictions": "predictions", "truth_predictions": "truth_predictions", "frame_attention": "frame_attention",
            "training_history": "training_history"}


class WithMethods:
    """``function(*inputs, methods=methods)`` as a node function: picklable by reference
    (ParallelRunner pickles every node; a closure cannot be) and named, with the signature Kedro
    checks the inputs against (Kedro warns about ``functools.partial``)."""

    def __init__(self, function, methods: list[str]):
        self.function, self.methods = function, list(methods)
        self.__name__ = function.__name__
        signature = inspect.signature(function)
        self.__signature__ = signature.replace(parameters=[p for p in signature.parameters.values() if p.name != "methods"])
        self.__annotations__ = {k: v for k, v in function.__annotations__.items() if k != "methods"}
        self.__globals__ = function.__globals__

    def __reduce__(self):
        return WithMethods, (self.function, self.methods)

    def __call__(self, *inputs):
        return self.function(*inputs, methods=self.methods)


def create_pipeline(methods: list[str] | None = None, **kwargs) -> Pipeline:
    """Every method's tables combined into long tables, then one report over all methods."""
    methods = methods or method_names()
    combine = [
        Node(combine_tables, inputs=[f"{m}.{table}" for m in methods], outputs=combined, name=f"combine_{table}")
        for table, combined in COMBINED.items()
    ]
    compare, plot_final = (WithMethods(f, methods) for f in (compare_similarities, plot_final_similarities))
    finals = [f"{m}.refined_similarity" for m in methods]
    return Pipeline(
        [
            *combine,
            Node(
                evaluate_methods,
                inputs=["predictions", "truth_predictions", "label_matrix", "classes", "crowd_folder"],
                outputs={"accuracy_table": "accuracy_table", "per_annotator": "per_annotator", "metrics": "accuracy_metrics",
                         "accuracy_markdown": "accuracy_markdown", "accuracy_plot": "accuracy_plot"},
                name="evaluate_methods",
            ),
            Node(attention_heatmap, inputs="frame_attention", outputs="attention_plot", name="plot_frame_attention"),
            Node(training_curves, inputs="training_history", outputs="training_curves_plot", name="plot_training_curves"),
            Node(compare, inputs=["accuracy_metrics", "crowd_folder", "params:methods", "similarity", *finals],
                 outputs="metrics", name="compare_similarities"),
            Node(plot_final, inputs=["crowd_folder", "params:methods", "similarity", *finals],
                 outputs="refined_similarity_heatmap", name="plot_final_similarities"),
        ],
        tags=["reporting"],
    )
