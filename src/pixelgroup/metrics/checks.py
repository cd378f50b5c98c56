"""Input checks shared by the metrics: label images, per-instance values, lists of images.

Every check raises a one-line ``ValueError`` naming the argument and the fix; inputs may be numpy
arrays or torch tensors on any device (copied to numpy on the CPU).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["as_label_image", "check_same_shape", "per_image", "per_instance_values", "to_numpy"]


def to_numpy(x: Any) -> np.ndarray:
    """A numpy array from a numpy array, a torch tensor on any device, or a nested sequence."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def as_label_image(x: Any, *, name: str = "labels", allow_void: bool = False) -> np.ndarray:
    """Validate a label image and return it as an ``(H, W)`` int64 numpy array.

    Args:
        x: ``(H, W)`` integer array or tensor, 0 = background, > 0 = instance ids.
        name: how the argument is called in error messages.
        allow_void: accept negative values (void / ignore pixels in ground truth).
    """
    arr = to_numpy(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be an (H, W) label image, got shape {arr.shape}; select one image")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must have an integer dtype, got {arr.dtype}; cast labels with .astype(int)")
    if not allow_void and arr.size and arr.min() < 0:
        raise ValueError(f"{name} has negative values ({arr.min()}); only ground truth may mark void with -1")
    return arr.astype(np.int64, copy=False)


def check_same_shape(a: np.ndarray, b: np.ndarray, names: str = "gt and pred") -> None:
    """Raise a ValueError naming both shapes if ``a`` and ``b`` differ in shape."""
    if a.shape != b.shape:
        raise ValueError(f"{names} must have the same shape, got {a.shape} and {b.shape}")


def per_instance_values(
    values: Any, ids: np.ndarray, *, name: str, default: np.ndarray | None = None
) -> np.ndarray:
    """Per-instance values (scores, classes) aligned with ``ids``.

    Args:
        values: a mapping ``id -> value``, or a 1-D array whose entry ``id - 1`` belongs to instance
            ``id`` (the :class:`pixelgroup.types.Instances` convention); or ``None`` to use ``default``.
        ids: ``(N,)`` instance ids present in the label image.
        name: how the argument is called in error messages.
        default: ``(N,)`` values used when ``values`` is ``None``.

    Returns:
        ``(N,)`` array, entry ``i`` for ``ids[i]``.
    """
    if values is None:
        if default is None:
            raise ValueError(f"{name} is None; give one value per instance id (array or dict)")
        return default
    if isinstance(values, Mapping):
        missing = [int(i) for i in ids if int(i) not in values]
        if missing:
            raise ValueError(f"{name} has no value for instance ids {missing[:5]}; give one per instance")
        return np.asarray([values[int(i)] for i in ids])
    arr = to_numpy(values).reshape(-1)
    if len(ids) and int(ids.max()) > arr.shape[0]:
        raise ValueError(
            f"{name} has {arr.shape[0]} entries but the label image has id {int(ids.max())}; "
            "give one value per id 1..max (entry id - 1) or a dict id -> value"
        )
    return arr[ids - 1]


def per_image(
    gt_list: Sequence[Any],
    pred_list: Sequence[Any],
    scores_list: Sequence[Any] | None,
    gt_classes_list: Sequence[Any] | None,
    pred_classes_list: Sequence[Any] | None,
    ignore_list: Sequence[Any] | None,
) -> Iterator[tuple[Any, ...]]:
    """Yield ``(gt, pred, scores, gt_classes, pred_classes, ignore)`` per image (None for absent lists).

    Raises:
        ValueError: a given list does not have one entry per ground-truth image.
    """
    lists = {
        "pred_list": pred_list,
        "scores_list": scores_list,
        "gt_classes_list": gt_classes_list,
        "pred_classes_list": pred_classes_list,
        "ignore_list": ignore_list,
    }
    n = len(gt_list)
    for name, seq in lists.items():
        if seq is not None and len(seq) != n:
            raise ValueError(f"{name} has {len(seq)} entries for {n} ground-truth images")
    for i in range(n):
        yield (gt_list[i], *(None if seq is None else seq[i] for seq in lists.values()))
