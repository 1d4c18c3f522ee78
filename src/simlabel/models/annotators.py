"""Annotator-model architectures (SPEC section 5).

Each maps input tokens (B, T, D) to per-annotator log-probabilities (B, A, C), so the SimLabel
loss, soft labels and confidence never know which one ran. A new architecture is one class here
and one name in ``ARCHITECTURES`` (and its options in ``simlabel.choices``). Stochastic architectures (PADL) return (S, B, A, C) Monte-Carlo
samples in training mode; the loss averages over S.

Inputs are standardised inside the model with the training items' mean and std (buffers saved
in the checkpoint), so a checkpoint predicts from raw embeddings / features.

Every architecture also lists, in ``annotator_parameters()``, the parameters that belong to
single annotators (sliced on their first axis), so tests can check that Skip sends no gradient
to an annotator from entries that annotator did not label.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn

# ``EntryLinear`` builds sparse CSR matrices; torch notes once per process that CSR is "beta".
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)


def log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """``torch.log_softmax(logits, dim=-1)``. On the CPU, torch's kernel costs about 15 ns per
    row when the class axis is short: (32, 220, 10) logits take 1.05 ms forward and 1.64 ms with
    the backward, against 0.24 / 0.41 ms for the same formula as a few whole-tensor ops (max
    shift, exp, sum, log; torch 2.14, one thread). Tensors with few rows keep torch's kernel,
    which has less overhead there."""
    if uses_torch_log_softmax(logits):
        return torch.log_softmax(logits, dim=-1)
    shifted = logits - logits.detach().amax(-1, keepdim=True)  # the shift's gradient is 0 analytically
    return shifted - shifted.exp().sum(-1, keepdim=True).log()


def rows_of(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values[index]`` along the first axis through ``index_select``, whose backward is an
    ``index_add``: on the CPU the advanced-index backward (an accumulating ``index_put``) took
    0.90 ms for CIFAR-10N's 1,408 entries of a (128, 128) batch, against 0.18 ms (2 threads)."""
    return values.index_select(0, index)


def uses_torch_log_softmax(logits: torch.Tensor) -> bool:
    """Where ``log_softmax`` keeps torch's kernel: off the CPU, long class axes, few rows."""
    n_classes = logits.shape[-1]
    return logits.device.type != "cpu" or n_classes > 64 or logits.numel() < 256 * n_classes


