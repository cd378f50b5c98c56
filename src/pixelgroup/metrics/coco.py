"""COCO-style mask average precision from label images, equal to pycocotools' ``COCOeval("segm")``.

:class:`CocoAccumulator` re-implements the parts of ``COCOeval`` that matter for label images
(area range "all", ``maxDets=100``) directly on label images: per image and category, detections
sorted by score (stable) are greedily matched to the unmatched ground truth of highest IoU >= t
(ties go to the later ground truth, a detection matching only the crowd region is ignored); then,
per category over the dataset, precision/recall ranked by score, precision made monotone and read at
the 101 recall points 0:0.01:1; AP is their mean over the 10 IoU thresholds 0.50:0.05:0.95 and over
categories with ground truth. :func:`pixelgroup.metrics.coco_export.coco_eval_reference` runs
pycocotools itself on the same data, and the tests check both agree to 1e-6.

Per-instance values (scores, classes) are a 1-D array whose entry ``id - 1`` belongs to instance
``id`` (the :class:`pixelgroup.types.Instances` convention) or a dict ``id -> value``. Ground-truth
pixels < 0, or an ``ignore`` mask, form a crowd (``iscrowd=1``) region of every category.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .checks import as_label_image, per_image, per_instance_values
from .matching import label_overlap, remove_void

__all__ = [
    "IOU_THRESHOLDS",
    "RECALL_THRESHOLDS",
    "CocoAccumulator",
    "CocoResult",
    "coco_segm_eval",
]

# exactly COCOeval's Params.setDetParams values
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1)
_T50 = int(np.argmin(np.abs(IOU_THRESHOLDS - 0.5)))
_T75 = int(np.argmin(np.abs(IOU_THRESHOLDS - 0.75)))


@dataclass(frozen=True)
class CocoResult:
    """COCO mask AP summary (NaN when no category has ground truth).

    Attributes:
        ap: AP averaged over IoU 0.50:0.05:0.95 and categories (COCOeval ``stats[0]``).
        ap50, ap75: AP at IoU 0.5 and 0.75 (``stats[1]``, ``stats[2]``).
        ar100: recall with at most 100 detections per image, averaged over IoUs and categories (``stats[8]``).
        ap_per_class: category -> AP over IoU 0.50:0.05:0.95, for categories with ground truth.
    """

    ap: float
    ap50: float
    ap75: float
    ar100: float
    ap_per_class: dict[int, float] = field(default_factory=dict)

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        """Flat dict: ``{prefix}ap``, ``{prefix}ap50``, ..., ``{prefix}ap/class_{c}``."""
        out = {f"{prefix}{k}": getattr(self, k) for k in ("ap", "ap50", "ap75", "ar100")}
        out.update({f"{prefix}ap/class_{c}": v for c, v in self.ap_per_class.items()})
        return out


@dataclass(frozen=True)
class _Detections:
    """Evaluation of one image and one category: ``scores`` (D,) sorted, ``matched``/``ignored`` (T, D)."""

    scores: np.ndarray
    matched: np.ndarray
    ignored: np.ndarray
    n_gt: int


def _greedy_match(ious: np.ndarray, crowd: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval.evaluateImg's greedy matching.

    Args:
        ious: ``(D, G)`` IoU of the detections (sorted by score) with the regular ground truth.
        crowd: ``(D,)`` intersection / detection area with the crowd region, or None.

    Returns:
        ``(matched, ignored)``, both ``(T, D)`` bool.
    """
    n_det, n_gt = ious.shape
    matched = np.zeros((IOU_THRESHOLDS.size, n_det), bool)
    ignored = np.zeros_like(matched)
    for t, thr in enumerate(IOU_THRESHOLDS):
        thr = min(thr, 1 - 1e-10)
        taken = np.zeros(n_gt, bool)
        for d in range(n_det):
            row = np.where(taken, -1.0, ious[d])
            if n_gt and row.max() >= thr:
                m = n_gt - 1 - int(np.argmax(row[::-1]))  # the last ground truth of highest IoU
                taken[m] = True
                matched[t, d] = True
            elif crowd is not None and crowd[d] >= thr:
                ignored[t, d] = True
    return matched, ignored


