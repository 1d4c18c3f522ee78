
import numpy as np
import pytest
import torch

from simlabel.core.losses import simlabel_loss
from simlabel.core.soft_labels import soft_labels
from simlabel.models.annotators import ARCHITECTURES, EntryLinear, build_model, uses_entry_products
from simlabel.training.loop import TrainConfig, predict_labels, train_annotator_models

B, T, D, A, C = 10, 3, 12, 4, 5


def make(architecture, **options):
    torch.manual_seed(0)
    return build_model(
        architecture, in_dim=D, n_annotators=A, n_classes=C, feature_mean=torch.zeros(D),
        feature_std=torch.ones(D), hidden=16, dropout=0.0, n_tokens=T, **options,
    )


@pytest.fixture
def tokens():
    return torch.randn(B, T, D, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_shapes_and_probability_simplex(architecture, tokens):
    model = make(architecture).eval()
    log_p = model(tokens)
    assert log_p.shape == (B, A, C)
    torch.testing.assert_close(log_p.exp().sum(-1), torch.ones(B, A))
    assert torch.isfinite(log_p).all()
    model.train()
    train_out = model(tokens)
    assert train_out.shape[-3:] == (B, A, C) and train_out.dim() in (3, 4)
    torch.testing.assert_close(train_out.exp().sum(-1), torch.ones(train_out.shape[:-1]))


def loss_on(model, tokens, labels, unlabeled_weight):
    log_p = model(tokens)
    probs = log_p.exp() if log_p.dim() == 3 else log_p.exp().mean(0)
    p_soft, has_soft = soft_labels(probs, labels, torch.rand(A, A, generator=torch.Generator().manual_seed(2)))
    return simlabel_loss(log_p, labels, p_soft, has_soft, unlabeled_weight)[0]


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_gradients_reach_every_parameter(architecture, tokens):
    model = make(architecture).train()
    labels = torch.randint(0, C, (B, A), generator=torch.Generator().manual_seed(3))
    labels[::2, 1] = -1
    loss_on(model, tokens, labels, 1.0).backward()
    silent = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent, f"no gradient reaches {silent}"


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_skip_sends_no_gradient_through_an_annotators_unlabelled_entries(architecture, tokens):
    labels = torch.randint(0, C, (B, A), generator=torch.Generator().manual_seed(4))
    labels[::2, 2] = -1
    for weight in (0.0, 1.0):
        model = make(architecture).train()
        log_p = model(tokens)
        log_p.retain_grad()
        probs = log_p.exp() if log_p.dim() == 3 else log_p.exp().mean(0)
        p_soft, has_soft = soft_labels(probs, labels, torch.rand(A, A))
        simlabel_loss(log_p, labels, p_soft, has_soft, weight)[0].backward()
        grad_unlabelled = log_p.grad[..., ::2, 2, :]
        assert (torch.count_nonzero(grad_unlabelled) == 0) == (weight == 0.0), (architecture, weight)


# QuMATL's queries share self-attention, so an annotator's query also serves the others; without
# it, every architecture keeps per-annotator parameters apart.
@pytest.mark.parametrize(
    ("architecture", "options"),
    [("heads", {}), ("madl", {}), ("padl", {}), ("qumatl", {"query_self_attention": False})],
)
def test_skip_leaves_the_parameters_of_an_annotator_without_labels_untouched(architecture, options, tokens):
    labels = torch.randint(0, C, (B, A), generator=torch.Generator().manual_seed(4))
    labels[:, 2] = -1  # annotator 2 labelled nothing here
    for weight, expect_silent in ((0.0, True), (1.0, False)):
        model = make(architecture, **options).train()
        loss_on(model, tokens, labels, weight).backward()
        own = model.annotator_parameters()
        assert own
        silent = all(torch.count_nonzero(p.grad[2]) == 0 for p in own)
        assert silent == expect_silent, (architecture, weight)
        assert all(torch.count_nonzero(p.grad[0]) > 0 for p in own)


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_each_architecture_overfits_a_tiny_labelled_set(architecture):
    rng = np.random.default_rng(0)
    n_items = 24
    tokens = rng.normal(size=(n_items, T, D)).astype(np.float32)
    labels = rng.integers(0, C, (n_items, A))
    rows = np.ones(n_items, bool)
    config = TrainConfig.from_params(
        {"architecture": architecture, "max_epochs": 150, "patience": 150, "learning_rate": 0.01,
         "weight_decay": 0.0, "dropout": 0.0, "hidden": 64, "batch_size": 24, "warmup_fraction": 0.05,
         "unlabeled_weight": 0.0, "device": "cpu"}
    )
    result = train_annotator_models(tokens, labels, rows, rows, np.zeros((A, A)), C, config)
    predicted = predict_labels(result.model, torch.from_numpy(tokens), np.arange(n_items))
    assert (predicted == labels).mean() >= 0.95


@pytest.mark.parametrize("confusion", ["full", "diagonal"])
def test_madl_prediction_is_the_explicit_sum_over_true_classes(confusion, tokens):
    model = make("madl", confusion=confusion).eval()
    log_p = model(tokens)
    truth = model.truth_log_proba(tokens).exp()  # (B, C)
    confusion_p = model.confusion_log_proba(model.trunk(tokens)).exp()  # (B, A, C, C)
    torch.testing.assert_close(confusion_p.sum(-1), torch.ones(B, A, C))
    explicit = torch.zeros(B, A, C)
    for y in range(C):  # the reference: the sum written out
        explicit += truth[:, None, y, None] * confusion_p[:, :, y, :]
    torch.testing.assert_close(log_p.exp(), explicit)


def test_madl_stays_finite_for_extreme_logits(tokens):
    model = make("madl").eval()
    with torch.no_grad():
        model.truth_head.weight.mul_(1e4)
        model.confusion_out.weight.mul_(1e4)
    log_p = model(tokens)
    assert torch.isfinite(log_p).all()
    torch.testing.assert_close(log_p.exp().sum(-1), torch.ones(B, A))


def test_padl_with_vanishing_sigma_is_the_deterministic_head(tokens):
    model = make("padl", n_samples=16)
    with torch.no_grad():
        model.sigma_scale = 1e-9
        mean, _ = model.distribution(tokens)
        deterministic = torch.log_softmax(mean, dim=-1)
        torch.testing.assert_close(model.eval()(tokens), deterministic)
        samples = model.train()(tokens)
    assert samples.shape == (16, B, A, C)
    torch.testing.assert_close(samples, deterministic.expand_as(samples))


def test_padl_sigma_grows_with_the_shared_uncertainty(tokens):
    model = make("padl")
    with torch.no_grad():
        model.global_head.weight.zero_()
        model.global_head.bias.zero_()  # uniform shared prediction: maximal entropy
        _, sigma_uncertain = model.distribution(tokens)
        model.global_head.bias.copy_(torch.tensor([50.0, 0, 0, 0, 0]))  # certain
        _, sigma_certain = model.distribution(tokens)
    torch.testing.assert_close(sigma_uncertain, 2 * sigma_certain)


def test_qumatl_exposes_cross_attention_over_tokens(tokens):
    model = make("qumatl").eval()
    weights = model.cross_attention(tokens)
    assert weights.shape == (B, A, T)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, A))