class Standardize(nn.Module):
    """(x - mean) / std with statistics fixed at construction.

    Each std is floored at a tenth of the median std: CNN features often have channels that
    are (nearly) constant on the training items, and dividing by their tiny std would blow
    small deviations on new items up into huge inputs.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        std = std.float()
        floor = 0.1 * std.median().clamp(min=1e-6) if std.numel() else torch.tensor(1e-6)
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.clamp(min=floor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class BatchedLinear(nn.Module):
    """One linear map per annotator, all evaluated in one op: (B, [A,] I) -> (B, A, O).

    ``maps`` (A, O, I) holds annotator a's map laid out like ``nn.Linear.weight`` (out, in), so
    the shared-input forward is one matmul with a view of it and the per-entry path reads rows
    of I contiguous numbers. Checkpoints written before stored it as ``weight`` (A, I, O); they
    load unchanged (``_load_from_state_dict``).
    """

    def __init__(self, n_annotators: int, in_dim: int, out_dim: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)
        # Drawn in the old (A, I, O) order so a seed gives the same initial maps as before.
        weight = torch.empty(n_annotators, in_dim, out_dim).uniform_(-bound, bound)
        self.maps = nn.Parameter(weight.transpose(1, 2).contiguous())
        self.bias = nn.Parameter(torch.empty(n_annotators, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, o, i = self.maps.shape
        if x.dim() == 2:  # shared input for every annotator: one (B, I) x (I, A*O) matmul
            return (x @ self.maps.reshape(a * o, i).t()).view(-1, a, o) + self.bias
        return torch.einsum("bai,aoi->bao", x, self.maps) + self.bias

    def entries(self, x: torch.Tensor, annotators: torch.Tensor) -> torch.Tensor:
        """(E, I) inputs of E (item, annotator) entries -> (E, O), each through its annotator's map."""
        if uses_entry_products(x, self.maps):
            return EntryLinear.apply(x, self.maps, annotators) + rows_of(self.bias, annotators)
        return torch.einsum("ei,eoi->eo", x, self.maps[annotators]) + rows_of(self.bias, annotators)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        old = state_dict.pop(prefix + "weight", None)  # (A, I, O), before ``maps``
        if old is not None:
            state_dict.setdefault(prefix + "maps", old.transpose(1, 2))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def uses_entry_products(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Where ``BatchedLinear.entries`` runs ``EntryLinear``: float32/64 on the CPU. Elsewhere
    (CUDA, half precision under autocast) the gathered einsum is what the hardware does well."""
    return x.device.type == "cpu" and x.dtype == weight.dtype and x.dtype in (torch.float32, torch.float64)


class EntryLinear(torch.autograd.Function):
    """``out[e] = weight[annotators[e]] @ x[e]``: (E, I), (A, O, I), (E,) -> (E, O), without
    the (E, O, I) copy of gathered weights that ``weight[annotators]`` makes.

    On the CPU that copy, its product and the scatter-add of its gradient are memory-bound and
    cost ~15 ms for CIFAR-10N's sampled step (E = 1408 entries, I = 128, O = 10), against
    ~2.5 ms for products on the weight viewed as (A*O, I) rows:
    forward  out = (x @ rows.T) sampled at (e, a_e*O + o);
    backward grad_x = G @ rows with G (E, A*O) holding grad_out[e] at a_e's O columns;
             grad_weight = the entries' outer products grad_out[e] x[e]^T, (E, O*I),
             index-added into their annotators' rows: 1.06 ms against 1.39 ms for G.T @ x with
             G.T built as a CSR sorted by annotator (0.55 vs 0.92 ms at two threads).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, annotators: torch.Tensor) -> torch.Tensor:
        n_annotators, out_dim, in_dim = weight.shape
        rows = weight.reshape(n_annotators * out_dim, in_dim)
        pattern = _entry_matrix(torch.zeros(len(annotators), out_dim, dtype=x.dtype), annotators, n_annotators)
        ctx.save_for_backward(x, weight, annotators)
        return torch.sparse.sampled_addmm(pattern, x, rows.t(), beta=0.0).values().view(-1, out_dim)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, weight, annotators = ctx.saved_tensors
        n_annotators, out_dim, in_dim = weight.shape
        grad_out = grad_out.contiguous()
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_x = _entry_matrix(grad_out, annotators, n_annotators) @ weight.reshape(-1, in_dim)
        if ctx.needs_input_grad[1]:
            outer = (grad_out[:, :, None] * x[:, None, :]).reshape(len(annotators), out_dim * in_dim)
            grad_weight = x.new_zeros(n_annotators, out_dim * in_dim).index_add_(0, annotators, outer).view_as(weight)
        return grad_x, grad_weight, None


def _entry_matrix(values: torch.Tensor, annotators: torch.Tensor, n_annotators: int) -> torch.Tensor:
    """(E, A*O) CSR: row e holds ``values[e]`` (O numbers) at columns a_e*O .. a_e*O + O - 1."""
    n_entries, out_dim = values.shape
    columns = (annotators[:, None] * out_dim + torch.arange(out_dim)).reshape(-1)
    row_starts = torch.arange(0, n_entries * out_dim + 1, out_dim)
    return torch.sparse_csr_tensor(
        row_starts, columns, values.reshape(-1), (n_entries, n_annotators * out_dim), check_invariants=False
    )


class PooledTrunk(nn.Module):
    """tokens (B, T, D) -> mean over T -> standardise -> Linear(D, hidden) + GELU (+ dropout)."""

    def __init__(self, in_dim: int, hidden: int, dropout: float, feature_mean, feature_std):
        super().__init__()
        self.standardize = Standardize(feature_mean, feature_std)
        self.layers = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.layers(self.standardize(tokens.mean(1)))


def per_annotator_head(n_annotators: int, hidden: int, n_classes: int, head_hidden: int) -> nn.Sequential:
    """Per-annotator MLP (one hidden layer of ``head_hidden`` if > 0) as batched tensor ops."""
    if not head_hidden:
        return nn.Sequential(BatchedLinear(n_annotators, hidden, n_classes))
    return nn.Sequential(
        BatchedLinear(n_annotators, hidden, head_hidden), nn.GELU(), BatchedLinear(n_annotators, head_hidden, n_classes)
    )


