"""Tests of pixelgroup.metrics.matching (IoU contingency, optimal one-to-one matching)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from skimage.draw import disk

from pixelgroup.metrics.matching import (
    iou_matrix,
    label_overlap,
    match,
    match_thresholds,
    sum_matchings,
)


def _squares() -> tuple[np.ndarray, np.ndarray]:
    """gt: A = [0:4, 0:4] (id 1), B = [0:4, 8:12] (id 2); pred: A exact (id 5), B' = [0:4, 8:11] (id 9),
    a false positive C = [6:8, 0:2] (id 3)."""
    gt = np.zeros((10, 14), np.int32)
    gt[0:4, 0:4] = 1
    gt[0:4, 8:12] = 2
    pred = np.zeros_like(gt)
    pred[0:4, 0:4] = 5
    pred[0:4, 8:11] = 9
    pred[6:8, 0:2] = 3
    return gt, pred


def _random_labels(rng: np.random.Generator, shape=(48, 48), n=8) -> np.ndarray:
    labels = np.zeros(shape, np.int64)
    for i in range(1, n + 1):
        rr, cc = disk((rng.integers(0, shape[0]), rng.integers(0, shape[1])), rng.integers(2, 9), shape=shape)
        labels[rr, cc] = i
    return labels


def test_two_squares_iou_by_hand():
    # gt [0:4, 0:4] (16 px), pred [0:4, 2:6] (16 px): intersection 4 x 2 = 8, union 16 + 16 - 8 = 24,
    # IoU = 8 / 24 = 1/3.
    gt = np.zeros((8, 8), np.int64)
    gt[0:4, 0:4] = 1
    pred = np.zeros_like(gt)
    pred[0:4, 2:6] = 7
    gt_ids, pred_ids, iou = iou_matrix(gt, pred)
    assert gt_ids.tolist() == [1] and pred_ids.tolist() == [7]
    assert iou.shape == (1, 1)
    assert iou[0, 0] == pytest.approx(1 / 3)
    low = match(gt, pred, thresh=0.3)
    assert (low.tp, low.fp, low.fn) == (1, 0, 0)
    assert low.pq == pytest.approx(1 / 3)  # sum IoU / (tp + fp/2 + fn/2) = (1/3) / 1
    assert low.pairs == ((1, 7, pytest.approx(1 / 3)),)
    high = match(gt, pred, thresh=0.5)
    assert (high.tp, high.fp, high.fn) == (0, 1, 1)
    assert high.ap_dsb == 0.0 and high.pq == 0.0


def test_scores_by_hand():
    gt, pred = _squares()
    m = match(gt, pred, thresh=0.5)
    # IoU(A, A) = 1, IoU(B, B') = 12 / 16 = 0.75; C unmatched.
    assert (m.tp, m.fp, m.fn, m.n_gt, m.n_pred) == (2, 1, 0, 2, 3)
    assert m.precision == pytest.approx(2 / 3)
    assert m.recall == 1.0
    assert m.f1 == pytest.approx(0.8)  # 2*2 / (2*2 + 1 + 0)
    assert m.ap_dsb == pytest.approx(2 / 3)  # 2 / (2 + 1 + 0)
    assert m.mean_matched_iou == pytest.approx(0.875)  # (1 + 0.75) / 2
    assert m.pq == pytest.approx(0.7)  # 1.75 / (2 + 0.5 + 0)
    assert m.sq == pytest.approx(0.875) and m.rq == pytest.approx(0.8)
    assert m.pq == pytest.approx(m.sq * m.rq)
    strict = match(gt, pred, thresh=0.8)  # only A survives: tp 1, fp 2, fn 1
    assert strict.ap_dsb == pytest.approx(1 / 4)
    d = m.as_dict()
    assert d["tp"] == 2 and d["pq"] == pytest.approx(0.7) and "pairs" not in d


def test_optimal_assignment_beats_greedy():
    # g1 = cols 0:10 (100 px), g2 = cols 10:14 (40 px); p1 = cols 4:14 (100 px), p2 = cols 0:3 (30 px).
    # IoU(g1, p1) = 60 / 140 = 0.43, IoU(g2, p1) = 40 / 100 = 0.4, IoU(g1, p2) = 30 / 100 = 0.3.
    # Greedy on the largest IoU pairs (g1, p1) and leaves g2 alone; the optimum pairs (g1, p2), (g2, p1).
    gt = np.zeros((10, 14), np.int64)
    gt[:, 0:10] = 1
    gt[:, 10:14] = 2
    pred = np.zeros_like(gt)
    pred[:, 4:14] = 1
    pred[:, 0:3] = 2
    m = match(gt, pred, thresh=0.25)
    assert m.tp == 2 and m.fp == 0 and m.fn == 0
    assert sorted(p[:2] for p in m.pairs) == [(1, 2), (2, 1)]
    assert m.sum_matched_iou == pytest.approx(0.3 + 0.4)


def _stardist_counts(iou: np.ndarray, thresh: float) -> tuple[int, float]:
    """StarDist's rule on the dense IoU matrix: one assignment over all objects with cost
    -(iou >= t) - iou / (2 n), pairs kept if iou >= t. Returns (tp, summed matched IoU)."""
    n = min(iou.shape)
    if n == 0 or not (iou >= thresh).any():
        return 0, 0.0
    rows, cols = linear_sum_assignment(-(iou >= thresh).astype(float) - iou / (2 * n))
    ok = iou[rows, cols] >= thresh
    return int(ok.sum()), float(iou[rows, cols][ok].sum())


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_stardist_rule_at_all_thresholds(seed):
    rng = np.random.default_rng(seed)
    gt = _random_labels(rng, shape=(40, 40), n=15)
    pred = _random_labels(rng, shape=(40, 40), n=15)
    iou = iou_matrix(gt, pred)[2]
    for t in (0.05, 0.1, 0.2, 0.3, 0.5, 0.7):
        m = match(gt, pred, thresh=t)
        tp, total = _stardist_counts(iou, t)
        assert m.tp == tp
        # StarDist's tie-break also rewards IoU of assigned pairs below t, so its matched IoU sum can
        # only be lower than ours (which maximises the matched sum among maximum matchings)
        assert m.sum_matched_iou >= total - 1e-12


def test_iou_matrix_equals_brute_force():
    rng = np.random.default_rng(0)
    gt, pred = _random_labels(rng) * 3, _random_labels(rng) + 10
    pred[pred == 10] = 0
    gt_ids, pred_ids, iou = iou_matrix(gt, pred)
    assert iou.shape == (gt_ids.size, pred_ids.size)
    for i, g in enumerate(gt_ids):
        for j, p in enumerate(pred_ids):
            a, b = gt == g, pred == p
            assert iou[i, j] == pytest.approx((a & b).sum() / (a | b).sum())


def test_label_permutation_invariance():
    rng = np.random.default_rng(1)
    gt, pred = _random_labels(rng, n=12), _random_labels(rng, n=12)
    perm_gt = np.concatenate([[0], rng.permutation(np.arange(1, 13)) * 17])
    perm_pred = np.concatenate([[0], rng.permutation(np.arange(1, 13)) + 1000])
    for t in (0.1, 0.3, 0.5, 0.7):
        a = match(gt, pred, thresh=t).as_dict()
        b = match(perm_gt[gt], perm_pred[pred], thresh=t).as_dict()
        assert a == pytest.approx(b)


@pytest.mark.parametrize("offset", [30_000, 10**12])  # compacted bincount path, np.unique path
def test_large_ids_give_the_same_result(offset):
    rng = np.random.default_rng(2)
    gt, pred = _random_labels(rng), _random_labels(rng)
    big_gt = gt * 5000
    big_pred = np.where(pred > 0, pred + offset, 0)
    expected = match(gt, pred, thresh=0.3).as_dict()
    assert match(big_gt, big_pred, thresh=0.3).as_dict() == pytest.approx(expected)
    ov = label_overlap(big_gt, big_pred)
    assert ov.gt_ids.tolist() == (np.unique(gt)[1:] * 5000).tolist()


def test_shifted_discs_stardist_style():
    # StarDist tests/test_matching: one disc against its shifted copy. IoU falls with the shift; the
    # object is a tp exactly when that IoU reaches the threshold.
    gt = np.zeros((64, 64), np.int64)
    rr, cc = disk((32, 32), 12)
    gt[rr, cc] = 1
    previous = 1.0
    for shift in range(0, 20, 2):
        pred = np.roll(gt, shift, axis=1)
        iou = iou_matrix(gt, pred)[2][0, 0]
        assert iou <= previous
        previous = iou
        for t in (0.3, 0.5, 0.7, 0.9):
            m = match(gt, pred, thresh=t)
            assert m.tp == int(iou >= t) and m.fp == m.fn == 1 - m.tp
    assert previous < 0.3


def test_empty_images():
    empty = np.zeros((8, 8), np.int64)
    one = empty.copy()
    one[2:5, 2:5] = 4
    both = match(empty, empty)
    assert (both.tp, both.fp, both.fn) == (0, 0, 0)
    assert both.precision == both.recall == both.f1 == both.ap_dsb == both.pq == 1.0
    no_gt = match(empty, one)
    assert (no_gt.tp, no_gt.fp, no_gt.fn) == (0, 1, 0)
    assert no_gt.precision == no_gt.recall == no_gt.ap_dsb == no_gt.pq == 0.0
    no_pred = match(one, empty)
    assert (no_pred.tp, no_pred.fp, no_pred.fn) == (0, 0, 1)
    assert no_pred.recall == no_pred.f1 == 0.0
    assert iou_matrix(empty, empty)[2].shape == (0, 0)


def test_void_pixels_coco_panoptic_rule():
    # gt: object 1 = [0:4, 0:4], void (-1) = [0:8, 8:12]. pred: object 1 exact; object 2 = [0:4, 6:12]
    # (24 px, 16 of them void -> mostly void: not a false positive); object 3 = [6:8, 0:4] (a real fp).
    gt = np.zeros((8, 12), np.int64)
    gt[0:4, 0:4] = 1
    gt[:, 8:12] = -1
    pred = np.zeros_like(gt)
    pred[0:4, 0:4] = 1
    pred[0:4, 6:12] = 2
    pred[6:8, 0:4] = 3
    m = match(gt, pred)
    assert (m.tp, m.fp, m.fn) == (1, 1, 0)
    mask = gt < 0
    same = match(np.where(mask, 0, gt), pred, ignore=mask)
    assert (same.tp, same.fp, same.fn) == (1, 1, 0)


def test_match_thresholds_and_dataset_sum():
    gt, pred = _squares()
    ms = match_thresholds(gt, pred, thresholds=[0.5, 0.8])
    assert [m.tp for m in ms] == [2, 1]
    assert ms[0] == match(gt, pred, thresh=0.5)
    total = sum_matchings([ms[0], ms[0]])
    assert (total.tp, total.fp, total.fn) == (4, 2, 0)
    assert total.ap_dsb == pytest.approx(ms[0].ap_dsb)


def test_torch_input():
    gt, pred = _squares()
    m = match(torch.from_numpy(gt), torch.from_numpy(pred))
    assert m == match(gt, pred)


def test_bad_inputs():
    gt, pred = _squares()
    with pytest.raises(ValueError, match="same shape"):
        match(gt, pred[:, :5])
    with pytest.raises(ValueError, match="integer dtype"):
        match(gt.astype(float), pred)
    with pytest.raises(ValueError, match="negative values"):
        match(gt, -pred)
    with pytest.raises(ValueError, match=r"thresh must be in \(0, 1\]"):
        match(gt, pred, thresh=0.0)
    with pytest.raises(ValueError, match="same shape"):
        label_overlap(gt, pred.T)
