"""The training node's function keeps its name and train_method's inputs through pickling (the
DVC e2e test checks that ParallelRunner's workers no longer warn about an unnamed function)."""

from __future__ import annotations

import inspect
import pickle
import warnings

from simlabel.pipelines.training.nodes import blend_method, train_method
from simlabel.pipelines.training.pipeline import MethodTrainer, blend_pipeline, method_pipeline


def test_method_trainer_pickles_with_its_name_and_signature():
    trainer = pickle.loads(pickle.dumps(MethodTrainer("simlabel")))
    assert trainer.method_name == "simlabel" and trainer.__name__ == "train_method"
    expected = [p for p in inspect.signature(train_method).parameters if p != "method_name"]
    assert list(inspect.signature(trainer).parameters) == expected
    node = pickle.loads(pickle.dumps(method_pipeline("simlabel").nodes[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Kedro warns when it cannot name a node's function
        assert "train_method(" in str(node)


def test_a_blend_node_reads_its_members_outputs_and_keeps_its_name():
    node = pickle.loads(pickle.dumps(blend_pipeline("blend", ["a", "dawid_skene"]).nodes[0]))
    assert node.name == "blend.blend" and node.func.__name__ == "blend_method"
    assert node.inputs[-2:] == ["a.checkpoint", "dawid_skene.checkpoint"]
    assert node.outputs[0].startswith("blend.")
    signature = [p for p in inspect.signature(blend_method).parameters if p not in ("method_name", "members")]
    assert list(inspect.signature(node.func).parameters) == signature


def test_kedro_reads_the_type_hints_of_the_node_functions():
    import typing

    import pandas as pd

    for trainer in (MethodTrainer("simlabel"), MethodTrainer("blend", ["a", "b"])):
        hints = typing.get_type_hints(trainer)
        assert hints["labels"] is pd.DataFrame and "method_name" not in hints and hints["return"] is dict
