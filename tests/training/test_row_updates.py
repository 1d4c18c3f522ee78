"""Row updates of the per-annotator parameters (``head_updates: rows``, ``AnnotatorRowsAdamW``):
AdamW's numbers where every annotator is in every step, untouched annotators left as they are,
and the choice ``auto`` makes."""

import numpy as np
import pytest
import torch

from simlabel.models.annotators import HeadsModel
from simlabel.training.loop import (
    Optimisation,
    TrainConfig,
    train_annotator_models,
    uses_row_updates,
)
from simlabel.training.optim import AnnotatorRowsAdamW
from simlabel.training.targets import batch_targets
from tests.training.test_loop import grouped_dataset


@pytest.mark.parametrize("architecture,options", [("heads", {}), ("heads", {"head_hidden": 6}), ("madl", {}),
                                                  ("padl", {})])
def test_rows_equal_adamw_where_every_annotator_is_in_every_step(architecture, options):
    """Every item labelled by every annotator: each step evaluates all annotators, so the row
    updates are AdamW's (moments, bias correction, weight decay) up to float rounding."""
    tokens, labels, train_rows, val_rows, _, n_classes = grouped_dataset(n_items=120, n_annotators=5, labelled=1.0)
    config = {"architecture": architecture, "max_epochs": 3, "hidden": 8, "device": "cpu", "soft_entries_per_item": 2,
              "batch_size": 16, "weight_decay": 0.05, **options}
    runs = {mode: train_annotator_models(tokens, labels, train_rows, val_rows, np.full((5, 5), 0.5), n_classes,
                                         TrainConfig.from_params(config, {"head_updates": mode}))
            for mode in ("dense", "rows")}
    dense, rows = (runs[m].model.state_dict() for m in ("dense", "rows"))
    for name in dense:
        torch.testing.assert_close(rows[name], dense[name], rtol=1e-4, atol=1e-5, msg=name)
    np.testing.assert_allclose(runs["rows"].history["loss"], runs["dense"].history["loss"], rtol=1e-5)


def test_annotators_outside_the_step_keep_their_parameters_and_state():
    model = HeadsModel(4, 6, 3, torch.zeros(4), torch.ones(4), hidden=5)
    rows = AnnotatorRowsAdamW(model, weight_decay=0.1)
    before = [p.detach().clone() for p in model.annotator_parameters()]
    inputs = torch.randn(3, 1, 4)
    out = rows.call(model, inputs, torch.tensor([0, 1, 2, 2]), torch.tensor([4, 1, 4, 1]))
    out.logsumexp(-1).sum().backward()
    assert [leaf.shape[0] for leaf in rows.gradients()] == [2, 2]  # annotators 1 and 4 only
    rows.step(lr=0.01)
    for old, new in zip(before, model.annotator_parameters(), strict=True):
        untouched = torch.tensor([0, 2, 3, 5])
        torch.testing.assert_close(new[untouched], old[untouched], rtol=0, atol=0)
        assert not torch.equal(new[torch.tensor([1, 4])], old[torch.tensor([1, 4])])
    assert rows.current.tolist() == [0, 1, 0, 0, 1, 0]  # each row is as of this step
    assert all(m[torch.tensor([0, 2, 3, 5])].abs().sum() == 0 for m in rows.exp_avg)
    # the first step of an optimiser is Adam's first step: lr * sign(grad) after the weight decay
    rows_again = AnnotatorRowsAdamW(model, weight_decay=0.0)
    weight = model.annotator_parameters()[0].detach().clone()
    out = rows_again.call(model, inputs, torch.tensor([0]), torch.tensor([3]))
    out[0, 0].backward()
    grad = rows_again.leaves[0].grad[0].clone()
    rows_again.step(lr=0.01)
    expected = weight[3] - 0.01 * grad / (grad.abs() + 1e-8)
    torch.testing.assert_close(model.annotator_parameters()[0][3], expected, rtol=1e-5, atol=1e-6)


def test_state_round_trip():
    model = HeadsModel(4, 6, 3, torch.zeros(4), torch.ones(4), hidden=5)
    rows = AnnotatorRowsAdamW(model)
    rows.call(model, torch.randn(2, 1, 4), torch.tensor([0, 1]), torch.tensor([2, 5])).sum().backward()
    rows.step(lr=0.01)
    other = AnnotatorRowsAdamW(model)
    other.load_state_dict(rows.state_dict())
    assert torch.equal(other.current, rows.current) and all(torch.equal(a, b) for a, b in zip(other.exp_avg, rows.exp_avg, strict=True))
    with pytest.raises(ValueError, match="another model"):
        AnnotatorRowsAdamW(HeadsModel(4, 7, 3, torch.zeros(4), torch.ones(4), hidden=5)).load_state_dict(rows.state_dict())