def test_unknown_options_are_errors():
    with pytest.raises(ValueError, match="confusion"):
        make("madl", confusion="banded")
    with pytest.raises(ValueError, match="unknown architecture"):
        make("transformer")


@pytest.mark.parametrize("architecture", ["heads", "madl", "padl"])
@pytest.mark.parametrize("head_hidden", [0, 6])
def test_entry_forward_equals_the_dense_output_at_those_entries(architecture, head_hidden, tokens):
    model = make(architecture, head_hidden=head_hidden).eval()
    items = torch.tensor([0, 0, 3, 9, 5])
    annotators = torch.tensor([1, 3, 0, 2, 1])
    torch.manual_seed(5)
    dense = model(tokens)
    torch.manual_seed(5)
    entries = model(tokens, items, annotators)
    if architecture == "padl":  # Monte-Carlo: compare the deterministic means instead
        mean, _ = model.distribution(tokens)
        mean_e, _ = model.distribution(tokens, items, annotators)
        torch.testing.assert_close(mean_e, mean[items, annotators])
    else:
        torch.testing.assert_close(entries, dense[items, annotators])


@pytest.mark.parametrize(("n_annotators", "n_entries"), [(5, 12), (7, 1), (3, 30), (4, 0)])
def test_entry_products_match_gathered_weights_and_their_gradients(n_annotators, n_entries):
    """``EntryLinear`` (sparse-pattern products, CPU) against ``weight[annotators]`` + einsum:
    annotators repeated, some without entries; gradients also checked by finite differences."""
    generator = torch.Generator().manual_seed(n_entries)
    x = torch.randn(n_entries, 6, dtype=torch.float64, generator=generator, requires_grad=True)
    weight = torch.randn(n_annotators, 3, 6, dtype=torch.float64, generator=generator, requires_grad=True)
    annotators = torch.randint(0, n_annotators - 1, (n_entries,), generator=generator)  # the last has none
    upstream = torch.randn(n_entries, 3, dtype=torch.float64, generator=generator)

    out = EntryLinear.apply(x, weight, annotators)
    grads = torch.autograd.grad((out * upstream).sum(), (x, weight))
    reference = torch.einsum("ei,eoi->eo", x, weight[annotators])
    reference_grads = torch.autograd.grad((reference * upstream).sum(), (x, weight))
    torch.testing.assert_close(out, reference)
    for grad, expected in zip(grads, reference_grads, strict=True):
        torch.testing.assert_close(grad, expected)
    assert torch.count_nonzero(grads[1][n_annotators - 1]) == 0
    if n_entries:
        assert torch.autograd.gradcheck(lambda x, w: EntryLinear.apply(x, w, annotators), (x, weight))


