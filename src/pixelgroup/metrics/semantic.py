"""Semantic segmentation: a confusion matrix accumulated with ``np.bincount``, and mIoU from it.

Definitions as the PASCAL VOC devkit: per class ``IoU_c = TP_c / (TP_c + FP_c + FN_c)``; a class
absent from both ground truth and prediction over the whole dataset has IoU NaN and is left out of
the mean. ``pixel_accuracy = sum_c TP_c / N``; ``mean_accuracy = mean_c TP_c / (TP_c + FN_c)`` over
classes present in the ground truth.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .checks import check_same_shape, to_numpy

__all__ = ["ConfusionMatrix"]


class ConfusionMatrix:
    """Confusion matrix over a dataset: ``update`` per image, ``compute``, ``reset``.

    Args:
        n_classes: number of classes K; valid labels are 0..K-1.
        ignore_index: ground-truth label skipped (as are negative ground-truth labels, the pixelgroup
            ``-1 = ignore`` convention).

    Example:
        >>> cm = ConfusionMatrix(2)
        >>> cm.update(np.array([[0, 1]]), np.array([[0, 0]]))
        >>> cm.compute()["miou"]
        0.25
    """

    def __init__(self, n_classes: int, *, ignore_index: int = 255) -> None:
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        self.n_classes = int(n_classes)
        self.ignore_index = int(ignore_index)
        self.reset()

    def reset(self) -> None:
        """Zero the matrix."""
        self.matrix = np.zeros((self.n_classes, self.n_classes), np.int64)  # rows: gt, columns: pred

    def _check(self, x: Any, name: str) -> np.ndarray:
        arr = to_numpy(x)
        if arr.ndim != 2:
            raise ValueError(f"{name} must be an (H, W) class map, got shape {arr.shape}; take the argmax")
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} must have an integer dtype, got {arr.dtype}; cast with .astype(int)")
        return arr.astype(np.int64, copy=False)

    def update(self, gt: Any, pred: Any) -> None:
        """Add one image.

        Args:
            gt: ``(H, W)`` integer class map; ``ignore_index`` and negative values are skipped.
            pred: ``(H, W)`` integer class map with values in 0..K-1.
        """
        gt = self._check(gt, "gt")
        pred = self._check(pred, "pred")
        check_same_shape(gt, pred)
        valid = (gt != self.ignore_index) & (gt >= 0)
        gt, pred = gt[valid], pred[valid]
        k = self.n_classes
        if gt.size and gt.max() >= k:
            raise ValueError(f"gt has class {gt.max()} but n_classes={k}; raise n_classes or ignore_index")
        if pred.size and (pred.min() < 0 or pred.max() >= k):
            raise ValueError(f"pred values must be in [0, {k - 1}], got [{pred.min()}, {pred.max()}]")
        self.matrix += np.bincount(gt * k + pred, minlength=k * k).reshape(k, k)

    def compute(self) -> dict[str, Any]:
        """``miou``, ``iou`` (K,) with NaN for absent classes, ``pixel_accuracy``, ``mean_accuracy``,
        ``confusion`` (K, K) (rows ground truth, columns prediction)."""
        m = self.matrix.astype(float)
        tp = np.diag(m)
        gt_count = m.sum(axis=1)
        pred_count = m.sum(axis=0)
        union = gt_count + pred_count - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, tp / union, np.nan)
            acc = np.where(gt_count > 0, tp / gt_count, np.nan)
        nan = float("nan")
        total = m.sum()
        return {
            "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else nan,
            "iou": iou,
            "pixel_accuracy": float(tp.sum() / total) if total else nan,
            "mean_accuracy": float(np.nanmean(acc)) if np.isfinite(acc).any() else nan,
            "confusion": self.matrix.copy(),
        }