def head_entries(head: nn.Sequential, x: torch.Tensor, annotators: torch.Tensor) -> torch.Tensor:
    """Apply a ``per_annotator_head`` to E entries only: (E, I) -> (E, O)."""
    for layer in head:
        x = layer.entries(x, annotators) if isinstance(layer, BatchedLinear) else layer(x)
    return x


def _batched_parameters(module: nn.Module) -> list[nn.Parameter]:
    return [p for m in module.modules() if isinstance(m, BatchedLinear) for p in (m.maps, m.bias)]


class HeadsModel(nn.Module):
    """``heads``: shared embedding -> per-annotator MLP head, all heads in one batched op."""

    def __init__(
        self, in_dim, n_annotators, n_classes, feature_mean, feature_std,
        hidden=128, head_hidden=0, dropout=0.2, n_tokens=1,
    ):
        super().__init__()
        self.trunk = PooledTrunk(in_dim, hidden, dropout, feature_mean, feature_std)
        self.heads = per_annotator_head(n_annotators, hidden, n_classes, head_hidden)

    def forward(self, tokens: torch.Tensor, items=None, annotators=None) -> torch.Tensor:
        """(B, A, C) log-probabilities, or (E, C) for the entries (``items[e]`` of the batch,
        ``annotators[e]``) only."""
        if items is None:
            return log_softmax(self.heads(self.trunk(tokens)))
        return log_softmax(head_entries(self.heads, rows_of(self.trunk(tokens), items), annotators))

    def annotator_parameters(self) -> list[nn.Parameter]:
        return _batched_parameters(self.heads)


