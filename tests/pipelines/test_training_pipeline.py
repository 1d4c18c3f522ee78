"""The training node's function keeps its name and train_method's inputs through pickling (the
DVC e2e test checks that ParallelRunner's workers no longer warn about an unnamed function)."""

from __future__ import annotations

import inspect
import pickle
import warnings

from simlabel.pipelines.training.nodes import train_method
from simlabel.pipelines.training.pipeline import MethodTrainer, method_pipeline


def test_method_trainer_pickles_with_its_name_and_signature():
    trainer = pickle.loads(pickle.dumps(MethodTrainer("simlabel_blend")))
    assert trainer.method_name == "simlabel_blend" and trainer.__name__ == "train_method"
    expected = [p for p in inspect.signature(train_method).parameters if p != "method_name"]
    assert list(inspect.signature(trainer).parameters) == expected
    node = pickle.loads(pickle.dumps(method_pipeline("simlabel_blend").nodes[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Kedro warns when it cannot name a node's function
        assert "train_method(" in str(node)
