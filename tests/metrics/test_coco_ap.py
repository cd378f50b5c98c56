"""Tests of pixelgroup.metrics.coco (and coco_export): our COCO mask AP must equal pycocotools' COCOeval("segm")."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from scipy.ndimage import binary_dilation, binary_erosion
from skimage.draw import disk

from pixelgroup.metrics.coco import CocoAccumulator, coco_segm_eval
from pixelgroup.metrics.coco_export import coco_eval_reference, instances_to_coco_results, labels_to_coco


def _fixture(rng: np.random.Generator, size: int = 64, n: int = 7, void: bool = False):
    """Discs; predictions shifted / eroded / dilated, some missed, some false, random scores, 2 classes."""
    gt = np.zeros((size, size), np.int64)
    pred = np.zeros_like(gt)
    gcls, pcls, scores = {}, {}, {}
    for i in range(1, n + 1):
        centre = rng.integers(8, size - 8, 2)
        rr, cc = disk(tuple(centre), rng.integers(4, 10), shape=gt.shape)
        gt[rr, cc] = 10 * i  # non-contiguous ids
        gcls[10 * i] = int(rng.integers(0, 2))
        if rng.random() < 0.2:
            continue  # missed
        mask = np.roll(gt == 10 * i, tuple(rng.integers(-2, 3, 2)), axis=(0, 1))
        op = rng.integers(0, 3)
        mask = binary_erosion(mask) if op == 1 else binary_dilation(mask) if op == 2 else mask
        pred[mask] = i
        pcls[i] = gcls[10 * i] if rng.random() < 0.85 else 1 - gcls[10 * i]
    for j in range(n + 1, n + 1 + rng.integers(0, 3)):  # false positives
        rr, cc = disk(tuple(rng.integers(0, size, 2)), rng.integers(2, 6), shape=gt.shape)
        pred[rr, cc] = j
        pcls[j] = int(rng.integers(0, 2))
    if void:
        gt[: size // 8, : size // 4] = -1
    pids = np.unique(pred)[1:]
    gids = np.unique(gt[gt > 0])
    scores = {int(p): float(rng.random()) for p in pids}
    return gt, pred, scores, {int(g): gcls[int(g)] for g in gids}, {int(p): pcls[int(p)] for p in pids}


def _assert_equal(ours, ref):
    for name in ("ap", "ap50", "ap75", "ar100"):
        a, b = getattr(ours, name), getattr(ref, name)
        assert (math.isnan(a) and math.isnan(b)) or abs(a - b) < 1e-6, (name, a, b)
    assert ours.ap_per_class.keys() == ref.ap_per_class.keys()
    for c in ours.ap_per_class:
        assert abs(ours.ap_per_class[c] - ref.ap_per_class[c]) < 1e-6


@pytest.mark.parametrize("seed", range(6))
def test_equals_pycocotools_two_classes(seed):
    rng = np.random.default_rng(seed)
    data = [_fixture(rng, void=seed % 2 == 1) for _ in range(3)]
    args = ([d[0] for d in data], [d[1] for d in data], [d[2] for d in data])
    kwargs = {"gt_classes_list": [d[3] for d in data], "pred_classes_list": [d[4] for d in data]}
    ours = coco_segm_eval(*args, **kwargs)
    ref = coco_eval_reference(*args, **kwargs)
    _assert_equal(ours, ref)
    assert 0.05 < ours.ap < 0.95  # the fixture is neither trivial nor hopeless


def test_equals_pycocotools_class_agnostic_area_ranking():
    rng = np.random.default_rng(10)
    data = [_fixture(rng) for _ in range(3)]
    gts, preds = [d[0] for d in data], [d[1] for d in data]
    _assert_equal(coco_segm_eval(gts, preds), coco_eval_reference(gts, preds))


def test_equals_pycocotools_with_ignore_mask_and_over_100_detections():
    # 144 one-pixel-gap 3x3 predictions in one image: only the best 100 per image count (maxDets).
    rng = np.random.default_rng(3)
    gt = np.zeros((48, 48), np.int64)
    pred = np.zeros_like(gt)
    k = 0
    for y in range(0, 48, 4):
        for x in range(0, 48, 4):
            k += 1
            pred[y : y + 3, x : x + 3] = k
            if rng.random() < 0.5:
                gt[y : y + 3, x + 1 : x + 4] = k
    scores = rng.random(k)
    ignore = np.zeros(gt.shape, bool)
    ignore[40:, :] = True
    _assert_equal(
        coco_segm_eval([gt], [pred], [scores], ignore_list=[ignore]),
        coco_eval_reference([gt], [pred], [scores], ignore_list=[ignore]),
    )


def test_perfect_prediction_is_one():
    rng = np.random.default_rng(4)
    gt, _, _, gcls, _ = _fixture(rng)
    res = coco_segm_eval([gt], [gt], [None], gt_classes_list=[gcls], pred_classes_list=[gcls])
    assert res.ap == pytest.approx(1.0) and res.ap50 == 1.0 and res.ar100 == 1.0
    assert len(res.ap_per_class) == 2 and all(v == pytest.approx(1.0) for v in res.ap_per_class.values())


def test_false_positive_ranked_first_halves_ap():
    # One gt object, two detections: a false positive (score 0.9) above the exact match (score 0.5).
    # Ranked: fp, tp -> at recall 1 precision is 1/2, and the envelope is 1/2 at every recall point,
    # so AP = 0.5 at every IoU threshold; AR = 1.
    gt = np.zeros((16, 16), np.int64)
    gt[2:6, 2:6] = 1
    pred = np.zeros_like(gt)
    pred[2:6, 2:6] = 1
    pred[10:14, 10:14] = 2
    res = coco_segm_eval([gt], [pred], [np.array([0.5, 0.9])])
    assert res.ap == pytest.approx(0.5) and res.ap50 == pytest.approx(0.5) and res.ar100 == 1.0
    _assert_equal(res, coco_eval_reference([gt], [pred], [np.array([0.5, 0.9])]))


def test_no_detection_and_no_ground_truth():
    gt = np.zeros((16, 16), np.int64)
    gt[2:6, 2:6] = 1
    empty = np.zeros_like(gt)
    res = coco_segm_eval([gt], [empty])
    assert res.ap == 0.0 and res.ar100 == 0.0
    _assert_equal(res, coco_eval_reference([gt], [empty]))
    assert math.isnan(coco_segm_eval([empty], [gt]).ap)


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools under numpy 2
def test_instances_to_coco_results_roundtrip():
    labels = np.zeros((10, 12), np.int64)
    labels[1:4, 2:5] = 3
    labels[6:9, 6:11] = 8
    scores = {3: 0.25, 8: 0.75}
    res = instances_to_coco_results(labels, scores, 7, {3: 1, 8: 2})
    assert [r["category_id"] for r in res] == [1, 2]
    assert [r["score"] for r in res] == [0.25, 0.75]
    assert all(r["image_id"] == 7 and isinstance(r["segmentation"]["counts"], str) for r in res)
    for r, i in zip(res, (3, 8)):
        rle = dict(r["segmentation"], counts=r["segmentation"]["counts"].encode())
        assert np.array_equal(mask_utils.decode(rle).astype(bool), labels == i)


def test_labels_to_coco_structure():
    gt = np.zeros((8, 8), np.int64)
    gt[0:3, 0:3] = 2
    gt[5:, 5:] = -1
    gt_dict, results = labels_to_coco([gt], [gt.clip(0)], [None])
    anns = gt_dict["annotations"]
    assert [a["iscrowd"] for a in anns] == [0, 1]  # the instance, then the void region as crowd
    assert anns[0]["area"] == 9 and anns[1]["area"] == 9
    assert [a["id"] for a in anns] == [1, 2] and len(results) == 1


def test_bad_inputs():
    gt = np.zeros((8, 8), np.int64)
    gt[1:3, 1:3] = 1
    acc = CocoAccumulator()
    with pytest.raises(ValueError, match="give both gt_classes and pred_classes"):
        acc.update(gt, gt, None, gt_classes={1: 0})
    with pytest.raises(ValueError, match="scores has 0 entries"):
        acc.update(gt, gt, np.zeros(0))
    with pytest.raises(ValueError, match="pred_list has 2 entries for 1"):
        coco_segm_eval([gt], [gt, gt])
    with pytest.raises(ValueError, match="max_dets must be >= 1"):
        CocoAccumulator(max_dets=0)
