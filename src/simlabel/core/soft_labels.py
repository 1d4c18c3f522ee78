"""Similarity-weighted soft labels (SPEC section 2) and their confidence (SPEC section 4).

Shapes: B items in a batch, A annotators, C classes, L = the most labellers any item of the
batch has. Soft labels are built from each item's labellers only, through (B, A, L) weights,
so the cost grows with the labels given, never with A * A per item.
"""

from __future__ import annotations

import math

import torch

from simlabel.choices import CONFIDENCE_FORMULAS, SOFT_LABEL_SOURCES


def labeller_index(labelled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Compact index of who labelled each item.

    Parameters
    ----------
    labelled : (B, A) bool, True where the annotator labelled the item.

    Returns
    -------
    index : (B, L) long, annotator indices (padding entries point at annotator 0).
    valid : (B, L) bool, False on padding.
    """
    counts = labelled.sum(1)
    width = max(int(counts.max()) if counts.numel() else 0, 1)
    # nonzero lists each row's labellers in annotator order; a row sort of the (B, A) mask cost
    # ~1 ms for CIFAR-10N's 128 x 747 batch, 10x this.
    items, annotators = labelled.nonzero(as_tuple=True)
    slots = torch.arange(len(items), device=labelled.device) - (torch.cumsum(counts, 0) - counts)[items]
    index = torch.zeros((labelled.shape[0], width), dtype=torch.long, device=labelled.device)
    index[items, slots] = annotators
    valid = torch.arange(width, device=labelled.device)[None, :] < counts[:, None]
    return index, valid


def weighted_soft_labels(
    similarity: torch.Tensor,
    annotators: torch.Tensor,
    index: torch.Tensor,
    valid: torch.Tensor,
    sources: torch.Tensor,
    transport: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 4 for any set of entries: annotator ``annotators[...]`` of an item whose labellers
    are ``index[..., l]`` (``valid``), with their distributions ``sources[..., l, :]``.

    ``w_ak = S_ak / sum_{k' in O_i} S_ak'`` over the item's labellers other than a, uniform
    over them when that sum is 0; ``p_soft = sum_k w_ak * sources_k`` (each source first
    carried through ``transport[a, k]`` when given). Shapes broadcast: the dense batch uses
    annotators (1, A) with index (B, 1, L); sampled entries use annotators (E,) with index (E, L).

    Returns
    -------
    p_soft : (..., C), zeros where ``has_soft`` is False.
    has_soft : (...) bool, the entry has at least one labeller other than its annotator.
    """
    others = valid & (index != annotators[..., None])  # (..., L)
    weights, has_soft = labeller_weights(similarity[annotators[..., None], index], others, dim=-1)
    if transport is not None:  # (..., L, C, C): P(a says z | k says c)
        sources = torch.einsum("...lc,...lcz->...lz", sources, transport[annotators[..., None], index])
    return torch.einsum("...l,...lc->...c", weights, sources), has_soft


def labeller_weights(pair_similarity: torch.Tensor, others: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 4's weights along the labeller axis ``dim``: ``S_ak`` over the labellers ``others``
    (bool, same shape), normalised to sum 1; uniform over them where those similarities sum to
    0. Also returns whether any labeller is left (``dim`` reduced away)."""
    raw = pair_similarity * others
    total = raw.sum(dim, keepdim=True)
    count = others.sum(dim, keepdim=True)
    uniform = others / count.clamp(min=1)
    weights = torch.where(total > 0, raw / total.clamp(min=torch.finfo(raw.dtype).tiny), uniform)
    return weights, count.squeeze(dim) > 0


def labeller_sources(probs: torch.Tensor, labels: torch.Tensor, index: torch.Tensor, source: str) -> torch.Tensor:
    """(B, L, C) distributions of each item's labellers: their predictions (``probs`` (B, A, C),
    detached), their observed one-hot labels, or the average of both (``mixed``)."""
    rows = torch.arange(labels.shape[0], device=labels.device)[:, None]
    return mix_sources(probs.detach()[rows, index], labels[rows, index], source)


def mix_sources(predicted: torch.Tensor, observed: torch.Tensor, source: str) -> torch.Tensor:
    """(..., C) what each labeller contributes under ``source``: its predictions ``predicted``
    (..., C), its one-hot label ``observed`` (..., ``MISSING`` counts as class 0: mask it), or the
    mean of both (``mixed``)."""
    if source not in SOFT_LABEL_SOURCES:
        raise ValueError(f"soft_label_source must be one of {SOFT_LABEL_SOURCES}, got {source!r}")
    parts = []
    if source in ("predictions", "mixed"):
        parts.append(predicted)
    if source in ("labels", "mixed"):
        parts.append(torch.nn.functional.one_hot(observed.clamp(min=0), predicted.shape[-1]).to(predicted.dtype))
    return sum(parts) / len(parts)


def has_labellers(labels: torch.Tensor) -> torch.Tensor:
    """(B, A) bool: entry (i, a) has at least one labeller other than a (``soft_labels``'
    ``has_soft``), without computing any soft label."""
    labelled = labels >= 0
    return labelled.sum(1, keepdim=True) > labelled.to(torch.int64)


def soft_labels(
    probs: torch.Tensor,
    labels: torch.Tensor,
    similarity: torch.Tensor,
    source: str = "predictions",
    transport: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Similarity-weighted soft label for every (item, annotator) entry (Eq. 4).

    Parameters
    ----------
    probs : (B, A, C) predicted probabilities p_hat (detached here: soft labels are targets).
    labels : (B, A) long observed labels, -1 = missing; defines O_i, the labellers of item i.
    similarity : (A, A) annotator similarity.
    source : ``predictions`` (paper: labellers' model outputs) | ``labels`` (their observed
        one-hot labels) | ``mixed`` (the average of both).
    transport : optional (A, A, C, C) ``T[a, k, c, z] = P(a says z | k says c)``
        (``kappa.transport_matrices``): each labeller's distribution is carried into annotator
        a's label space before weighting ("annotator-aware soft labels"). None = the paper.

    Returns
    -------
    p_soft : (B, A, C), a distribution where ``has_soft`` else zeros.
    has_soft : (B, A) bool.
    """
    index, valid = labeller_index(labels >= 0)
    sources = labeller_sources(probs, labels, index, source)  # (B, L, C)
    similarity = similarity.to(probs.dtype)
    annotators = torch.arange(labels.shape[1], device=labels.device)
    if transport is not None:
        return weighted_soft_labels(
            similarity, annotators[None, :], index[:, None, :], valid[:, None, :], sources[:, None], transport
        )
    # Laid out (B, L, A), so the elementwise work runs along the long, contiguous annotator
    # axis: in weighted_soft_labels' (B, A, L) layout the short last axis made it ~4x slower
    # (CIFAR-10N, 128 x 747, one thread: 9-16 ms against ~2 ms).
    n_items, width = index.shape
    pair_similarity = similarity.index_select(1, index.reshape(-1)).t().contiguous().view(n_items, width, -1)  # S[a, k_bl]
    others = valid[:, :, None] & (index[:, :, None] != annotators)
    weights, has_soft = labeller_weights(pair_similarity, others, dim=1)
    return torch.bmm(weights.transpose(1, 2), sources), has_soft


def confidence(p: torch.Tensor, formula: str = "product") -> torch.Tensor:
    """Confidence of distributions over the last axis (Eqs. 5-7).

    ``max``: max(p); ``entropy``: 1 - H(p) / log C; ``product`` (paper): their product.
    """
    if formula not in CONFIDENCE_FORMULAS:
        raise ValueError(f"confidence formula must be one of {CONFIDENCE_FORMULAS}, got {formula!r}")
    top = p.max(-1).values
    if formula == "max":
        return top
    entropy = -(p * p.clamp(min=torch.finfo(p.dtype).tiny).log()).sum(-1)  # 0 log 0 = 0; xlogy is 4x slower
    certainty = 1.0 - entropy / math.log(p.shape[-1])
    return certainty if formula == "entropy" else top * certainty
