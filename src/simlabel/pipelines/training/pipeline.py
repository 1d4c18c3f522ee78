"""One Kedro namespace per method of ``methods:`` (parameters_methods.yml): ``<method>.checkpoint``,
``<method>.predictions``, ... A method trains (``train_method``); a blend (``blend_of``) is a node
over its members' checkpoints (``blend_method``), so a member listed as a method is trained once.
Members that are crowd baselines get their own namespace too (not reported)."""

from kedro.pipeline import Node, Pipeline

from simlabel.methods import training_plan
from simlabel.pipelines.bound import BoundFunction

from .nodes import blend_method, train_method

SHARED_INPUTS = {"embeddings", "frames", "labels", "item_split", "similarity", "classes"}
OUTPUTS = ["checkpoint", "predictions", "training_history", "frame_attention", "truth_predictions",
           "imputed_labels", "refined_similarity"]


class MethodTrainer(BoundFunction):
    """``train_method`` (or ``blend_method``) for one method (tests/e2e/test_dvc_notebook_viz.py
    checks that ParallelRunner's workers name it)."""

    def __init__(self, method_name: str, members: list[str] | None = None):
        self.method_name, self.members = method_name, members
        if members:
            super().__init__(blend_method, method_name=method_name, members=members)
        else:
            super().__init__(train_method, method_name=method_name)

    def __reduce__(self):  # pickled by name (ParallelRunner), rebuilt in the worker
        return MethodTrainer, (self.method_name, self.members)


def method_pipeline(name: str, group: str = "methods") -> Pipeline:
    """Train method ``name``; its parameters are ``params:<group>.<name>``."""
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
                    "params:method": f"params:{group}.{name}"},
    )


def blend_pipeline(name: str, members: list[str]) -> Pipeline:
    """Blend the trained ``members`` into method ``name`` (``blend_method``)."""
    member_inputs = {f"member_{k}_checkpoint": f"{m}.checkpoint" for k, m in enumerate(members)}
    node = Node(
        MethodTrainer(name, members),
        inputs=["embeddings", "frames", "labels", "item_split", "similarity", "classes", *member_inputs],
        outputs={key: key for key in OUTPUTS},
        name="blend",
        tags=["training"],
    )
    return Pipeline([node], namespace=name, inputs={**{n: n for n in SHARED_INPUTS}, **member_inputs})


def create_pipeline(methods: list[str] | None = None, **kwargs) -> Pipeline:
    plan, blends = training_plan()
    if methods is not None:  # only these (and the members of their blends)
        wanted = set(methods) | {m for name in methods for m in blends.get(name, ())}
        plan = [(name, group) for name, group in plan if name in wanted]
    return sum(
        (blend_pipeline(name, blends[name]) if name in blends else method_pipeline(name, group) for name, group in plan),
        Pipeline([]),
    )
