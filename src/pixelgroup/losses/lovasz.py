"""Binary Lovász hinge: a convex surrogate of the Jaccard (IoU) loss (Berman et al., CVPR 2018).

For logits ``f`` and labels ``y`` in {0, 1}, the hinge errors are ``m = 1 - f * (2y - 1)``. Sorting
them in decreasing order gives a chain of nested "predicted" sets; the loss is the dot product of
``relu(m_sorted)`` with the increments of the Jaccard loss along that chain (the Lovász extension of
``1 - IoU`` evaluated at ``relu(m)``). On errors in {0, 1} it equals ``1 - IoU`` of the prediction
that flips exactly the pixels with error 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def lovasz_grad(gt_sorted: Tensor, gts: Tensor | None = None) -> Tensor:
    """Increments of the Jaccard loss along sorted errors.

    Args:
        gt_sorted: ``(..., P)`` labels in {0, 1} (any real dtype), sorted by decreasing error.
        gts: ``(..., 1)`` number of positives; defaults to ``gt_sorted.sum(-1)``. Give it when
            ``gt_sorted`` is only the first ``K`` of the sorted labels: the first ``K`` increments
            are then exact.

    Returns:
        ``(..., P)`` weights ``J(1..i) - J(1..i-1)`` with ``J`` the Jaccard loss of the first ``i``
        pixels taken as the mispredicted set; they sum to ``1 - 0 = 1`` when any label is 1.
    """
    if gts is None:
        gts = gt_sorted.sum(dim=-1, keepdim=True)
    intersection = gts - gt_sorted.cumsum(dim=-1)
    union = gts + (1.0 - gt_sorted).cumsum(dim=-1)  # >= 1 everywhere, so never 0 / 0
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], dim=-1)


def lovasz_hinge(logits: Tensor, labels: Tensor, *, tol: float = 0.0) -> Tensor:
    """Lovász hinge loss of flat logits, one loss per leading index.

    Args:
        logits: ``(P,)`` or ``(N, P)`` real scores (positive = foreground).
        labels: same shape, binary ground truth (bool or {0, 1}).
        tol: with ``tol > 0`` only the errors above ``tol`` are sorted (``topk``), which is much
            cheaper when most pixels are confidently right (e.g. far from an object). The Jaccard
            increments are non-negative and sum to at most 1, so the result is at most ``tol``
            below the exact loss; ``tol = 0`` is exact.

    Returns:
        A scalar for ``(P,)`` input, ``(N,)`` losses for ``(N, P)`` input. ``P = 0`` gives 0.
    """
    if logits.shape != labels.shape:
        raise ValueError(
            f"lovasz_hinge: logits {tuple(logits.shape)} and labels {tuple(labels.shape)} must match"
        )
    if logits.dim() not in (1, 2):
        raise ValueError(f"lovasz_hinge: expected (P,) or (N, P) logits, got {tuple(logits.shape)}")
    if logits.shape[-1] == 0:
        return logits.sum(dim=-1) * 0.0
    target = labels.to(logits.dtype)
    errors = 1.0 - logits * (2.0 * target - 1.0)
    k = errors.shape[-1]
    if tol > 0:
        k = max(1, int((errors.detach() > tol).sum(dim=-1).max()))
    if k < errors.shape[-1]:
        errors_sorted, perm = torch.topk(errors, k, dim=-1, sorted=True)
        grad = lovasz_grad(target.gather(-1, perm), target.sum(dim=-1, keepdim=True))
    else:
        errors_sorted, perm = torch.sort(errors, dim=-1, descending=True)
        grad = lovasz_grad(target.gather(-1, perm))
    return (F.relu(errors_sorted) * grad).sum(dim=-1)
