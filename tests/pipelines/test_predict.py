import numpy as np
import pandas as pd
import pytest
import torch

from simlabel.pipelines.predict.nodes import predict_annotators
from simlabel.pipelines.training.nodes import checkpoints, fit
from simlabel.training.loop import model_from_checkpoint


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    n_items, n_annotators = 60, 3
    embeddings = rng.normal(size=(n_items, 2, 6)).astype(np.float32)
    values = np.where(rng.random((n_items, n_annotators)) < 0.5, rng.integers(0, 3, (n_items, n_annotators)), -1)
    index = pd.Index([f"i{k}" for k in range(n_items)], name="item_id")
    label_matrix = pd.DataFrame(values, index=index, columns=["a", "b", "c"])
    split = pd.DataFrame({"item_id": index, "split": np.where(np.arange(n_items) < 40, "train", "val")})
    similarity = pd.DataFrame(np.full((3, 3), 0.5), index=label_matrix.columns, columns=label_matrix.columns)
    training = {"architectures": ["heads", "madl"], "max_epochs": 3, "hidden": 8, "device": "cpu"}
    fitted = fit(embeddings, None, label_matrix, split, similarity, ["x", "y", "z"], training, {"min_overlap": 2})
    return fitted, embeddings


def test_checkpoint_rebuilds_the_trained_model(trained):
    fitted, embeddings = trained
    for architecture, payload in checkpoints(fitted).items():
        rebuilt = model_from_checkpoint(payload)
        x = torch.from_numpy(embeddings)
        with torch.no_grad():
            torch.testing.assert_close(rebuilt(x), fitted.results[architecture].model.eval()(x))


def test_predict_writes_every_annotator_for_every_new_item(trained):
    fitted, embeddings = trained
    payload = checkpoints(fitted)
    items = pd.DataFrame({"item_id": ["n1", "n2"]})
    out = predict_annotators({}, payload, {}, embeddings[:2], np.zeros((0,)), items, {"branch": "simlabel", "architecture": "madl"})
    assert list(out.columns) == ["item_id", "annotator_id", "label", "label_index", "probability"]
    assert len(out) == 6 and out["item_id"].tolist()[:3] == ["n1"] * 3 and out["annotator_id"].tolist()[:3] == ["a", "b", "c"]
    with torch.no_grad():
        probs = fitted.results["madl"].model.eval()(torch.from_numpy(embeddings[:2])).exp().numpy()
    np.testing.assert_allclose(out["probability"], probs.max(-1).ravel(), rtol=1e-5)
    assert set(out["label"]) <= {"x", "y", "z"}
    with pytest.raises(ValueError, match="trained on"):
        predict_annotators({}, payload, {}, embeddings[:2, :1], np.zeros((0,)), items, {"branch": "simlabel", "architecture": None})
    with pytest.raises(ValueError, match="branch"):
        predict_annotators({}, payload, {}, embeddings[:2], np.zeros((0,)), items, {"branch": "best"})


def test_training_state_is_written_per_branch_and_architecture(tmp_path, trained):
    fitted, embeddings = trained
    label_matrix = fitted.label_matrix
    split = fitted.split.rename("split").reset_index()
    similarity = pd.DataFrame(np.full((3, 3), 0.5), index=label_matrix.columns, columns=label_matrix.columns)
    training = {"architectures": ["heads"], "max_epochs": 2, "hidden": 8, "device": "cpu", "state_dir": str(tmp_path)}
    fit(embeddings, None, label_matrix, split, similarity, ["x", "y", "z"], training, {"min_overlap": 2}, {"branch": "skip"})
    state = torch.load(tmp_path / "skip" / "heads.pt", weights_only=False)
    assert state["epoch"] == 2 and len(state["history"]) == 2
