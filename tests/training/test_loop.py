import time

import numpy as np
import pytest
import torch

from simlabel.core.kappa import kappa_matrix
from simlabel.core.metrics import mean_accuracy
from simlabel.training.loop import TrainConfig, predict_labels, train_annotator_models


def grouped_dataset(seed=0, n_items=300, n_annotators=6, n_classes=4, dim=16, labelled=0.3):
    """Two groups of annotators: group 0 labels the true class, group 1 a fixed permutation."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, n_classes, n_items)
    centres = rng.normal(0, 2.0, (n_classes, dim))
    tokens = (centres[truth] + rng.normal(0, 1.0, (n_items, dim))).astype(np.float32)[:, None, :]
    permutation = np.roll(np.arange(n_classes), 1)
    labels = np.where(np.arange(n_annotators) < n_annotators // 2, truth[:, None], permutation[truth][:, None])
    labels = np.where(rng.random(labels.shape) < labelled, labels, -1)
    split = rng.choice(3, n_items, p=[0.6, 0.2, 0.2])
    return tokens, labels, split == 0, split == 1, split == 2, n_classes


def train(data, **overrides):
    tokens, labels, train_rows, val_rows, _, n_classes = data
    similarity = kappa_matrix(np.where(train_rows[:, None], labels, -1), n_classes, 2)
    config = TrainConfig.from_params({"max_epochs": 30, "patience": 10, "hidden": 32, "device": "cpu"}, overrides)
    return train_annotator_models(tokens, labels, train_rows, val_rows, similarity, n_classes, config)


@pytest.fixture(scope="module")
def data():
    return grouped_dataset()


def test_learns_each_annotators_own_tendency(data):
    tokens, labels, _, _, test_rows, _ = data
    result = train(data)
    predicted = predict_labels(result.model, torch.from_numpy(tokens), np.flatnonzero(test_rows))
    # One consensus label per item would score about 0.5 here; per-annotator models score high.
    assert mean_accuracy(predicted, labels[test_rows]) > 0.9
    assert result.best_val_accuracy == pytest.approx(result.history["val_mean_accuracy"].max())
    assert result.history.loc[result.best_epoch - 1, "val_mean_accuracy"] == result.best_val_accuracy


def test_same_seed_same_result(data):
    first, second = train(data, seed=3), train(data, seed=3)
    np.testing.assert_allclose(first.history["loss"], second.history["loss"])
    for key, value in first.model.state_dict().items():
        torch.testing.assert_close(value, second.model.state_dict()[key])


def test_confidence_cycling_imputes_and_refines_similarity_exactly(data):
    _, labels, train_rows, _, _, n_classes = data
    result = train(data, cycling=True, threshold=0.3, learning_rate=0.01, refresh="paper", impute_from="soft_label")
    imputed = result.imputed
    assert (imputed.label != -1).sum() > 0
    observed_train = np.where(train_rows[:, None], labels, -1)
    assert (imputed.label[observed_train != -1] == -1).all(), "an observed label was overwritten"
    assert (imputed.label[~train_rows] == -1).all(), "only training items are imputed"
    assert (imputed.confidence[imputed.label != -1] >= 0.3).all()
    refined = kappa_matrix(imputed.merged_with(observed_train), n_classes, 2)
    np.testing.assert_allclose(result.similarity, refined, atol=1e-6)
    assert result.history["imputed_total"].iloc[-1] == (imputed.label != -1).sum()


def test_skip_and_simlabel_differ_only_by_lambda(data):
    skip = train(data, unlabeled_weight=0.0)
    assert (skip.history["kl"] == 0).all()
    simlabel = train(data)
    assert (simlabel.history["kl"] > 0).all()


def test_config_is_validated():
    with pytest.raises(ValueError, match="unknown training parameters \\['learning_rte'\\]"):
        TrainConfig.from_params({"learning_rte": 0.1})
    with pytest.raises(ValueError, match="architecture"):
        TrainConfig.from_params({"architecture": "transformer"})
    with pytest.raises(ValueError, match="soft_label_source"):
        TrainConfig.from_params({"soft_label_source": "votes"})


def test_finetuning_the_backbone_end_to_end():
    rng = np.random.default_rng(0)
    n_items, n_annotators = 6, 2
    frames = rng.integers(0, 255, (n_items, 1, 224, 224, 3), dtype=np.uint8)
    tokens = rng.normal(size=(n_items, 1, 1280)).astype(np.float32)
    labels = rng.integers(0, 2, (n_items, n_annotators))
    rows = np.array([True] * 4 + [False] * 2)
    config = TrainConfig.from_params(
        {"max_epochs": 1, "batch_size": 4, "hidden": 8, "device": "cpu", "finetune_backbone": True}
    )
    result = train_annotator_models(tokens, labels, rows, ~rows, np.zeros((2, 2)), 2, config, frames=frames)
    encoder = result.model.encoder
    from simlabel.models.backbones import load_backbone

    pretrained = load_backbone().state_dict()
    changed = [k for k, v in encoder.state_dict().items() if v.dtype.is_floating_point and not torch.equal(v, pretrained[k])]
    assert changed, "the encoder's weights did not move"
    log_p = torch.cat([batch for _, batch in result.log_proba(np.arange(n_items))])
    assert log_p.shape == (n_items, n_annotators, 2)
    torch.testing.assert_close(log_p.exp().sum(-1), torch.ones(n_items, n_annotators))
    with pytest.raises(ValueError, match="frames"):
        train_annotator_models(tokens, labels, rows, ~rows, np.zeros((2, 2)), 2, config)


@pytest.mark.parametrize("architecture", ["heads", "madl"])
@pytest.mark.parametrize("source", ["predictions", "mixed"])
def test_sampling_every_soft_entry_gives_the_dense_loss(architecture, source):
    from simlabel.core.label_rows import LabelRows
    from simlabel.core.losses import simlabel_loss
    from simlabel.core.soft_labels import soft_labels
    from simlabel.models.annotators import build_model
    from simlabel.training.targets import SampledTargets

    torch.manual_seed(0)
    n_items, n_annotators, n_classes, dim = 12, 5, 3, 6
    model = build_model(architecture, in_dim=dim, n_annotators=n_annotators, n_classes=n_classes,
                        feature_mean=torch.zeros(dim), feature_std=torch.ones(dim), hidden=8, dropout=0.0).eval()
    tokens = torch.randn(n_items, 1, dim)
    labels = torch.randint(0, n_classes, (n_items, n_annotators))
    labels[torch.rand(n_items, n_annotators) < 0.6] = -1
    labels[0] = -1  # an item nobody labelled
    similarity = torch.rand(n_annotators, n_annotators)
    log_p = model(tokens)
    p_soft, has_soft = soft_labels(log_p.exp(), labels, similarity, source)
    dense, dense_parts = simlabel_loss(log_p, labels, p_soft, has_soft, 1.0)
    rows = LabelRows.from_matrix(labels)
    sampled, sampled_parts = simlabel_loss(
        *SampledTargets(source, n_annotators, torch.Generator().manual_seed(0))(
            model, tokens, np.arange(n_items), rows, rows, similarity, None
        )[:4], 1.0
    )
    assert int(sampled_parts["n_observed"]) == int(dense_parts["n_observed"])
    assert int(sampled_parts["n_soft"]) == int(dense_parts["n_soft"])
    torch.testing.assert_close(sampled, dense)


@pytest.mark.parametrize("source", ["predictions", "mixed"])
def test_sampled_imputed_targets_are_hard_targets_as_in_the_dense_loss(source):
    """Under ``imputed_as_targets`` an imputed entry gets cross-entropy on its imputed label,
    is never drawn as a soft entry, and soft labels still come from the observed labellers."""
    from simlabel.core.label_rows import LabelRows
    from simlabel.core.losses import simlabel_loss
    from simlabel.core.soft_labels import soft_labels
    from simlabel.models.annotators import build_model
    from simlabel.training.targets import SampledTargets

    torch.manual_seed(1)
    n_items, n_annotators, n_classes, dim = 14, 6, 3, 5
    model = build_model("heads", in_dim=dim, n_annotators=n_annotators, n_classes=n_classes,
                        feature_mean=torch.zeros(dim), feature_std=torch.ones(dim), hidden=8, dropout=0.0).eval()
    tokens = torch.randn(n_items, 1, dim)
    labels = torch.randint(0, n_classes, (n_items, n_annotators))
    labels[torch.rand(n_items, n_annotators) < 0.6] = -1
    hard = torch.where((labels < 0) & (torch.rand(n_items, n_annotators) < 0.4),
                       torch.randint(0, n_classes, (n_items, n_annotators)), labels)  # imputed entries
    assert ((hard >= 0) & (labels < 0)).sum() > 5
    similarity = torch.rand(n_annotators, n_annotators)
    log_p = model(tokens)
    p_soft, has_soft = soft_labels(log_p.exp(), labels, similarity, source)
    dense, dense_parts = simlabel_loss(log_p, hard, p_soft, has_soft, 1.0)
    sampled, sampled_parts = simlabel_loss(
        *SampledTargets(source, n_annotators, torch.Generator().manual_seed(0))(
            model, tokens, np.arange(n_items), LabelRows.from_matrix(labels), LabelRows.from_matrix(hard), similarity, None
        )[:4], 1.0
    )
    assert int(sampled_parts["n_observed"]) == int((hard >= 0).sum()) == int(dense_parts["n_observed"])
    assert int(sampled_parts["n_soft"]) == int(dense_parts["n_soft"])
    torch.testing.assert_close(sampled, dense)


def test_training_with_sampled_soft_entries(data):
    tokens, labels, _, _, test_rows, _ = data
    result = train(data, soft_entries_per_item=2)
    predicted = predict_labels(result.model, torch.from_numpy(tokens), np.flatnonzero(test_rows))
    assert mean_accuracy(predicted, labels[test_rows]) > 0.9
    assert (result.history["kl"] > 0).all()
    with pytest.raises(ValueError, match="soft_entries_per_item"):
        TrainConfig.from_params({"architecture": "qumatl", "soft_entries_per_item": 4})


def test_sampled_steps_train_on_the_imputations_when_asked(data, monkeypatch):
    from simlabel.training.targets import SampledTargets

    seen = []
    original = SampledTargets.__call__

    def spy(self, model, inputs, rows, labels, targets, similarity, transport):
        seen.append((labels.to_matrix(), targets.to_matrix()))
        return original(self, model, inputs, rows, labels, targets, similarity, transport)

    monkeypatch.setattr(SampledTargets, "__call__", spy)
    _, labels, train_rows, _, _, _ = data
    result = train(data, soft_entries_per_item=2, cycling=True, imputed_as_targets=True, threshold=0.3,
                   learning_rate=0.01, refresh="paper", impute_from="soft_label", max_epochs=4, patience=10)
    observed = np.where(train_rows[:, None], labels, -1)
    np.testing.assert_array_equal(seen[0][0], observed)
    np.testing.assert_array_equal(seen[0][1], observed)  # nothing imputed before the first cycle
    last_labels, last_targets = seen[-1]
    np.testing.assert_array_equal(last_labels, observed)
    imputed_in_targets = last_targets != observed
    assert imputed_in_targets.sum() > 0 and (observed[imputed_in_targets] == -1).all()
    assert (result.imputed.label[imputed_in_targets] != -1).all()


def test_resume_refuses_a_state_saved_by_another_run(data, tmp_path):
    from simlabel.training.state import StaleStateError

    state = tmp_path / "state.pt"
    first = train(data, max_epochs=3, state_path=str(state))
    assert torch.load(state, weights_only=True)["epoch"] == 3
    # Same run: resuming a finished run trains nothing more and gives the same model.
    again = train(data, max_epochs=3, state_path=str(state), resume=True)
    for key, value in first.model.state_dict().items():
        torch.testing.assert_close(value, again.model.state_dict()[key])
    with pytest.raises(StaleStateError, match="other data or parameters"):
        train(data, max_epochs=3, state_path=str(state), resume=True, learning_rate=0.005)
    tokens, labels, train_rows, val_rows, test_rows, n_classes = data
    shifted = (tokens, np.roll(labels, 1, axis=0), train_rows, val_rows, test_rows, n_classes)
    with pytest.raises(StaleStateError):
        train(shifted, max_epochs=3, state_path=str(state), resume=True)


def test_no_validation_labels_keeps_the_last_epoch_with_a_warning(data, caplog):
    tokens, labels, train_rows, _, test_rows, n_classes = data
    no_val = np.zeros_like(train_rows)
    result = train((tokens, labels, train_rows, no_val, test_rows, n_classes), max_epochs=4)
    assert len(result.history) == 4 and result.history["val_mean_accuracy"].isna().all()
    assert "no validation labels" in caplog.text


def test_imputing_from_the_annotators_own_predictions(data):
    """impute_from: own_prediction imputes argmax of the missing annotator's own model, not of the
    pooled soft label (which copies the labellers)."""
    from simlabel.core.cycling import ConfidenceCycler
    from simlabel.training.loop import predict_log_proba, prepare_data, propose

    tokens, labels, train_rows, val_rows, _, n_classes = data
    result = train(data, max_epochs=5)
    config = TrainConfig.from_params({"device": "cpu", "cycling": True, "threshold": 0.0, "impute_from": "own_prediction"})
    run = prepare_data(tokens, labels, train_rows, val_rows, config, torch.device("cpu"))
    cycler = ConfidenceCycler(run.train_labels, n_classes, threshold=0.0)
    sim = torch.as_tensor(result.similarity, dtype=torch.float32)
    (rows, cols, imputed, _), predicted = propose(result.model, run, sim, None, cycler, config, 512, 0, 1)
    own = torch.cat([log_p for _, log_p in predict_log_proba(result.model, run.inputs, run.train_items)]).argmax(-1)
    position = {item: k for k, item in enumerate(run.train_items)}
    np.testing.assert_array_equal(imputed, own.numpy()[[position[r] for r in rows], cols])
    assert (run.train_labels[rows, cols] == -1).all() and len(rows) > 0
    # The predictions refresh: models reads, handed over instead of a second pass over the items.
    np.testing.assert_array_equal(predicted, predict_labels(result.model, run.inputs, run.train_items))
    without_counts = ConfidenceCycler(run.train_labels, n_classes, threshold=0.0, track_counts=False)
    chosen, _ = propose(result.model, run, sim, None, without_counts, config, 512, 0, 1)
    for got, expected in zip(chosen, (rows, cols, imputed), strict=False):
        np.testing.assert_array_equal(got, expected)
    assert without_counts.apply(chosen, 1) is None and cycler.apply(chosen, 1) is not None
    np.testing.assert_array_equal(without_counts.imputed.label, cycler.imputed.label)


def test_model_refresh_moves_the_similarity_towards_the_truth():
    """Two groups of annotators (group 1 permutes the classes): the true similarity is ~1 within
    a group and ~0 between. With sparse labels the observed kappa is noisy; refresh: models pulls
    it towards the models' agreement (0.071 -> 0.037 here)."""
    data = grouped_dataset(seed=1, n_items=300, n_annotators=8, labelled=0.12)
    tokens, labels, train_rows, _, _, n_classes = data
    truth = np.where(np.equal.outer(np.arange(8) < 4, np.arange(8) < 4), 1.0, 0.0)
    off = ~np.eye(8, dtype=bool)
    initial = kappa_matrix(np.where(train_rows[:, None], labels, -1), n_classes, 2)
    error = {"initial": np.abs(initial - truth)[off].mean()}
    result = train(data, cycling=True, refresh="models", impute_from="own_prediction", threshold=0.5)
    error["models"] = np.abs(result.similarity - truth)[off].mean()
    assert error["models"] < 0.75 * error["initial"], error


