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


def lovasz_hinge_segments(
    logits: Tensor, labels: Tensor, segments: Tensor, *, n_segments: int, positives: Tensor | None = None
) -> Tensor:
    """Lovász hinge of a ragged batch: one loss per segment, with one sort for all of them.

    Segment ``k`` holds the entries ``i`` with ``segments[i] == k``; its loss is that of
    :func:`lovasz_hinge` on those entries. The entries may come in any order.

    Args:
        logits: ``(M,)`` real scores (positive = foreground).
        labels: ``(M,)`` binary ground truth (bool or {0, 1}).
        segments: ``(M,)`` int64 segment of each entry, in ``[0, n_segments)``.
        n_segments: N, the number of segments (segments without entries get 0).
        positives: ``(N,)`` number of positives of each segment's full set. Give it when a segment
            holds only its largest hinge errors (the left-out entries' errors being no larger than
            any kept one's, e.g. all ``<= tol``): its loss is then the exact loss less the
            left-out entries' terms, each at most their error, together at most the largest
            left-out error. Defaults to counting ``labels``.

    Returns:
        ``(N,)`` losses.
    """
    if not logits.shape == labels.shape == segments.shape or logits.dim() != 1:
        raise ValueError(
            f"lovasz_hinge_segments: logits {tuple(logits.shape)}, labels {tuple(labels.shape)} and segments "
            f"{tuple(segments.shape)} must be (M,) alike"
        )
    target = labels.to(torch.int64)
    errors = 1.0 - logits * (2.0 * target.to(logits.dtype) - 1.0)
    order = _segment_order(errors.detach(), segments)
    seg, gt = segments.index_select(0, order), target.index_select(0, order)  # (M,)
    counts = torch.bincount(segments, minlength=n_segments)  # (N,)
    pos_counts = torch.zeros_like(counts).index_add_(0, segments, target)  # (N,)
    gts = pos_counts if positives is None else positives.to(torch.int64)
    before = torch.cumsum(counts, 0) - counts  # (N,) sorted position of each segment's first entry
    # exact integers, as in lovasz_grad, over the first r + 1 entries of a segment (r = 0, 1, ...):
    # intersection = its positives not yet passed, union = intersection + r + 1
    intersection = (gts + torch.cumsum(pos_counts, 0) - pos_counts).index_select(0, seg) - torch.cumsum(gt, 0)
    union = intersection + torch.arange(1, seg.numel() + 1, device=seg.device) - before.index_select(0, seg)
    jaccard = 1.0 - intersection.to(logits.dtype) / union.to(logits.dtype)
    grad = torch.diff(jaccard, prepend=jaccard.new_zeros(1))
    starts = before[counts > 0]
    grad.index_copy_(0, starts, jaccard.index_select(0, starts))  # a segment's first increment
    terms = F.relu(errors.index_select(0, order)) * grad
    return logits.new_zeros(n_segments).index_add(0, seg, terms)


def _segment_order(errors: Tensor, segments: Tensor) -> Tensor:
    """``(M,)`` permutation sorting by increasing segment, then decreasing error."""
    if errors.dtype == torch.float32 and errors.numel():
        # one int64 sort: the segment in the high 32 bits, the error's order-preserving integer
        # image (IEEE bits, negative values mirrored), reversed, in the low 32 bits
        bits = errors.view(torch.int32)
        ordered = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).to(torch.int64)  # increasing in errors
        return torch.sort(segments * (1 << 32) + ((1 << 31) - 1 - ordered), stable=True).indices
    order = torch.sort(errors, descending=True).indices
    return order.index_select(0, torch.sort(segments.index_select(0, order), stable=True).indices)