def test_auto_chooses_rows_for_sampled_steps_of_many_annotators():
    sampled = TrainConfig.from_params({"soft_entries_per_item": 4})
    dense_step = TrainConfig.from_params({})
    generator = torch.Generator()
    sampled_targets, dense_targets = (batch_targets(c, None, generator) for c in (sampled, dense_step))
    # batch 32 x (3 labels + 4 drawn) = 224 entries a step: rows from 10 x 224 = 2,240 annotators on
    assert uses_row_updates(sampled, sampled_targets, 2240, 1, 3.0)
    assert not uses_row_updates(sampled, sampled_targets, 2239, 1, 3.0)
    assert not uses_row_updates(sampled, sampled_targets, 747, 1, 3.0)  # CIFAR-10N: dense updates
    assert not uses_row_updates(dense_step, dense_targets, 50000, 1, 3.0)  # a dense step evaluates every annotator
    assert not uses_row_updates(sampled, sampled_targets, 50000, 2, 3.0)  # DDP reduces whole gradients
    forced = TrainConfig.from_params({"soft_entries_per_item": 4, "head_updates": "rows"})
    assert uses_row_updates(forced, sampled_targets, 3, 1, 3.0)
    with pytest.raises(ValueError, match="torchrun"):
        uses_row_updates(forced, sampled_targets, 3, 2, 3.0)
    assert not uses_row_updates(TrainConfig.from_params({"soft_entries_per_item": 4, "head_updates": "dense"}),
                                sampled_targets, 50000, 1, 3.0)
    with pytest.raises(ValueError, match="needs soft_entries_per_item"):
        TrainConfig.from_params({"head_updates": "rows"})
    with pytest.raises(ValueError, match="head_updates must be one of"):
        TrainConfig.from_params({"head_updates": "lazy"})


def test_a_run_with_rows_learns_as_the_dense_updates_do():
    """60 annotators, 8 % labelled, batches of 8 items: a step evaluates a few of them. The rows
    reach the dense updates' accuracy (measured over three seeds: 0.9876 / 0.9913 / 0.9900 and the
    same best epochs both ways; plain lazy rows, before the catch-up: 0.985-0.993), and the main
    optimiser never holds the heads."""
    tokens, labels, train_rows, val_rows, _, n_classes = grouped_dataset(n_items=600, n_annotators=60, labelled=0.08)
    created = []
    original = Optimisation.create.__func__

    def spy(cls, *args, **kwargs):
        created.append(original(cls, *args, **kwargs))
        return created[-1]

    accuracy = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Optimisation, "create", classmethod(spy))
        for mode in ("dense", "rows"):
            config = TrainConfig.from_params({"max_epochs": 30, "hidden": 16, "device": "cpu", "batch_size": 8,
                                              "soft_entries_per_item": 2, "head_updates": mode})
            result = train_annotator_models(tokens, labels, train_rows, val_rows, np.full((60, 60), 0.5), n_classes,
                                            config)
            accuracy[mode] = result.best_val_accuracy
    assert created[0].rows is None and created[1].rows is not None
    assert created[1].optimizer.state.keys().isdisjoint(set(result.model.annotator_parameters()))
    assert accuracy["rows"] > 0.95 and abs(accuracy["rows"] - accuracy["dense"]) < 0.005, accuracy


def test_labels_per_item_counts_the_items_with_labels():
    from simlabel.core.labels import LabelTable
    from simlabel.training.loop import labels_per_item

    matrix = np.full((5, 4), -1)
    matrix[0, :2] = matrix[1, 0] = matrix[3, 1:] = 1  # 2 + 1 + 3 labels on 3 of 5 items
    assert labels_per_item(LabelTable.from_numpy(matrix)) == 2.0
    assert labels_per_item(LabelTable.from_numpy(np.full((3, 2), -1))) == 0.0


