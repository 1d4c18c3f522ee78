"""One Kedro namespace per method of ``methods:`` (parameters_methods.yml): ``<method>.checkpoint``,
``<method>.predictions``, ... all from one node function."""

import inspect

from kedro.pipeline import Node, Pipeline

from simlabel.methods import method_names

from .nodes import train_method

SHARED_INPUTS = {"embeddings", "frames", "label_matrix", "item_split", "similarity", "classes"}
OUTPUTS = ["checkpoint", "predictions", "training_history", "frame_attention", "truth_predictions",
           "imputed_labels", "refined_similarity"]


class MethodTrainer:
    """``train_method`` for one method. A class, not ``functools.partial``: with a partial
    (even with ``update_wrapper``), Kedro's ParallelRunner workers could not name the function
    and warned once per method; an instance keeps ``__name__`` and the signature Kedro checks
    the inputs against (tests/e2e/test_dvc_notebook_viz.py)."""

    def __init__(self, method_name: str):
        self.method_name = method_name
        self.__name__ = "train_method"
        signature = inspect.signature(train_method)
        self.__signature__ = signature.replace(
            parameters=[p for p in signature.parameters.values() if p.name != "method_name"]
        )

    def __call__(self, **inputs):
        return train_method(**inputs, method_name=self.method_name)


def method_pipeline(name: str) -> Pipeline:
    """Train method ``name``; its parameters are ``params:methods.<name>``."""
    node = Node(
        MethodTrainer(name),
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
