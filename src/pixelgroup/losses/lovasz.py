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


def lovasz_grad(gt_sorted: Tensor) -> Tensor:
    """Increments of the Jaccard loss along sorted errors.

    Args:
        gt_sorted: ``(..., P)`` labels in {0, 1} (any real dtype), sorted by decreasing error.

    Returns:
        ``(..., P)`` weights ``J(1..i) - J(1..i-1)`` with ``J`` the Jaccard loss of the first ``i``
        pixels taken as the mispredicted set; they sum to ``1 - 0 = 1`` when any label is 1.
    """
    gts = gt_sorted.sum(dim=-1, keepdim=True)
    intersection = gts - gt_sorted.cumsum(dim=-1)
    union = gts + (1.0 - gt_sorted).cumsum(dim=-1)  # >= 1 everywhere, so never 0 / 0
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], dim=-1)


def lovasz_hinge(logits: Tensor, labels: Tensor) -> Tensor:
    """Lovász hinge loss of flat logits, one loss per leading index.

    Args:
        logits: ``(P,)`` or ``(N, P)`` real scores (positive = foreground).
        labels: same shape, binary ground truth (bool or {0, 1}).

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
    errors_sorted, perm = torch.sort(errors, dim=-1, descending=True)
    grad = lovasz_grad(target.gather(-1, perm))
    return (F.relu(errors_sorted) * grad).sum(dim=-1)
