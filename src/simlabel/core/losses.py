"""The SimLabel loss (SPEC section 3, Eqs. 1-3).

L = mean over observed (i, a) of CE(p_hat_a(x_i), y_ia)
    + lambda * mean over soft-labelled missing (i, a) of KL(p_soft || p_hat_a(x_i)).

Skip is lambda = 0: the KL term is then not computed at all, so no gradient can reach an
annotator's parameters from entries that annotator did not label.
"""

from __future__ import annotations

import torch


def simlabel_loss(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    p_soft: torch.Tensor,
    soft_mask: torch.Tensor,
    unlabeled_weight: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy on observed entries plus weighted KL on soft-labelled missing ones.

    Parameters
    ----------
    log_probs : (B, A, C) log p_hat, or (S, B, A, C) Monte-Carlo samples of it: each term is
        then averaged over the S samples too.
    targets : (B, A) long, class index or -1 where the annotator gave no label.
    p_soft : (B, A, C) soft labels (no gradient flows into them); may be None when lambda = 0.
    soft_mask : (B, A) bool, missing entries that have a soft label; may be None when lambda = 0.
    unlabeled_weight : lambda >= 0; 0 is the Skip baseline.

    Returns
    -------
    loss : scalar tensor.
    parts : {"ce", "kl", "n_observed", "n_soft"} as 0-d tensors (read them outside the hot loop).
    """
    if unlabeled_weight < 0:
        raise ValueError(f"unlabeled_weight must be >= 0, got {unlabeled_weight}")
    if log_probs.dim() == 3:
        log_probs = log_probs[None]
    n_samples = log_probs.shape[0]
    # Masked sums, not boolean indexing: no host synchronisation inside a training step.
    observed = targets >= 0
    n_observed = observed.sum()
    picked = log_probs.gather(-1, targets.clamp(min=0)[None, ..., None].expand(n_samples, *targets.shape, 1))[..., 0]
    ce = -(picked * observed).sum() / (n_samples * n_observed.clamp(min=1))

    kl, n_soft = log_probs.sum() * 0.0, torch.zeros((), dtype=torch.long, device=log_probs.device)
    if unlabeled_weight > 0 and p_soft is not None:
        soft_entries = soft_mask & ~observed
        n_soft = soft_entries.sum()
        target = torch.where(soft_entries[..., None], p_soft.detach(), 0.0)
        # KL(p_soft || p_hat) = sum p_soft log p_soft - sum p_soft log p_hat, 0 log 0 = 0 (the
        # clamp; xlogy costs 4x on the CPU). The first sum needs no gradient and no sample axis.
        neg_entropy = (target * target.clamp(min=torch.finfo(target.dtype).tiny).log()).sum()
        kl = (n_samples * neg_entropy - (target * log_probs).sum()) / (n_samples * n_soft.clamp(min=1))
    loss = ce + unlabeled_weight * kl
    return loss, {"ce": ce.detach(), "kl": kl.detach(), "n_observed": n_observed, "n_soft": n_soft}
