"""Tests of pixelgroup.metrics.instance.InstanceEvaluator (dataset-level accumulation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pixelgroup.metrics.coco import coco_segm_eval
from pixelgroup.metrics.instance import InstanceEvaluator
from pixelgroup.types import Instances


def _three_squares() -> np.ndarray:
    gt = np.zeros((16, 16), np.int64)
    gt[0:4, 0:4] = 1
    gt[0:4, 8:12] = 2
    gt[8:12, 0:4] = 3
    return gt


def test_perfect_prediction():
    ev = InstanceEvaluator()
    gt = _three_squares()
    ev.update(gt, gt * 5, scores={5: 0.9, 10: 0.8, 15: 0.7})
    r = ev.compute()
    for t in ("0.50", "0.55", "0.75", "0.95"):
        assert r[f"ap_dsb@{t}"] == 1.0
    assert r["ap_dsb"] == 1.0
    assert r["pq"] == r["sq"] == r["rq"] == r["f1"] == 1.0
    assert r["coco_ap"] == pytest.approx(1.0) and r["coco_ap50"] == 1.0
    assert r["sbd"] == 1.0 and r["dic"] == 0.0 and r["abs_dic"] == 0.0
    assert (r["n_images"], r["n_gt"], r["n_pred"]) == (1, 3, 3)
    assert not any("/class_" in k for k in r)


def test_counts_are_summed_over_images_first():
    # image 1: 3 objects, all found; image 2: 1 object, nothing predicted.
    # Dataset level at 0.5: tp 3, fp 0, fn 1 -> ap_dsb = 3 / 4 (the per-image mean would be 0.5).
    # SBD: (1 + 0) / 2 = 0.5; DiC: (0 + (0 - 1)) / 2 = -0.5, |DiC| 0.5.
    ev = InstanceEvaluator(thresholds=(0.5, 0.7))
    gt = _three_squares()
    ev.update(gt, gt)
    lone = np.zeros_like(gt)
    lone[5:9, 5:9] = 1
    ev.update(lone, np.zeros_like(gt))
    r = ev.compute()
    assert r["ap_dsb@0.50"] == pytest.approx(0.75) and r["ap_dsb@0.70"] == pytest.approx(0.75)
    assert "ap_dsb@0.55" not in r
    assert r["recall"] == pytest.approx(0.75) and r["precision"] == 1.0
    assert r["sbd"] == pytest.approx(0.5)
    assert r["dic"] == pytest.approx(-0.5) and r["abs_dic"] == pytest.approx(0.5)
    assert (r["n_images"], r["n_gt"], r["n_pred"]) == (2, 4, 3)


def test_coco_entries_match_coco_module_with_classes():
    rng = np.random.default_rng(0)
    gt = _three_squares()
    pred = np.roll(gt, 1, axis=1)
    scores = rng.random(3)
    gcls, pcls = np.array([0, 1, 1]), np.array([0, 1, 0])
    ev = InstanceEvaluator()
    ev.update(torch.from_numpy(gt), torch.from_numpy(pred), scores=scores, gt_classes=gcls, pred_classes=pcls)
    r = ev.compute()
    ref = coco_segm_eval([gt], [pred], [scores], gt_classes_list=[gcls], pred_classes_list=[pcls])
    assert r["coco_ap"] == pytest.approx(ref.ap) and r["coco_ap75"] == pytest.approx(ref.ap75)
    assert r["coco_ap/class_0"] == pytest.approx(ref.ap_per_class[0])
    assert r["coco_ap/class_1"] == pytest.approx(ref.ap_per_class[1])


def test_accepts_instances_and_void():
    gt = _three_squares()
    gt[12:, 12:] = -1
    pred = np.where(gt > 0, gt, 0)
    pred[12:, 12:] = 4  # entirely void: neither counted nor a false positive
    inst = Instances(labels=pred, scores=np.array([0.9, 0.8, 0.7, 0.6]))
    ev = InstanceEvaluator()
    ev.update(gt, inst)
    r = ev.compute()
    assert r["ap_dsb@0.50"] == 1.0 and r["coco_ap"] == pytest.approx(1.0)
    assert r["n_pred"] == 3


def test_label_permutation_invariance():
    gt = _three_squares()
    pred = np.roll(gt, 2, axis=0)
    scores = {1: 0.3, 2: 0.9, 3: 0.5}
    a, b = InstanceEvaluator(), InstanceEvaluator()
    a.update(gt, pred, scores=scores)
    perm = np.array([0, 7, 3, 11])
    b.update(np.array([0, 2, 3, 1])[gt], perm[pred], scores={int(perm[k]): v for k, v in scores.items()})
    assert a.compute() == pytest.approx(b.compute())


def test_reset_and_empty():
    ev = InstanceEvaluator()
    r = ev.compute()
    assert math.isnan(r["ap_dsb@0.50"]) and math.isnan(r["sbd"]) and r["n_images"] == 0
    ev.update(_three_squares(), _three_squares())
    ev.reset()
    assert ev.compute()["n_images"] == 0


def test_bad_inputs():
    with pytest.raises(ValueError, match="thresholds must be a non-empty sequence"):
        InstanceEvaluator(thresholds=(0.5, 1.5))
    ev = InstanceEvaluator()
    with pytest.raises(ValueError, match="same shape"):
        ev.update(_three_squares(), _three_squares()[:8])
    with pytest.raises(ValueError, match="give both gt_classes and pred_classes"):
        ev.update(_three_squares(), _three_squares(), pred_classes=np.zeros(3, int))
    with pytest.raises(ValueError, match="scores has 2 entries"):
        ev.update(_three_squares(), _three_squares(), scores=np.zeros(2))
    assert ev.compute()["n_images"] == 0  # a rejected image leaves no trace