class QueryModel(nn.Module):
    """``qumatl``: one learnable query per annotator; the queries share self-attention, then
    cross-attend to the input tokens (frames / patches / feature tokens); a per-annotator head
    reads each query's output. ``cross_attention(tokens)`` gives (B, A, T) attention weights:
    which tokens (frames) each annotator's model looks at.
    """

    def __init__(
        self, in_dim, n_annotators, n_classes, feature_mean, feature_std,
        hidden=128, head_hidden=0, dropout=0.2, n_tokens=1, n_heads=4, query_self_attention=True,
    ):
        super().__init__()
        if hidden % n_heads:
            raise ValueError(f"qumatl: hidden ({hidden}) must be divisible by n_heads ({n_heads})")
        self.standardize = Standardize(feature_mean, feature_std)
        self.project = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, hidden))
        self.positions = nn.Parameter(torch.zeros(n_tokens, hidden))
        self.queries = nn.Parameter(torch.randn(n_annotators, hidden) * 0.02)
        self.self_attention = (
            nn.MultiheadAttention(hidden, n_heads, dropout=dropout, batch_first=True) if query_self_attention else None
        )
        self.norm_self = nn.LayerNorm(hidden)
        self.cross_attention_layer = nn.MultiheadAttention(hidden, n_heads, dropout=dropout, batch_first=True)
        self.norm_cross = nn.LayerNorm(hidden)
        self.feed_forward = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout))
        self.norm_out = nn.LayerNorm(hidden)
        self.heads = per_annotator_head(n_annotators, hidden, n_classes, head_hidden)

    def _attend(self, tokens: torch.Tensor, need_weights: bool = False):
        keys = self.project(self.standardize(tokens)) + self.positions[: tokens.shape[1]]
        queries = self.queries.expand(tokens.shape[0], -1, -1)
        if self.self_attention is not None:
            queries = self.norm_self(queries + self.self_attention(queries, queries, queries, need_weights=False)[0])
        attended, weights = self.cross_attention_layer(queries, keys, keys, need_weights=need_weights)
        out = self.norm_cross(queries + attended)
        return self.norm_out(out + self.feed_forward(out)), weights

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self._attend(tokens)  # (B, A, hidden)
        return log_softmax(self.heads(out))

    @torch.no_grad()
    def cross_attention(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, A, T) cross-attention weights (averaged over attention heads)."""
        return self._attend(tokens, need_weights=True)[1]

    def annotator_parameters(self) -> list[nn.Parameter]:
        return [self.queries, *_batched_parameters(self.heads)]


class ConfusionModel(nn.Module):
    """``madl`` (Herde et al. 2023): a ground-truth head p(y|x) and an annotator-performance
    model P(z | x, a, y) from a learned annotator embedding and the sample embedding;
    p_hat_a(z|x) = sum_y p(y|x) P(z|x,a,y), computed with logsumexp in log space.

    ``confusion``: ``full`` (C x C logits per (x, a)) or ``diagonal`` (one correctness logit
    per true class; errors spread uniformly). ``diagonal_prior`` is added to the diagonal logits,
    so annotators start out mostly right (keeps truth and confusion identifiable).
    """

    def __init__(
        self, in_dim, n_annotators, n_classes, feature_mean, feature_std,
        hidden=128, head_hidden=0, dropout=0.2, n_tokens=1,
        confusion="full", embedding_dim=16, diagonal_prior=2.0,
    ):
        super().__init__()
        if confusion not in ("full", "diagonal"):
            raise ValueError(f"madl: confusion must be 'full' or 'diagonal', got {confusion!r}")
        self.n_classes, self.confusion, self.diagonal_prior = n_classes, confusion, diagonal_prior
        self.trunk = PooledTrunk(in_dim, hidden, dropout, feature_mean, feature_std)
        self.truth_head = nn.Linear(hidden, n_classes)
        self.annotator_embedding = nn.Parameter(torch.randn(n_annotators, embedding_dim))
        width = head_hidden or hidden
        self.from_sample = nn.Linear(hidden, width)
        self.from_annotator = nn.Linear(embedding_dim, width, bias=False)
        self.confusion_out = nn.Linear(width, n_classes * n_classes if confusion == "full" else n_classes)

    def truth_log_proba(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, C) log p(y | x) of the ground-truth head."""
        return log_softmax(self.truth_head(self.trunk(tokens)))

    def confusion_log_proba(self, hidden: torch.Tensor, annotators: torch.Tensor | None = None) -> torch.Tensor:
        """(B, A, C_true, C_label) log P(z | x, a, y); with ``annotators`` (E,), ``hidden`` is
        (E, H) (one row per entry) and the result (E, C_true, C_label)."""
        if annotators is None:
            joint = self.from_sample(hidden)[:, None, :] + self.from_annotator(self.annotator_embedding)[None]
        else:
            joint = self.from_sample(hidden) + self.from_annotator(rows_of(self.annotator_embedding, annotators))
        logits = self.confusion_out(torch.nn.functional.gelu(joint))  # (..., C*C) or (..., C)
        c = self.n_classes
        eye = torch.eye(c, device=hidden.device, dtype=hidden.dtype)
        if self.confusion == "full":
            return log_softmax(logits.view(*logits.shape[:-1], c, c) + self.diagonal_prior * eye)
        correct = torch.nn.functional.logsigmoid(logits + self.diagonal_prior)  # (..., C)
        wrong = torch.nn.functional.logsigmoid(-(logits + self.diagonal_prior)) - math.log(c - 1)
        return torch.where(eye.bool(), correct[..., None], wrong[..., None])

    def forward(self, tokens: torch.Tensor, items=None, annotators=None) -> torch.Tensor:
        """(B, A, C) log-probabilities, or (E, C) for the entries (``items``, ``annotators``)."""
        if items is not None:
            return self._entries(tokens, items, annotators)
        hidden = self.trunk(tokens)
        log_truth = log_softmax(self.truth_head(hidden))  # (B, C)
        log_confusion = self.confusion_log_proba(hidden)  # (B, A, C, C)
        return torch.logsumexp(log_truth[:, None, :, None] + log_confusion, dim=2)

    def _entries(self, tokens: torch.Tensor, items: torch.Tensor, annotators: torch.Tensor) -> torch.Tensor:
        hidden = rows_of(self.trunk(tokens), items)  # (E, H)
        log_truth = log_softmax(self.truth_head(hidden))  # (E, C)
        return torch.logsumexp(log_truth[:, :, None] + self.confusion_log_proba(hidden, annotators), dim=1)

    def annotator_parameters(self) -> list[nn.Parameter]:
        return [self.annotator_embedding]