def test_heads_entries_use_the_entry_products_on_the_cpu(tokens):
    model = make("heads")
    log_p = model(tokens, torch.tensor([0, 2, 2]), torch.tensor([1, 1, 3]))
    graph, seen = [log_p.grad_fn], set()
    while graph:  # walk the autograd graph back to the leaves
        node = graph.pop()
        seen.add(type(node).__name__)
        graph.extend(next_node for next_node, _ in node.next_functions if next_node is not None)
    assert "EntryLinearBackward" in seen
    assert not uses_entry_products(torch.randn(4, 16).half(), model.heads[0].maps)


def test_checkpoints_of_the_old_head_layout_predict_the_same(tokens, tmp_path):
    """Heads' maps are stored (A, O, I) as ``maps``; checkpoints written before stored them
    (A, I, O) as ``weight``. ``head_hidden == hidden`` makes one layer square, where the shape
    alone could not tell the layouts apart."""
    model = make("heads", head_hidden=16).eval()
    expected = model(tokens)
    old = {key.replace(".maps", ".weight"): value.transpose(1, 2) if key.endswith(".maps") else value
           for key, value in model.state_dict().items()}
    assert old["heads.0.weight"].shape == (A, 16, 16) and old["heads.2.weight"].shape == (A, 16, C)
    torch.save({"state_dict": old}, tmp_path / "checkpoint.pt")
    for state in (torch.load(tmp_path / "checkpoint.pt")["state_dict"], model.state_dict()):
        loaded = make("heads", head_hidden=16)
        torch.nn.init.zeros_(loaded.heads[0].maps)
        loaded.load_state_dict(state)  # strict: no key left over or missing
        torch.testing.assert_close(loaded.eval()(tokens), expected)