def test_save_throttle_by_hand():
    from simlabel.training.state import SaveThrottle

    throttle = SaveThrottle(share=0.05)
    assert throttle.due(1.0)  # nothing saved yet
    throttle.saved(0.5)  # a save of half an epoch: the next is due after 0.5 * 19 = 9.5 s of training
    assert [throttle.due(1.0) for _ in range(10)] == [False] * 9 + [True]
    throttle.saved(0.01)
    assert not throttle.pending and throttle.due(1.0) and throttle.pending


def test_slow_saves_are_throttled_and_the_last_epoch_is_saved(data, tmp_path, monkeypatch):
    from simlabel.training.state import TrainState

    saved_epochs, real_save = [], TrainState.save

    def slow_save(self, path, run_id, training):
        real_save(self, path, run_id, training)
        saved_epochs.append(self.epoch)
        time.sleep(0.2)  # far more than an epoch of this small run

    monkeypatch.setattr(TrainState, "save", slow_save)
    result = train(data, max_epochs=12, patience=12, state_path=str(tmp_path / "state.pt"))
    assert len(result.history) == 12
    assert saved_epochs[0] == 1 and saved_epochs[-1] == 12 and len(saved_epochs) < 12
    assert torch.load(tmp_path / "state.pt", weights_only=True)["epoch"] == 12


