import numpy as np
import pandas as pd
import pytest
import torch

from simlabel.core.labels import LabelTable
from simlabel.pipelines.predict.nodes import choose_checkpoint, predict_annotators
from simlabel.pipelines.training.nodes import train_method
from simlabel.training.loop import model_from_checkpoint


def small_problem(n_items=60):
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(n_items, 2, 6)).astype(np.float32)
    values = np.where(rng.random((n_items, 3)) < 0.5, rng.integers(0, 3, (n_items, 3)), -1)
    index = pd.Index([f"i{k}" for k in range(n_items)], name="item_id")
    label_matrix = pd.DataFrame(values, index=index, columns=["a", "b", "c"])
    split = pd.DataFrame({"item_id": index, "split": np.where(np.arange(n_items) < 40, "train", "val")})
    similarity = pd.DataFrame(np.full((3, 3), 0.5), index=label_matrix.columns, columns=label_matrix.columns)
    return embeddings, label_matrix, split, similarity


@pytest.fixture(scope="module")
def trained():
    embeddings, label_matrix, split, similarity = small_problem()
    training = {"architectures": ["heads", "madl"], "max_epochs": 3, "hidden": 8, "device": "cpu"}
    outputs = train_method(embeddings, None, LabelTable.from_matrix(label_matrix).to_frame(), split, similarity, ["x", "y", "z"], training,
                           {"min_overlap": 2}, {}, method_name="simlabel")
    return outputs, embeddings


@pytest.mark.parametrize("method", [{}, {"crowd_baseline": "dawid_skene"}, {"crowd_baseline": "consensus"}])
def test_checkpoint_rebuilds_the_trained_model_from_its_constructor_arguments(method):
    embeddings, label_matrix, split, similarity = small_problem()
    training = {"architectures": ["heads", "qumatl"], "max_epochs": 2, "hidden": 8, "device": "cpu"}
    outputs = train_method(embeddings, None, LabelTable.from_matrix(label_matrix).to_frame(), split, similarity, ["x", "y", "z"], training,
                           {"min_overlap": 2}, method, method_name="m")
    x = torch.from_numpy(embeddings)
    for architecture, payload in outputs["checkpoint"].items():
        args = payload["model_args"]
        assert args["architecture"] == architecture
        assert (args.get("crowd_annotators") or args["n_annotators"]) == 3
        # Loadable as plain tensors and values: no pickled objects.
        saved = torch.load(_round_trip(payload), weights_only=True)
        rebuilt = model_from_checkpoint(saved)
        predictions = outputs["predictions"].query("architecture == @architecture")
        with torch.no_grad():
            log_p = rebuilt(x)
        assert log_p.shape == (len(x), 3, 3)
        rows = label_matrix.index.get_indexer(predictions["item_id"])
        cols = label_matrix.columns.get_indexer(predictions["annotator_id"])
        np.testing.assert_array_equal(log_p.argmax(-1).numpy()[rows, cols], predictions["predicted"])


def _round_trip(payload):
    import io

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    buffer.seek(0)
    return buffer


def test_predict_writes_every_annotator_for_every_new_item(trained):
    outputs, embeddings = trained
    checkpoints = {"simlabel/checkpoint": lambda: outputs["checkpoint"]}
    payload = choose_checkpoint(checkpoints, {"method": "simlabel"})
    items = pd.DataFrame({"item_id": ["n1", "n2"]})
    out = predict_annotators(payload, embeddings[:2], np.zeros((0,)), items, {"architecture": "madl"})
    assert list(out.columns) == ["item_id", "annotator_id", "label", "label_index", "probability"]
    assert len(out) == 6 and out["item_id"].tolist()[:3] == ["n1"] * 3 and out["annotator_id"].tolist()[:3] == ["a", "b", "c"]
    rebuilt = model_from_checkpoint(payload["madl"])
    with torch.no_grad():
        probs = rebuilt(torch.from_numpy(embeddings[:2])).exp().numpy()
    np.testing.assert_allclose(out["probability"], probs.max(-1).ravel(), rtol=1e-5)
    assert set(out["label"]) <= {"x", "y", "z"}
    with pytest.raises(ValueError, match="trained on"):
        predict_annotators(payload, embeddings[:2, :1], np.zeros((0,)), items, {"architecture": None})
    with pytest.raises(ValueError, match="trained methods: \\['simlabel'\\]"):
        choose_checkpoint(checkpoints, {"method": "best"})


def test_training_state_is_written_per_method_and_architecture(tmp_path):
    embeddings, label_matrix, split, similarity = small_problem()
    training = {"architectures": ["heads"], "max_epochs": 2, "hidden": 8, "device": "cpu", "state_dir": str(tmp_path)}
    train_method(embeddings, None, LabelTable.from_matrix(label_matrix).to_frame(), split, similarity, ["x", "y", "z"], training, {"min_overlap": 2},
                 {"unlabeled_weight": 0.0}, method_name="skip")
    state = torch.load(tmp_path / "skip" / "heads.pt", weights_only=True)
    assert state["epoch"] == 2 and len(state["history"]) == 2
