"""One Kedro namespace per method of ``methods:`` (parameters_methods.yml): ``<method>.checkpoint``,
``<method>.predictions``, ... all from one node function."""

from functools import partial, update_wrapper

from kedro.pipeline import Node, Pipeline

from simlabel.methods import method_names

from .nodes import train_method

SHARED_INPUTS = {"embeddings", "frames", "label_matrix", "item_split", "similarity", "classes"}
OUTPUTS = ["checkpoint", "predictions", "training_history", "frame_attention", "truth_predictions",
           "imputed_labels", "refined_similarity"]


def method_pipeline(name: str) -> Pipeline:
    """Train method ``name``; its parameters are ``params:methods.<name>``."""
    train = update_wrapper(partial(train_method, method_name=name), train_method)
    node = Node(
        train,
        inputs={**{name: name for name in SHARED_INPUTS}, "training": "params:training",
                "similarity_params": "params:similarity", "method": "params:method"},
        outputs={key: key for key in OUTPUTS},
        name="train",
        tags=["training"],
    )
    return Pipeline(
        [node], namespace=name, inputs=SHARED_INPUTS,
        parameters={"params:training": "params:training", "params:similarity": "params:similarity",
                    "params:method": f"params:methods.{name}"},
    )


def create_pipeline(methods: list[str] | None = None, **kwargs) -> Pipeline:
    return sum((method_pipeline(name) for name in methods or method_names()), Pipeline([]))
