"""Proposal recall: average recall (AR@k) of ranked object proposals, as in COCO / Hosang et al.

For every ground-truth object the best IoU reached by any of the top-k proposals is recorded;
``recall@k(t)`` is the fraction of ground-truth objects (over the whole dataset) whose best IoU is
>= t, and ``AR@k`` its mean over the IoU thresholds 0.50:0.05:0.95.

Unlike COCOeval's AR, a proposal may cover several ground-truth objects (no one-to-one matching):
this is the proposal-recall convention (Hosang et al., PAMI 2016; "is every object covered by some
proposal?"), and it needs no scores beyond the ranking. Above IoU 0.5 a proposal can reach the
threshold with at most one object, so both conventions agree except when a proposal has IoU exactly
0.5 with two objects.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix

from ..ops.labels import relabel_consecutive
from .checks import as_label_image, to_numpy
from .matching import remove_void

__all__ = ["ProposalEvaluator"]

_DEFAULT_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def _proposal_masks(proposals: Any, shape: tuple[int, int]) -> np.ndarray:
    """``(K, H, W)`` bool from a bool/0-1 array or a list of COCO RLE dicts."""
    if isinstance(proposals, list | tuple) and (not proposals or isinstance(proposals[0], dict)):
        if not proposals:
            return np.zeros((0, *shape), bool)
        from pycocotools import mask as mask_utils

        rles = [dict(r, counts=r["counts"].encode("ascii")) if isinstance(r["counts"], str) else r
                for r in proposals]
        with warnings.catch_warnings():  # pycocotools' decode warns under numpy 2 (its __array__)
            warnings.simplefilter("ignore", DeprecationWarning)
            masks = np.moveaxis(mask_utils.decode(rles), -1, 0).astype(bool)  # (K, H, W)
    else:
        masks = to_numpy(proposals)
        if masks.ndim != 3:
            raise ValueError(f"proposals must be (K, H, W) masks or a list of RLE dicts, got {masks.shape}")
        if masks.dtype != bool and not np.isin(masks, (0, 1)).all():
            raise ValueError("proposals must be bool (or 0/1) masks; threshold soft masks first")
        masks = masks.astype(bool)
    if masks.shape[1:] != shape:
        raise ValueError(f"proposals have size {masks.shape[1:]} but gt_labels has {shape}")
    return masks


def best_iou_per_object(gt: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """``(K, G)``: running maximum over the first k proposals of the IoU with each gt object.

    Args:
        gt: ``(H, W)`` non-negative label image. masks: ``(K, H, W)`` bool proposals, best first.

    Returns:
        Row ``k - 1`` holds, per ground-truth object (ids ascending), the best IoU among the top k.
    """
    index, ids = relabel_consecutive(gt)  # index 0 = background, 1..G = objects in id order
    index = index.reshape(-1)
    n_obj = ids.size
    if masks.shape[0] == 0 or n_obj == 0:
        return np.zeros((masks.shape[0], n_obj))
    onehot = csr_matrix((np.ones(index.size), (np.arange(index.size), index)), shape=(index.size, n_obj + 1))
    flat = csr_matrix(masks.reshape(masks.shape[0], -1).astype(np.float64))  # (K, H*W)
    inter = (flat @ onehot).toarray()[:, 1:]  # (K, G)
    gt_area = np.bincount(index, minlength=n_obj + 1)[1:]
    prop_area = masks.reshape(masks.shape[0], -1).sum(axis=1)
    iou = inter / (prop_area[:, None] + gt_area[None, :] - inter)
    return np.maximum.accumulate(iou, axis=0)


class ProposalEvaluator:
    """Average recall of ranked proposals over a dataset: ``update`` per image, ``compute``, ``reset``.

    Args:
        ks: proposal budgets k of the ``ar@k`` entries.
        thresholds: IoU thresholds averaged in AR (default 0.50:0.05:0.95).
    """

    def __init__(
        self, *, ks: Sequence[int] = (10, 100), thresholds: Sequence[float] = _DEFAULT_THRESHOLDS
    ) -> None:
        self.ks = tuple(int(k) for k in ks)
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"ks must be positive proposal counts, got {tuple(ks)}")
        self.thresholds = np.asarray(thresholds, float)
        if self.thresholds.size == 0 or not ((self.thresholds > 0) & (self.thresholds <= 1)).all():
            raise ValueError(f"thresholds must be values in (0, 1], got {tuple(thresholds)}")
        self.reset()

    def reset(self) -> None:
        """Forget every image seen."""
        self._best: dict[int, list[np.ndarray]] = {k: [] for k in self.ks}

    def update(self, gt_labels: Any, proposals: Any) -> None:
        """Add one image.

        Args:
            gt_labels: ``(H, W)`` integer ground truth, 0 background, > 0 objects, < 0 void (void
                pixels are removed from gt and proposals before the IoU).
            proposals: ``(K, H, W)`` bool masks ranked best first, or a list of K COCO RLE dicts.
        """
        gt = as_label_image(gt_labels, name="gt_labels", allow_void=True)
        masks = _proposal_masks(proposals, gt.shape)
        gt, _, void = remove_void(gt, np.zeros(gt.shape, np.int64))
        if void is not None:
            masks = masks & ~void
        best = best_iou_per_object(gt, masks)  # (K, G)
        if best.shape[0] == 0:  # no proposal: nothing recalled
            best = np.zeros((1, best.shape[1]))
        for k in self.ks:
            self._best[k].append(best[min(k, best.shape[0]) - 1])

    def compute(self) -> dict[str, float]:
        """``ar@{k}`` for each k, and ``n_gt`` (NaN ARs when there is no ground-truth object)."""
        out: dict[str, float] = {}
        for k in self.ks:
            best = np.concatenate(self._best[k]) if self._best[k] else np.zeros(0)
            recall = (best[None, :] >= self.thresholds[:, None]).mean(axis=1) if best.size else None
            out[f"ar@{k}"] = float(recall.mean()) if recall is not None else float("nan")
        out["n_gt"] = float(sum(b.size for b in self._best[self.ks[0]]))
        return out
