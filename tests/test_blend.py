"""``blend_with``: a method's per-annotator probabilities averaged with a crowd baseline's."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from simlabel.experiment import Split, run_method
from simlabel.models.factory import BlendedAnnotators
from simlabel.training.config import TrainConfig
from simlabel.training.loop import model_from_checkpoint
from tests.test_one_path import features_set

TRAINING = {"max_epochs": 6, "patience": 6, "hidden": 16, "device": "cpu", "batch_size": 16, "seed": 2}


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


def test_blend_is_the_mean_of_the_method_and_the_crowd_baseline_trained_alone():
    tokens, label_matrix = features_set(seed=4)
    labels = label_matrix.to_numpy()
    split = Split.draw(label_matrix.index, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=1)
    similarity = np.full((labels.shape[1],) * 2, 0.5)
    method = TrainConfig.from_params(TRAINING, {"soft_label_source": "mixed"})
    rows = np.flatnonzero(split.test)

    own = run_method(tokens, labels, split, similarity, 3, method)
    crowd = run_method(tokens, labels, split, similarity, 3, dataclasses.replace(method, crowd_baseline="dawid_skene"))
    blended = run_method(tokens, labels, split, similarity, 3, dataclasses.replace(method, blend_with="dawid_skene"))

    torch.testing.assert_close(_probs(blended, rows), (_probs(own, rows) + _probs(crowd, rows)) / 2)
    assert not torch.allclose(_probs(own, rows), _probs(crowd, rows), atol=1e-3)  # the blend is not one of them
    assert blended.history.drop(columns="seconds").equals(own.history.drop(columns="seconds"))
    # A checkpoint rebuilds the blend from its constructor arguments.
    payload = {"model_args": blended.model_args, "state_dict": blended.model.state_dict()}
    rebuilt = model_from_checkpoint(payload)
    inputs = torch.from_numpy(tokens[rows])
    torch.testing.assert_close(rebuilt(inputs).exp(), _probs(blended, rows))


def test_blend_keeps_separate_training_states(tmp_path):
    tokens, label_matrix = features_set(seed=4)
    split = Split.draw(label_matrix.index, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=1)
    config = TrainConfig.from_params(TRAINING, {"blend_with": "consensus", "state_path": str(tmp_path / "m.pt")})
    first = run_method(tokens, label_matrix.to_numpy(), split, np.zeros((6, 6)), 3, config)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "m.pt.consensus"]
    # Resuming both finished states (a shared file would raise StaleStateError) gives the same model.
    resumed = run_method(tokens, label_matrix.to_numpy(), split, np.zeros((6, 6)), 3, dataclasses.replace(config, resume=True))
    rows = np.flatnonzero(split.test)
    torch.testing.assert_close(_probs(resumed, rows), _probs(first, rows))


def test_blend_options_are_validated():
    with pytest.raises(ValueError, match="blend_with must be one of"):
        TrainConfig.from_params({"blend_with": "majority"})
    with pytest.raises(ValueError, match="blend_with needs crowd_baseline: none"):
        TrainConfig.from_params({"blend_with": "dawid_skene", "crowd_baseline": "consensus"})


def test_a_method_setting_one_architecture_option_keeps_the_others():
    base = {"architecture_options": {"madl": {"confusion": "full", "embedding_dim": 16}, "padl": {"n_samples": 8}}}
    config = TrainConfig.from_params(base, {"architecture_options": {"madl": {"embedding_dim": 4}}})
    assert config.architecture_options == {"madl": {"confusion": "full", "embedding_dim": 4}, "padl": {"n_samples": 8}}