def test_a_crashed_run_with_rows_and_a_sparse_similarity_resumes_to_the_same_result(tmp_path, monkeypatch):
    """The rows' moments and step counts are in the saved state (a sparse similarity is not:
    it never changes without cycling), so a resumed run ends where the uninterrupted one does."""
    import simlabel.training.loop as loop
    from simlabel.core.labels import LabelTable
    from simlabel.core.similarity import shrunk_kappa

    tokens, labels, train_rows, val_rows, _, n_classes = grouped_dataset(n_items=400, n_annotators=40, labelled=0.1)
    similarity = shrunk_kappa(LabelTable.from_numpy(np.where(train_rows[:, None], labels, -1)), n_classes)
    monkeypatch.setattr(loop.SaveThrottle, "due", lambda self, seconds: True)

    def run(name, resume=False):
        config = TrainConfig.from_params({"max_epochs": 5, "hidden": 8, "device": "cpu", "batch_size": 8,
                                          "soft_entries_per_item": 2, "head_updates": "rows",
                                          "state_path": str(tmp_path / f"{name}.pt"), "resume": resume})
        return train_annotator_models(tokens, labels, train_rows, val_rows, similarity, n_classes, config)

    reference = run("reference")
    log_epoch = loop.log_epoch

    def crash_at_epoch_3(state, *args, **kwargs):
        if state.history[-1]["epoch"] == 3:
            raise KeyboardInterrupt  # after epoch 3's step, before its state is saved
        log_epoch(state, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(loop, "log_epoch", crash_at_epoch_3)
        with pytest.raises(KeyboardInterrupt):
            run("crashed")
    resumed = run("crashed", resume=True)
    np.testing.assert_array_equal(resumed.history["loss"], reference.history["loss"])
    for name, value in reference.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=0, atol=0)


def test_rows_reach_the_heads_inside_an_end_to_end_model():
    from torch import nn

    from simlabel.models.annotators import EndToEnd

    heads = HeadsModel(12, 5, 3, torch.zeros(12), torch.ones(12), hidden=4)
    model = EndToEnd(nn.Sequential(nn.Flatten(), nn.Linear(2 * 2 * 3, 12)), heads).eval()  # no dropout draws
    rows = AnnotatorRowsAdamW(model)
    assert [name for name, _ in rows.named] == ["annotator_model.heads.0.maps", "annotator_model.heads.0.bias"]
    frames = torch.randn(2, 1, 2, 2, 3)
    out = rows.call(model, frames, torch.tensor([0, 1]), torch.tensor([4, 2]))
    torch.testing.assert_close(out, model(frames, torch.tensor([0, 1]), torch.tensor([4, 2])))


def test_rows_follow_dense_adamw_where_annotators_sit_steps_out():
    """Steps that evaluate a random few of 30 annotators: dense AdamW moves every row every step
    (zero gradients: decay and momentum), the rows catch those steps up when next used or
    flushed. After 60 steps at a warm-up + cosine rate the two agree closely."""
    from simlabel.training.optim import FusedAdamW, warmup_cosine

    torch.manual_seed(0)
    dense_model = HeadsModel(6, 30, 4, torch.zeros(6), torch.ones(6), hidden=5, dropout=0.0)
    rows_model = HeadsModel(6, 30, 4, torch.zeros(6), torch.ones(6), hidden=5, dropout=0.0)
    rows_model.load_state_dict(dense_model.state_dict())
    initial = {name: value.clone() for name, value in dense_model.state_dict().items()}
    dense_opt = FusedAdamW(dense_model.parameters(), lr=0.01, weight_decay=0.05)
    rows_opt = FusedAdamW(rows_model.parameters(), lr=0.01, weight_decay=0.05)
    rows = AnnotatorRowsAdamW(rows_model, weight_decay=0.05)
    rate = warmup_cosine(60, 0.2)
    generator = torch.Generator().manual_seed(1)
    for step in range(60):
        inputs = torch.randn(8, 1, 6, generator=generator)
        items = torch.randint(0, 8, (12,), generator=generator)
        annotators = torch.randint(0, 30, (12,), generator=generator)
        targets = torch.randint(0, 4, (12,), generator=generator)
        for group in (*dense_opt.param_groups, *rows_opt.param_groups):
            group["lr"] = 0.01 * rate(step)
        for model, optimiser in ((dense_model, dense_opt), (rows_model, rows_opt)):
            optimiser.zero_grad()
            out = model(inputs, items, annotators) if model is dense_model else rows.call(model, inputs, items, annotators)
            torch.nn.functional.nll_loss(out, targets).backward()
            if model is rows_model:
                rows.step(0.01 * rate(step))
            optimiser.step()
    rows.flush()
    for (name, dense), (_, lazy) in zip(dense_model.named_parameters(), rows_model.named_parameters(), strict=True):
        # measured: heads within 1.1e-4, trunk 9e-6; plain lazy rows (no catch-up) differ by 0.077
        torch.testing.assert_close(lazy, dense, rtol=0, atol=5e-4, msg=name)
        assert not name.startswith("heads") or (dense - initial[name]).abs().max() > 0.05, name
