"""``blend_of``: a method whose predictions are the mean of other methods' probabilities; the
members are trained once (as methods of their own) and blended in the main pipeline and in
paper_tables alike."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from simlabel.core.labels import LabelTable, split_items
from simlabel.errors import UserError
from simlabel.evaluation import Run, run_experiment
from simlabel.experiment import Split, blend, run_method
from simlabel.methods import blend_members, methods_to_train
from simlabel.models.factory import BlendedAnnotators
from simlabel.pipelines.predict.nodes import predict_annotators
from simlabel.pipelines.similarity.nodes import compute_similarity
from simlabel.pipelines.training.nodes import blend_method, train_method
from simlabel.training.config import TrainConfig
from simlabel.training.loop import model_from_checkpoint
from tests.test_one_path import features_set

TRAINING = {"max_epochs": 6, "patience": 6, "hidden": 16, "device": "cpu", "batch_size": 16, "seed": 2}
MEMBERS = {"mixed": {"soft_label_source": "mixed"}, "shrunk": {"similarity_estimator": "shrunk_kappa"},
           "dawid_skene": {"crowd_baseline": "dawid_skene"}}


class Fixed(nn.Module):
    def __init__(self, probs):
        super().__init__()
        self.register_buffer("log_p", torch.log(torch.tensor(probs)))

    def forward(self, inputs):
        return self.log_p.expand(len(inputs), -1, -1)


def test_blended_annotators_average_probabilities_by_hand():
    one, two = [[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]], [[[0.1, 0.6, 0.3], [0.3, 0.3, 0.4]]]
    blended = BlendedAnnotators([Fixed(one), Fixed(two)])(torch.zeros(2, 1, 4)).exp()
    expected = torch.tensor([[[0.4, 0.4, 0.2], [0.2, 0.2, 0.6]]]).expand(2, -1, -1)
    torch.testing.assert_close(blended, expected)
    assert not hasattr(BlendedAnnotators([Fixed(one), Fixed(two)]), "truth_log_proba")
    three = BlendedAnnotators([Fixed(one), Fixed(two), Fixed([[[0.1, 0.1, 0.8], [0.0, 0.3, 0.7]]])])
    torch.testing.assert_close(three(torch.zeros(1, 1, 4)).exp()[0], torch.tensor([[0.3, 0.3, 0.4], [0.4 / 3, 0.7 / 3, 1.9 / 3]]))


def test_a_blend_estimates_the_true_class_where_every_member_does():
    class WithTruth(Fixed):
        def truth_log_proba(self, inputs):
            return self.log_p[:, 0].expand(len(inputs), -1)

    one, two = [[[0.7, 0.2, 0.1]]], [[[0.1, 0.6, 0.3]]]
    truth = BlendedAnnotators([WithTruth(one), WithTruth(two)]).truth_log_proba(torch.zeros(2, 1, 4)).exp()
    torch.testing.assert_close(truth, torch.tensor([[0.4, 0.4, 0.2]] * 2))
    assert not hasattr(BlendedAnnotators([WithTruth(one), Fixed(two)]), "truth_log_proba")


def _probs(result, rows):
    return torch.cat([log_p.exp() for _, log_p in result.log_proba(rows)])


def _members(tokens, labels, split):
    similarity = np.full((labels.shape[1],) * 2, 0.5)
    configs = {name: TrainConfig.from_params(TRAINING, overrides) for name, overrides in MEMBERS.items()}
    return {name: run_method(tokens, labels, split, similarity, 3, config) for name, config in configs.items()}


def test_blend_is_the_mean_of_its_members_and_rebuilds_from_its_checkpoint():
    tokens, label_matrix = features_set(seed=4)
    split = Split.draw(label_matrix.index, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=1)
    members = _members(tokens, label_matrix.to_numpy(), split)
    rows = np.flatnonzero(split.test)
    blended = blend(list(members.values()))
    probs = {name: _probs(result, rows) for name, result in members.items()}
    torch.testing.assert_close(_probs(blended, rows), sum(probs.values()) / 3)
    assert not torch.allclose(probs["mixed"], probs["dawid_skene"], atol=1e-3)  # the blend is not one of them
    assert blended.history is members["mixed"].history
    payload = {"model_args": blended.model_args, "state_dict": blended.model.state_dict()}
    rebuilt = model_from_checkpoint(payload)
    torch.testing.assert_close(rebuilt(torch.from_numpy(tokens[rows])).exp(), _probs(blended, rows))


def test_paper_tables_reuse_members_run_earlier_and_train_the_others(monkeypatch):
    tokens, label_matrix = features_set(seed=4)
    fractions = {"train": 0.6, "val": 0.2, "test": 0.2}
    trained = []
    original = run_method

    def counting(*args, **kwargs):
        trained.append(args[-1].run_name)
        return original(*args, **kwargs)

    monkeypatch.setattr("simlabel.evaluation.run_method", counting)
    blend_run = {"blend_of": ["mixed", "dawid_skene"]}
    runs = [Run("heads", 0.0, seed, name, overrides) for seed in (0, 1)
            for name, overrides in (("dawid_skene", MEMBERS["dawid_skene"]), ("blend", blend_run))]
    results = pd.concat(run_experiment(tokens, label_matrix.to_numpy(), label_matrix.index, 3, runs, TRAINING,
                                       {"min_overlap": 2}, fractions, named=MEMBERS))
    # dawid_skene is a run of its own (reused by the blend); mixed is trained for the blend only.
    assert trained == ["dawid_skene seed 0", "mixed seed 0", "dawid_skene seed 1", "mixed seed 1"]
    # The blend's scores are those of the mean of its members trained alone on the same split.
    split = Split.draw(label_matrix.index, fractions, 1)
    similarity = compute_similarity(LabelTable.from_matrix(label_matrix).to_frame(), split_items(label_matrix.index, fractions, 1), ["a", "b", "c"],
                                    {"min_overlap": 2})
    alone = [run_method(tokens, label_matrix.to_numpy(), split, similarity, 3,
                        TrainConfig.from_params(TRAINING, MEMBERS[name], {"seed": 1})) for name in ("mixed", "dawid_skene")]
    test_labels = label_matrix.to_numpy()[split.test]
    predicted = blend(alone).model(torch.from_numpy(tokens[split.test])).argmax(-1).numpy()
    expected = ((predicted == test_labels) & (test_labels >= 0)).sum(0)
    row = results[(results["seed"] == 1) & (results["method"] == "blend")]
    np.testing.assert_array_equal(row["n_correct"].to_numpy(), expected)


def test_the_blend_node_blends_the_members_checkpoints(tmp_path):
    tokens, label_matrix = features_set(seed=4)
    labels = LabelTable.from_matrix(label_matrix).to_frame()
    classes = ["a", "b", "c"]
    item_split = split_items(label_matrix.index, {"train": 0.6, "val": 0.2, "test": 0.2}, 1)
    similarity = compute_similarity(labels, item_split, classes, {"min_overlap": 2})
    outputs = {name: train_method(tokens, None, labels, item_split, similarity, classes, TRAINING,
                                  {"min_overlap": 2}, overrides, method_name=name) for name, overrides in MEMBERS.items()}
    blended = blend_method(tokens, None, labels, item_split, similarity, classes,
                           *(outputs[name]["checkpoint"] for name in MEMBERS), method_name="blend", members=list(MEMBERS))
    # Every labelled entry's prediction: the argmax of the members' mean probability.
    models = [model_from_checkpoint(outputs[name]["checkpoint"]["heads"]) for name in MEMBERS]
    with torch.no_grad():
        mean = sum(model(torch.from_numpy(tokens)).exp() for model in models) / 3
    rows = label_matrix.index.get_indexer(blended["predictions"]["item_id"])
    cols = label_matrix.columns.get_indexer(blended["predictions"]["annotator_id"])
    np.testing.assert_array_equal(blended["predictions"]["predicted"], mean[rows, cols].argmax(-1).numpy())
    np.testing.assert_allclose(blended["predictions"]["probability"], mean[rows, cols].max(-1).values.numpy(), rtol=1e-5)
    assert set(blended["predictions"]["method"]) == {"blend"} and blended["training_history"].empty
    assert blended["imputed_labels"].empty and blended["refined_similarity"].empty
    # Its checkpoint predicts like the blend, and names its members' configs.
    payload = blended["checkpoint"]["heads"]
    assert payload["config"]["blend_of"] == list(MEMBERS) and len(payload["config"]["members"]) == 3
    val = blended["predictions"].query("split == 'val'")
    assert payload["best_val_accuracy"] == pytest.approx(
        (val["predicted"] == val["label"]).groupby(val["annotator_id"]).mean().mean())
    new = predict_annotators(blended["checkpoint"], tokens[:5], None, pd.DataFrame({"item_id": label_matrix.index[:5]}), {})
    np.testing.assert_array_equal(new["label_index"].to_numpy(), mean[:5].argmax(-1).numpy().ravel())


def test_blend_blocks_are_validated():
    methods = {"a": {}, "b": {"soft_label_source": "mixed"}}
    assert blend_members({**methods, "ab": {"blend_of": ["a", "dawid_skene"]}}, {"dawid_skene": {}}) == {"ab": ["a", "dawid_skene"]}
    for block, message in (
        ({"blend_of": ["a", "nope"]}, "'nope' is not a method of methods: or crowd_baselines:"),
        ({"blend_of": ["a"]}, "at least two different method names"),
        ({"blend_of": ["a", "a"]}, "at least two different method names"),
        ({"blend_of": "a b"}, "at least two different method names"),
        ({"blend_of": ["a", "b"], "seed": 3}, "a blend has no other options"),
        ({"blend_of": ["a", "other"]}, "'other' is itself a blend"),
    ):
        with pytest.raises(UserError, match=message):
            blend_members({**methods, "other": {"blend_of": ["a", "b"]}, "x": block})


def test_members_that_are_crowd_baselines_are_trained_once_after_the_methods():
    methods = {"a": {}, "ab": {"blend_of": ["a", "dawid_skene"]}, "ab2": {"blend_of": ["dawid_skene", "a"]}}
    assert methods_to_train(methods, {"dawid_skene": {}, "consensus": {}}) == [
        ("a", "methods"), ("ab", "methods"), ("ab2", "methods"), ("dawid_skene", "crowd_baselines")]


def test_a_method_setting_one_architecture_option_keeps_the_others():
    base = {"architecture_options": {"madl": {"confusion": "full", "embedding_dim": 16}, "padl": {"n_samples": 8}}}
    config = TrainConfig.from_params(base, {"architecture_options": {"madl": {"embedding_dim": 4}}})
    assert config.architecture_options == {"madl": {"confusion": "full", "embedding_dim": 4}, "padl": {"n_samples": 8}}


def test_the_blend_node_refuses_a_member_trained_on_other_data():
    tokens, label_matrix = features_set(seed=4)
    labels = LabelTable.from_matrix(label_matrix).to_frame()
    classes = ["a", "b", "c"]
    item_split = split_items(label_matrix.index, {"train": 0.6, "val": 0.2, "test": 0.2}, 1)
    similarity = compute_similarity(labels, item_split, classes, {"min_overlap": 2})
    def trained(name, split):
        return train_method(tokens, None, labels, split, similarity, classes, TRAINING, {"min_overlap": 2},
                            MEMBERS[name], method_name=name)["checkpoint"]

    mixed, ds = trained("mixed", item_split), trained("dawid_skene", item_split)
    blend_method(tokens, None, labels, item_split, similarity, classes, mixed, ds, method_name="blend",
                 members=["mixed", "dawid_skene"])  # members of this split: fine
    # A member's checkpoint left from another split of the same labels.
    stale = trained("dawid_skene", split_items(label_matrix.index, {"train": 0.6, "val": 0.2, "test": 0.2}, 2))
    with pytest.raises(ValueError, match="member dawid_skene.s checkpoint was trained on other labels, split or classes"):
        blend_method(tokens, None, labels, item_split, similarity, classes, mixed, stale,
                     method_name="blend", members=["mixed", "dawid_skene"])
