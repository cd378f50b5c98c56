"""Tests of pixelgroup.metrics.sbd (CVPPP symmetric best Dice, difference in count)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pixelgroup.metrics.sbd import best_dice, difference_in_count, symmetric_best_dice


def _square(shape=(12, 12), rows=slice(0, 4), cols=slice(0, 4), value=1) -> np.ndarray:
    out = np.zeros(shape, np.int64)
    out[rows, cols] = value
    return out


def test_shifted_square_by_hand():
    # gt [0:4, 0:4] and pred [0:4, 2:6], 16 px each, 8 in common: Dice = 2 * 8 / (16 + 16) = 0.5.
    gt = _square()
    pred = _square(cols=slice(2, 6), value=3)
    assert best_dice(gt, pred) == pytest.approx(0.5)
    assert symmetric_best_dice(gt, pred) == pytest.approx(0.5)
    assert difference_in_count(gt, pred) == 0


def test_missed_object_is_asymmetric():
    # gt: A and B; pred: A only. BD(gt, pred) = (1 + 0) / 2 = 0.5, BD(pred, gt) = 1, SBD = min = 0.5;
    # DiC = 1 - 2 = -1.
    gt = _square() + _square(cols=slice(6, 10), value=2)
    pred = _square(value=7)
    assert best_dice(gt, pred) == pytest.approx(0.5)
    assert best_dice(pred, gt) == pytest.approx(1.0)
    assert symmetric_best_dice(gt, pred) == pytest.approx(0.5)
    assert difference_in_count(gt, pred) == -1


def test_split_object():
    # pred splits the 4x4 gt square into two 4x2 halves: Dice(half, A) = 2 * 8 / (8 + 16) = 2/3,
    # so BD(gt, pred) = BD(pred, gt) = 2/3; DiC = 2 - 1 = +1.
    gt = _square()
    pred = _square(cols=slice(0, 2), value=1) + _square(cols=slice(2, 4), value=2)
    assert symmetric_best_dice(gt, pred) == pytest.approx(2 / 3)
    assert difference_in_count(gt, pred) == 1


def test_empty_edge_cases():
    empty = np.zeros((12, 12), np.int64)
    assert symmetric_best_dice(empty, empty) == 1.0
    assert symmetric_best_dice(empty, _square()) == 0.0
    assert symmetric_best_dice(_square(), empty) == 0.0
    assert math.isnan(best_dice(empty, _square()))
    assert difference_in_count(empty, _square()) == 1


def test_perfect_and_permutation_invariance():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 6, (16, 16))
    pred = rng.integers(0, 6, (16, 16))
    assert symmetric_best_dice(gt, gt) == pytest.approx(1.0)
    perm_gt = np.array([0, 50, 3, 9, 21, 4])
    perm_pred = np.array([0, 2, 1, 5, 4, 3])
    assert symmetric_best_dice(perm_gt[gt], perm_pred[pred]) == pytest.approx(symmetric_best_dice(gt, pred))


def test_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        symmetric_best_dice(_square(), _square(shape=(8, 8)))
    with pytest.raises(ValueError, match="integer dtype"):
        difference_in_count(_square().astype(float), _square())