class CocoAccumulator:
    """Dataset accumulator for COCO mask AP: ``update`` per image, ``compute`` once, ``reset``.

    Args:
        max_dets: detections kept per image and category, highest scores first (COCO: 100).
    """

    def __init__(self, *, max_dets: int = 100) -> None:
        if max_dets < 1:
            raise ValueError(f"max_dets must be >= 1, got {max_dets}")
        self.max_dets = int(max_dets)
        self.reset()

    def reset(self) -> None:
        self._per_class: dict[int, list[_Detections]] = {}

    def update(
        self,
        gt: Any,
        pred: Any,
        scores: Any = None,
        *,
        gt_classes: Any = None,
        pred_classes: Any = None,
        ignore: Any = None,
    ) -> None:
        """Add one image.

        Args:
            gt: ``(H, W)`` integer ground truth, 0 = background, > 0 instances, < 0 crowd / void.
            pred: ``(H, W)`` non-negative integer prediction.
            scores: per predicted instance (array entry ``id - 1`` or dict); None ranks by area.
            gt_classes, pred_classes: per instance category (give both or neither; default one class 0).
            ignore: optional ``(H, W)`` bool mask added to the crowd region.
        """
        if (gt_classes is None) != (pred_classes is None):
            raise ValueError("give both gt_classes and pred_classes, or neither (class-agnostic AP)")
        pred = as_label_image(pred, name="pred")
        gt, _, void = remove_void(gt, pred, ignore)
        ov = label_overlap(gt, pred)
        score = per_instance_values(scores, ov.pred_ids, name="scores", default=ov.pred_area.astype(float))
        gt_cls = per_instance_values(
            gt_classes, ov.gt_ids, name="gt_classes", default=np.zeros(ov.gt_ids.size, int)
        )
        pred_cls = per_instance_values(
            pred_classes, ov.pred_ids, name="pred_classes", default=np.zeros(ov.pred_ids.size, int)
        )
        iou = np.zeros((ov.pred_ids.size, ov.gt_ids.size))  # (P, G)
        iou[ov.cols, ov.rows] = ov.iou
        crowd = None
        if void is not None:
            void_inter = np.bincount(pred[void], minlength=int(ov.pred_ids.max(initial=0)) + 1)
            crowd = void_inter[ov.pred_ids] / ov.pred_area  # COCO's crowd "IoU": intersection / det area
        for c in np.union1d(gt_cls, pred_cls):
            gi = np.flatnonzero(gt_cls == c)
            di = np.flatnonzero(pred_cls == c)
            di = di[np.argsort(-score[di], kind="mergesort")[: self.max_dets]]
            matched, ignored = _greedy_match(iou[np.ix_(di, gi)], None if crowd is None else crowd[di])
            self._per_class.setdefault(int(c), []).append(
                _Detections(score[di].astype(float), matched, ignored, int(gi.size))
            )

    def compute(self) -> CocoResult:
        """COCO AP, AP50, AP75, AR100 and per-category AP over all images seen."""
        precision, recall = {}, {}
        for c in sorted(self._per_class):
            entries = self._per_class[c]
            n_gt = sum(e.n_gt for e in entries)
            if n_gt == 0:
                continue  # COCOeval: -1, left out of every mean
            precision[c], recall[c] = _precision_recall(entries, n_gt)
        if not precision:
            nan = float("nan")
            return CocoResult(nan, nan, nan, nan, {})
        prec = np.stack(list(precision.values()), axis=-1)  # (T, R, K)
        rec = np.stack(list(recall.values()), axis=-1)  # (T, K)
        return CocoResult(
            ap=float(prec.mean()),
            ap50=float(prec[_T50].mean()),
            ap75=float(prec[_T75].mean()),
            ar100=float(rec.mean()),
            ap_per_class={c: float(p.mean()) for c, p in precision.items()},
        )


def _precision_recall(entries: list[_Detections], n_gt: int) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval.accumulate for one category: precision ``(T, R)`` at the recall points, recall ``(T,)``."""
    scores = np.concatenate([e.scores for e in entries])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([e.matched for e in entries], axis=1)[:, order]
    ignored = np.concatenate([e.ignored for e in entries], axis=1)[:, order]
    tp_sum = np.cumsum(matched & ~ignored, axis=1).astype(float)
    fp_sum = np.cumsum(~matched & ~ignored, axis=1).astype(float)
    n_det = scores.size
    precision = np.zeros((IOU_THRESHOLDS.size, RECALL_THRESHOLDS.size))
    recall = np.zeros(IOU_THRESHOLDS.size)
    if n_det == 0:
        return precision, recall
    for t in range(IOU_THRESHOLDS.size):
        rc = tp_sum[t] / n_gt
        pr = tp_sum[t] / (fp_sum[t] + tp_sum[t] + np.spacing(1))
        pr = np.maximum.accumulate(pr[::-1])[::-1]  # precision envelope
        idx = np.searchsorted(rc, RECALL_THRESHOLDS, side="left")
        precision[t] = np.where(idx < n_det, pr[np.minimum(idx, n_det - 1)], 0.0)
        recall[t] = rc[-1]
    return precision, recall


def coco_segm_eval(
    gt_list: Sequence[Any],
    pred_list: Sequence[Any],
    scores_list: Sequence[Any] | None = None,
    *,
    gt_classes_list: Sequence[Any] | None = None,
    pred_classes_list: Sequence[Any] | None = None,
    ignore_list: Sequence[Any] | None = None,
) -> CocoResult:
    """COCO mask AP of a list of predicted label images (see :class:`CocoAccumulator` for the arguments)."""
    acc = CocoAccumulator()
    for gt, pred, scores, gcls, pcls, ign in per_image(
        gt_list, pred_list, scores_list, gt_classes_list, pred_classes_list, ignore_list
    ):
        acc.update(gt, pred, scores, gt_classes=gcls, pred_classes=pcls, ignore=ign)
    return acc.compute()
