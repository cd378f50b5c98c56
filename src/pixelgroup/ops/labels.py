"""Relabel label images to consecutive ids, written once for numpy and once for torch.

Conventions: ``0`` = background, positive ids = objects, negative values (``-1``) = void/ignore.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def relabel_consecutive(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map the positive ids of an integer array to ``1..N`` in ascending order; 0 stays, < 0 -> -1.

    Example: ``[[0, 7], [3, -5]]`` -> ``[[0, 2], [1, -1]]`` with ``original = [3, 7]``.

    Returns:
        ``(labels int64 same shape, original_ids (N,))``: ``labels == k`` where
        ``ids == original_ids[k - 1]``.
    """
    ids = np.asarray(ids)
    positive = ids > 0
    original, inverse = np.unique(ids[positive], return_inverse=True)
    out = np.where(ids < 0, -1, 0).astype(np.int64)
    out[positive] = inverse.reshape(-1) + 1
    return out, original


def partition_ids(values: np.ndarray) -> np.ndarray:
    """Number the distinct values of any array ``0..S-1`` in ascending order (a partition's ids)."""
    values = np.asarray(values)
    _, inverse = np.unique(values, return_inverse=True)
    return inverse.reshape(values.shape).astype(np.int64)


def consecutive_ids(labels: Tensor, n_ids: int) -> Tensor:
    """Relabel ``labels`` with values in ``[-1, n_ids)`` along the last axis to ``0..S-1`` keeping the
    order and dropping unused ids; ``-1`` stays ``-1``. Works per row for ``(B, N)`` input.

    Args:
        labels: ``(N,)`` or ``(B, N)`` int64, values in ``[-1, n_ids)``.
        n_ids: upper bound (exclusive) of the ids.

    Returns:
        Same shape, int64, ids ``0..S_b - 1`` per row (``S_b`` = ids used in row ``b``).
    """
    squeeze = labels.dim() == 1
    lab = labels[None] if squeeze else labels  # (B, N)
    used = torch.zeros(lab.shape[0], n_ids + 1, dtype=torch.long, device=lab.device)
    used.scatter_(1, lab.clamp_min(-1) + 1, 1)
    new_id = used[:, 1:].clamp_max(1).cumsum(1) - 1  # (B, n_ids)
    out = torch.gather(new_id, 1, lab.clamp_min(0))
    out = torch.where(lab >= 0, out, torch.full_like(out, -1))
    return out[0] if squeeze else out