class GaussianModel(nn.Module):
    """``padl`` (Liao et al. 2024): annotator a's logits ~ N(mu_g(x) + delta_a(x), sigma_a(x)^2),
    with sigma_a(x) = softplus(s_a(x)) * (1 + H(softmax(mu_g(x))) / log C): more spread where the
    shared prediction is uncertain. Training draws ``n_samples`` reparameterised samples and
    returns them all, (S, B, A, C), so the loss is averaged over samples; evaluation returns the
    log of the mean probability over the samples (``n_samples`` of them, or the mean logits
    when ``n_samples`` is 0).
    """

    def __init__(
        self, in_dim, n_annotators, n_classes, feature_mean, feature_std,
        hidden=128, head_hidden=0, dropout=0.2, n_tokens=1, n_samples=8, sigma_scale=1.0,
    ):
        super().__init__()
        self.n_samples, self.sigma_scale = n_samples, sigma_scale
        self.trunk = PooledTrunk(in_dim, hidden, dropout, feature_mean, feature_std)
        self.global_head = nn.Linear(hidden, n_classes)
        self.delta = per_annotator_head(n_annotators, hidden, n_classes, head_hidden)
        self.log_scale = per_annotator_head(n_annotators, hidden, n_classes, head_hidden)

    def distribution(self, tokens: torch.Tensor, items=None, annotators=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (B, A, C) and standard deviation (B, A, C) of every annotator's logits, or
        (E, C) for the entries (``items``, ``annotators``) only."""
        hidden = self.trunk(tokens)
        mu_global = self.global_head(hidden)  # (B, C)
        p_global = torch.softmax(mu_global, dim=-1)
        uncertainty = -torch.special.xlogy(p_global, p_global).sum(-1) / math.log(mu_global.shape[-1])
        if items is None:
            mean = mu_global[:, None, :] + self.delta(hidden)  # (B, A, C)
            sigma = torch.nn.functional.softplus(self.log_scale(hidden)) * (1.0 + uncertainty)[:, None, None]
        else:
            hidden = rows_of(hidden, items)
            mean = rows_of(mu_global, items) + head_entries(self.delta, hidden, annotators)
            sigma = torch.nn.functional.softplus(head_entries(self.log_scale, hidden, annotators))
            sigma = sigma * (1.0 + rows_of(uncertainty, items))[..., None]
        return mean, self.sigma_scale * sigma

    def forward(self, tokens: torch.Tensor, items=None, annotators=None) -> torch.Tensor:
        """(B, A, C) log-probabilities (or (S, ...) samples in training), or (E, C) for entries."""
        return self._sample(*self.distribution(tokens, items, annotators))

    def _sample(self, mean: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if self.n_samples == 0 or self.sigma_scale == 0:
            return log_softmax(mean)
        noise = torch.randn((self.n_samples, *mean.shape), device=mean.device, dtype=mean.dtype)
        log_p = log_softmax(mean + sigma * noise)  # (S, B, A, C)
        if self.training:
            return log_p
        return torch.logsumexp(log_p, dim=0) - math.log(self.n_samples)

    def annotator_parameters(self) -> list[nn.Parameter]:
        return _batched_parameters(self.delta) + _batched_parameters(self.log_scale)


class EndToEnd(nn.Module):
    """Fine-tune the frame encoder with the annotator model: frames (B, K, H, W, 3) uint8 ->
    per-frame features (B, K, D) -> annotator model -> (B, A, C) log-probabilities."""

    def __init__(self, encoder: nn.Module, annotator_model: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.annotator_model = annotator_model

    def forward(self, frames: torch.Tensor, items=None, annotators=None) -> torch.Tensor:
        batch, n_frames = frames.shape[:2]
        features = self.encoder(frames.flatten(0, 1)).view(batch, n_frames, -1)
        if items is None:
            return self.annotator_model(features)
        return self.annotator_model(features, items, annotators)

    def annotator_parameters(self) -> list[nn.Parameter]:
        return self.annotator_model.annotator_parameters()


ARCHITECTURES: dict[str, type[nn.Module]] = {
    "heads": HeadsModel,
    "qumatl": QueryModel,
    "madl": ConfusionModel,
    "padl": GaussianModel,
}


def build_model(architecture: str, **kwargs) -> nn.Module:
    """Instantiate an architecture by name (see ``ARCHITECTURES``)."""
    try:
        cls = ARCHITECTURES[architecture]
    except KeyError:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {sorted(ARCHITECTURES)}") from None
    return cls(**kwargs)
