"""Dataset-level instance-segmentation evaluation: one accumulator over label images.

:class:`InstanceEvaluator` gathers, per image, the matching counts at every IoU threshold
(:mod:`.matching`), SBD and DiC (:mod:`.sbd`) and the COCO mask AP state (:mod:`.coco`), and turns
them into one flat dict of floats (ready for logging) in :meth:`InstanceEvaluator.compute`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from .checks import as_label_image
from .coco import CocoAccumulator
from .matching import (
    Matching,
    label_overlap,
    match_overlap,
    mostly_void_predictions,
    remove_void,
    sum_matchings,
)
from .sbd import sbd_from_overlap

__all__ = ["DSB_THRESHOLDS", "InstanceEvaluator"]

DSB_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.50:0.05:0.95


class InstanceEvaluator:
    """Accumulate instance metrics over a dataset: ``update`` per image, ``compute``, ``reset``.

    :meth:`compute` returns a flat dict:

    * ``ap_dsb@0.50`` ... ``ap_dsb@0.95``: tp / (tp + fp + fn) at each threshold, with tp, fp, fn
      summed over all images first (StarDist ``matching_dataset(by_image=False)``); ``ap_dsb`` is
      their mean over the thresholds.
    * ``precision``, ``recall``, ``f1``, ``pq``, ``sq``, ``rq``, ``mean_matched_iou`` at IoU 0.5,
      dataset-level likewise.
    * ``coco_ap``, ``coco_ap50``, ``coco_ap75``, ``coco_ar100``: COCO mask AP (equal to pycocotools).
      Without ``scores`` the instances are ranked by their area (largest first), which makes AP
      depend on a heuristic ranking: pass the grouper's scores when it has them. With classes, also
      ``coco_ap/class_{c}`` per class; ``coco_ap`` is then the mean over classes with ground truth.
    * ``sbd``, ``dic``, ``abs_dic``: per-image symmetric best Dice and (absolute) difference in
      count, averaged over images.
    * ``n_images``, ``n_gt``, ``n_pred``: counts (void-free instances).

    The matching, SBD and DiC metrics are class-agnostic; classes only enter COCO AP. Void pixels
    (gt < 0, or ``ignore``) are removed before matching (see :func:`.matching.match`) and are a crowd
    region for COCO AP.

    Args:
        thresholds: IoU thresholds of the ``ap_dsb@t`` entries, each in (0, 1].
    """

    def __init__(self, *, thresholds: Sequence[float] = DSB_THRESHOLDS) -> None:
        thresholds = tuple(float(t) for t in thresholds)
        if not thresholds or not all(0.0 < t <= 1.0 for t in thresholds):
            raise ValueError(f"thresholds must be a non-empty sequence of values in (0, 1], got {thresholds}")
        self.thresholds = thresholds
        self._all_thresholds = tuple(sorted(set(thresholds) | {0.5}))
        self.reset()

    def reset(self) -> None:
        """Forget every image seen."""
        self._matchings: dict[float, list[Matching]] = {t: [] for t in self._all_thresholds}
        self._sbd: list[float] = []
        self._dic: list[int] = []
        self._n_gt = 0
        self._n_pred = 0
        self._coco = CocoAccumulator()
        self._classes = False

    def update(
        self,
        gt: Any,
        pred: Any,
        *,
        scores: Any = None,
        gt_classes: Any = None,
        pred_classes: Any = None,
        ignore: Any = None,
    ) -> None:
        """Add one image.

        Args:
            gt: ``(H, W)`` integer ground truth, 0 = background, > 0 instances, < 0 void.
            pred: ``(H, W)`` non-negative integer label image, or a :class:`pixelgroup.types.Instances`
                (its scores, and its classes when ``gt_classes`` is given, are used unless passed).
            scores: ``(N,)`` confidence of predicted instance ``id`` at entry ``id - 1`` (or a dict
                ``id -> score``); None ranks instances by area for COCO AP.
            gt_classes, pred_classes: class per instance, same format; give both or neither.
            ignore: optional ``(H, W)`` bool mask of extra void pixels.
        """
        if hasattr(pred, "labels") and hasattr(pred, "scores"):  # an Instances
            scores = pred.scores if scores is None else scores
            if gt_classes is not None and pred_classes is None:
                pred_classes = pred.classes
            pred = pred.labels
        pred = as_label_image(pred, name="pred")
        # first, as it validates everything (shapes, scores, classes) before any state changes
        self._coco.update(gt, pred, scores, gt_classes=gt_classes, pred_classes=pred_classes, ignore=ignore)
        gt_clean, pred_clean, void = remove_void(gt, pred, ignore)
        ov = label_overlap(gt_clean, pred_clean)
        matchings = match_overlap(
            ov, thresholds=self._all_thresholds, mostly_void=mostly_void_predictions(pred, void, ov)
        )
        for t, m in zip(self._all_thresholds, matchings):
            self._matchings[t].append(replace(m, pairs=()))  # keep the counts only
        self._sbd.append(sbd_from_overlap(ov))
        self._dic.append(int(ov.pred_ids.size - ov.gt_ids.size))
        self._n_gt += int(ov.gt_ids.size)
        self._n_pred += int(ov.pred_ids.size)
        self._classes |= gt_classes is not None

    def compute(self) -> dict[str, float]:
        """The metrics over all images seen so far (NaN where undefined, e.g. no image)."""
        n_images = len(self._sbd)
        out: dict[str, float] = {}
        dataset = {t: sum_matchings(ms, thresh=t) for t, ms in self._matchings.items()}
        for t in self.thresholds:
            out[f"ap_dsb@{t:.2f}"] = dataset[t].ap_dsb
        out["ap_dsb"] = float(np.mean([dataset[t].ap_dsb for t in self.thresholds]))
        at50 = dataset[0.5]
        for name in ("precision", "recall", "f1", "pq", "sq", "rq", "mean_matched_iou"):
            out[name] = getattr(at50, name)
        if not n_images:
            out = dict.fromkeys(out, float("nan"))
        coco = self._coco.compute().as_dict(prefix="coco_")
        if not self._classes:
            coco = {k: v for k, v in coco.items() if "/class_" not in k}
        out.update(coco)
        nan = float("nan")
        out["sbd"] = float(np.mean(self._sbd)) if n_images else nan
        out["dic"] = float(np.mean(self._dic)) if n_images else nan
        out["abs_dic"] = float(np.mean(np.abs(self._dic))) if n_images else nan
        out["n_images"] = float(n_images)
        out["n_gt"] = float(self._n_gt)
        out["n_pred"] = float(self._n_pred)
        return out
