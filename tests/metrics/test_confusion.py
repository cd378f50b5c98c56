"""Tests of pixelgroup.metrics.semantic.ConfusionMatrix (mIoU, accuracies)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pixelgroup.metrics.semantic import ConfusionMatrix

# 6 pixels, the last one ignored (255). Valid (gt, pred) pairs: (0,0) (0,1) (1,1) (1,1) (2,0).
GT = np.array([[0, 0, 1], [1, 2, 255]])
PRED = np.array([[0, 1, 1], [1, 0, 2]])


def test_miou_by_hand():
    # class 0: tp 1, gt 2, pred 2 -> IoU 1 / (2 + 2 - 1) = 1/3
    # class 1: tp 2, gt 2, pred 3 -> IoU 2 / 3
    # class 2: tp 0, gt 1, pred 0 -> IoU 0
    # mIoU = (1/3 + 2/3 + 0) / 3 = 1/3; pixel accuracy 3/5; mean accuracy (1/2 + 1 + 0) / 3 = 1/2.
    cm = ConfusionMatrix(3)
    cm.update(GT, PRED)
    r = cm.compute()
    assert r["iou"] == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert r["miou"] == pytest.approx(1 / 3)
    assert r["pixel_accuracy"] == pytest.approx(3 / 5)
    assert r["mean_accuracy"] == pytest.approx(1 / 2)
    assert r["confusion"].shape == (3, 3) and r["confusion"].sum() == 5


def test_absent_class_is_nan_and_excluded():
    cm = ConfusionMatrix(4)
    cm.update(GT, PRED)
    r = cm.compute()
    assert math.isnan(r["iou"][3])
    assert r["miou"] == pytest.approx(1 / 3)
    assert r["mean_accuracy"] == pytest.approx(1 / 2)


def test_accumulates_and_resets():
    cm = ConfusionMatrix(3)
    cm.update(GT[:1], PRED[:1])
    cm.update(torch.from_numpy(GT[1:]), torch.from_numpy(PRED[1:]))
    assert cm.compute()["miou"] == pytest.approx(1 / 3)
    cm.reset()
    assert math.isnan(cm.compute()["miou"]) and math.isnan(cm.compute()["pixel_accuracy"])


def test_negative_gt_is_ignored_and_perfect_is_one():
    gt = np.where(GT == 255, -1, GT)
    cm = ConfusionMatrix(3)
    cm.update(gt, np.where(gt < 0, 0, gt))
    r = cm.compute()
    assert r["miou"] == 1.0 and r["pixel_accuracy"] == 1.0


def test_bad_inputs():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="pred values must be in"):
        cm.update(GT, PRED + 2)
    with pytest.raises(ValueError, match="gt has class 3 but n_classes=3"):
        cm.update(np.full((2, 2), 3), np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="same shape"):
        cm.update(GT, PRED[:, :2])
    with pytest.raises(ValueError, match="integer dtype"):
        cm.update(GT.astype(float), PRED)
    with pytest.raises(ValueError, match="n_classes must be >= 1"):
        ConfusionMatrix(0)
