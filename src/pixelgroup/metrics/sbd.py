"""CVPPP leaf-segmentation measures: symmetric best Dice (SBD) and difference in count (DiC).

Definitions from Scharr et al., "Leaf segmentation in plant phenotyping: a collation study"
(MVA 2016), as in the CVPPP evaluation code:

* ``Dice(a, b) = 2 |a ∩ b| / (|a| + |b|)``
* best Dice ``BD(A, B) = 1/|A| sum_{a in A} max_{b in B} Dice(a, b)``
* ``SBD(gt, pred) = min(BD(gt, pred), BD(pred, gt))``
* ``DiC = N_pred - N_gt`` and ``|DiC|``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .matching import LabelOverlap, label_overlap

__all__ = ["best_dice", "difference_in_count", "sbd_from_overlap", "symmetric_best_dice"]


def _best_dice_both(ov: LabelOverlap) -> tuple[float, float]:
    """``(BD(gt, pred), BD(pred, gt))`` from a contingency table; NaN for an empty first argument."""
    dice = ov.dice
    best_gt = np.zeros(ov.gt_ids.size)
    best_pred = np.zeros(ov.pred_ids.size)
    np.maximum.at(best_gt, ov.rows, dice)
    np.maximum.at(best_pred, ov.cols, dice)
    bd_gt = float(best_gt.mean()) if best_gt.size else float("nan")
    bd_pred = float(best_pred.mean()) if best_pred.size else float("nan")
    return bd_gt, bd_pred


def best_dice(a: Any, b: Any) -> float:
    """``BD(a, b)``: mean over the objects of ``a`` of their best Dice with an object of ``b``.

    Args:
        a, b: ``(H, W)`` non-negative integer label images, 0 = background.

    Returns:
        The best Dice in [0, 1]; NaN when ``a`` has no object.
    """
    return _best_dice_both(label_overlap(a, b))[0]


def symmetric_best_dice(gt: Any, pred: Any) -> float:
    """``SBD = min(BD(gt, pred), BD(pred, gt))``; 1.0 when both are empty, 0.0 when only one is.

    Args:
        gt, pred: ``(H, W)`` non-negative integer label images, 0 = background.
    """
    return sbd_from_overlap(label_overlap(gt, pred))


def sbd_from_overlap(ov: LabelOverlap) -> float:
    """:func:`symmetric_best_dice` from a precomputed contingency table."""
    if ov.gt_ids.size == 0 and ov.pred_ids.size == 0:
        return 1.0
    if ov.gt_ids.size == 0 or ov.pred_ids.size == 0:
        return 0.0
    return min(_best_dice_both(ov))


def difference_in_count(gt: Any, pred: Any) -> int:
    """``DiC = N_pred - N_gt``, the signed difference of the numbers of objects (``abs()`` gives |DiC|).

    Args:
        gt, pred: ``(H, W)`` non-negative integer label images, 0 = background.
    """
    ov = label_overlap(gt, pred)
    return int(ov.pred_ids.size - ov.gt_ids.size)