@pytest.mark.parametrize("architecture, options", [("heads", {}), ("madl", {}), ("padl", {"n_samples": 0})])
def test_validation_at_the_labelled_entries_equals_the_dense_mean_accuracy(architecture, options):
    """The sampled mode validates entry by entry (O(labels)); the dense path scores every
    (item, annotator) and masks: the same mean per-annotator accuracy, exactly. (padl's
    Monte-Carlo evaluation draws noise, so it is compared at its mean: n_samples 0.)"""
    from simlabel.core.label_rows import LabelRows
    from simlabel.models.annotators import build_model
    from simlabel.training.loop import mean_accuracy_at_entries

    torch.manual_seed(0)
    tokens, labels, _, val_rows, _, n_classes = grouped_dataset(seed=3, n_annotators=9, labelled=0.25)
    labels = np.where(val_rows[:, None], labels, -1)
    labels[:, 4] = -1  # an annotator without validation labels is left out of the mean
    model = build_model(architecture, in_dim=tokens.shape[-1], n_annotators=9, n_classes=n_classes,
                        feature_mean=torch.zeros(tokens.shape[-1]), feature_std=torch.ones(tokens.shape[-1]), hidden=16,
                        **options)
    inputs, rows = torch.from_numpy(tokens), np.flatnonzero((labels >= 0).any(1))
    expected = mean_accuracy(predict_labels(model, inputs, rows), labels[rows])
    for batch_size in (7, 512):
        assert mean_accuracy_at_entries(model, inputs, LabelRows.from_matrix(labels), rows, batch_size) == expected
    assert 0.0 < expected < 1.0


def test_sampled_training_validates_at_the_entries(data, monkeypatch):
    import simlabel.training.loop as loop

    calls = []
    original = loop.mean_accuracy_at_entries
    monkeypatch.setattr(loop, "mean_accuracy_at_entries", lambda *a, **k: calls.append(1) or original(*a, **k))
    result = train(data, max_epochs=3, soft_entries_per_item=2)
    assert len(calls) == 3 and result.history["val_mean_accuracy"].notna().all()
