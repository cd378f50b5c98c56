"""COCO formats of label images, and pycocotools' own evaluation for reference.

* :func:`instances_to_coco_results`: COCO results-JSON entries (RLE ``counts`` as ``str``) of one
  predicted label image.
* :func:`labels_to_coco`: a COCO ground-truth dataset dict plus results list for lists of label
  images (image ids 1..n; void pixels become one ``iscrowd=1`` annotation per category).
* :func:`coco_eval_reference`: pycocotools' ``COCOeval(iouType="segm")`` run on them (slow; the tests
  use it to check :class:`pixelgroup.metrics.coco.CocoAccumulator`).

Per-instance values follow :func:`pixelgroup.metrics.checks.per_instance_values`.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from .checks import as_label_image, per_image, per_instance_values
from .coco import CocoResult
from .matching import label_overlap, remove_void

__all__ = ["coco_eval_reference", "instances_to_coco_results", "labels_to_coco"]


def _encode(mask: np.ndarray) -> dict[str, Any]:
    """COCO RLE of an ``(H, W)`` bool mask, counts as str (JSON-ready)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _rle_entry(mask: np.ndarray, image_id: int, category_id: int) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    rle = _encode(mask)
    return {
        "image_id": int(image_id),
        "category_id": int(category_id),
        "segmentation": rle,
        "area": float(mask_utils.area(rle)),
        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
    }


def instances_to_coco_results(labels: Any, scores: Any, image_id: int, classes: Any = None) -> list[dict]:
    """COCO results-JSON entries (``image_id``, ``category_id``, RLE ``segmentation``, ``score``).

    Args:
        labels: ``(H, W)`` non-negative integer label image.
        scores: per instance (array entry ``id - 1`` or dict ``id -> score``); None uses the area.
        image_id: COCO image id.
        classes: per instance category id (same format), default 0.

    Returns:
        One dict per instance, ids ascending; RLE counts are ``str``.
    """
    labels = as_label_image(labels, name="labels")
    ov = label_overlap(labels, labels)
    ids = ov.gt_ids
    score = per_instance_values(scores, ids, name="scores", default=ov.gt_area.astype(float))
    cls = per_instance_values(classes, ids, name="classes", default=np.zeros(ids.size, int))
    out = []
    for i, s, c in zip(ids, score, cls):
        entry = _rle_entry(labels == i, image_id, c)
        del entry["area"], entry["bbox"]
        entry["score"] = float(s)
        out.append(entry)
    return out


def labels_to_coco(
    gt_list: Sequence[Any],
    pred_list: Sequence[Any],
    scores_list: Sequence[Any] | None = None,
    *,
    gt_classes_list: Sequence[Any] | None = None,
    pred_classes_list: Sequence[Any] | None = None,
    ignore_list: Sequence[Any] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """COCO ground-truth dataset dict and results list for label images (image ids 1..n).

    Ground-truth annotations use the void-free instances; void pixels (gt < 0 or ``ignore``) become
    one ``iscrowd=1`` annotation per category. Categories are the classes seen in gt or pred.

    Returns:
        ``(gt_dict, results)``: ``gt_dict`` with ``images``, ``annotations``, ``categories``;
        ``results`` as :func:`instances_to_coco_results`.
    """
    images, anns, results, stored = [], [], [], []
    categories: set[int] = set()
    for k, (gt, pred, scores, gcls, pcls, ign) in enumerate(per_image(
        gt_list, pred_list, scores_list, gt_classes_list, pred_classes_list, ignore_list
    )):
        gt, _, void = remove_void(gt, pred, ign)
        ids = label_overlap(gt, gt).gt_ids
        cls = per_instance_values(gcls, ids, name="gt_classes", default=np.zeros(ids.size, int))
        image_results = instances_to_coco_results(pred, scores, k + 1, pcls)
        categories.update(int(c) for c in cls)
        categories.update(r["category_id"] for r in image_results)
        images.append({"id": k + 1, "height": gt.shape[0], "width": gt.shape[1]})
        results.extend(image_results)
        stored.append((gt, ids, cls, void))
    for k, (gt, ids, cls, void) in enumerate(stored):
        for i, c in zip(ids, cls):
            anns.append({**_rle_entry(gt == i, k + 1, c), "iscrowd": 0})
        if void is not None:
            anns.extend({**_rle_entry(void, k + 1, c), "iscrowd": 1} for c in sorted(categories))
    for n, ann in enumerate(anns):
        ann["id"] = n + 1
    cats = [{"id": c, "name": str(c)} for c in sorted(categories)]
    gt_dict = {"images": images, "annotations": anns, "categories": cats}
    return gt_dict, results


def coco_eval_reference(
    gt_list: Sequence[Any],
    pred_list: Sequence[Any],
    scores_list: Sequence[Any] | None = None,
    **kwargs: Any,
) -> CocoResult:
    """The same summary computed by pycocotools' ``COCOeval(iouType="segm")`` (slow; for testing).

    Takes the arguments of :func:`labels_to_coco`. COCOeval's -1 ("no ground truth") becomes NaN.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_dict, results = labels_to_coco(gt_list, pred_list, scores_list, **kwargs)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt_dict
        coco_gt.createIndex()
        if results:
            coco_dt = coco_gt.loadRes(results)
        else:  # loadRes cannot take an empty list
            coco_dt = COCO()
            coco_dt.dataset = {**gt_dict, "annotations": []}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, iouType="segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = [float("nan") if s == -1 else float(s) for s in ev.stats]
    precision = ev.eval["precision"][:, :, :, 0, -1]  # (T, R, K), area "all", maxDets 100
    per_class = {
        int(c): float(precision[:, :, k].mean())
        for k, c in enumerate(ev.params.catIds)
        if (precision[:, :, k] > -1).any()
    }
    return CocoResult(ap=stats[0], ap50=stats[1], ap75=stats[2], ar100=stats[8], ap_per_class=per_class)
