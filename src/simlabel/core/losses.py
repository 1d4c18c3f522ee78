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
    parts : {"ce": float, "kl": float, "n_observed": int, "n_soft": int}.
    """
    if unlabeled_weight < 0:
        raise ValueError(f"unlabeled_weight must be >= 0, got {unlabeled_weight}")
    if log_probs.dim() == 3:
        log_probs = log_probs[None]
    observed = targets >= 0
    n_observed = int(observed.sum())
    zero = log_probs.sum() * 0.0
    ce = zero
    if n_observed:
        picked = targets[observed][None, :, None].expand(log_probs.shape[0], -1, 1)
        ce = -log_probs[:, observed].gather(-1, picked).mean()

    kl, n_soft = zero, 0
    if unlabeled_weight > 0:
        soft_entries = soft_mask & ~observed
        n_soft = int(soft_entries.sum())
    if n_soft:
        target = p_soft[soft_entries].detach()
        # KL(p_soft || p_hat) = sum p_soft (log p_soft - log p_hat); 0 log 0 = 0.
        kl = (torch.special.xlogy(target, target) - target * log_probs[:, soft_entries]).sum(-1).mean()
    loss = ce + unlabeled_weight * kl
    return loss, {"ce": ce.item(), "kl": kl.item(), "n_observed": n_observed, "n_soft": n_soft}
